"""One cluster across hosts (issue 12, item 6): each host starts its own process with Bytewax's
cluster flags, here two processes started as separate commands on two loopback addresses.

They must give the outcome of one process (the command streams hold exactly the replay's
commands, each once; every state equals applying each event once), including after the whole
cluster is killed with SIGKILL and started again.
"""

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)
HOSTS = ("127.0.0.1", "127.0.0.2")


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory(appendonly=True, appendfsync="everysec")


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def _addresses() -> str:
    ports = []
    for host in HOSTS:
        with socket.socket() as s:
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
    return ";".join(f"{host}:{port}" for host, port in zip(HOSTS, ports, strict=True))


def _start_cluster(
    url: str, config: Path, tmp: Path, addresses: str
) -> list[subprocess.Popen[bytes]]:
    """One `touchflow run` per "host", each a separate command, as an operator would start them."""
    procs = []
    for proc_id in range(len(HOSTS)):
        log = tmp / f"host{proc_id}.log"
        cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url]
        cmd += ["--config", str(config), "--addresses", addresses, "--process-id", str(proc_id)]
        with log.open("ab") as out:
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True))
    return procs


def test_two_processes_started_apart_act_as_one_even_after_a_kill(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=40, per_prospect=12, seed=31)
    half = len(events) // 2
    addresses = _addresses()
    procs = _start_cluster(server.url, config, tmp_path, addresses)
    try:
        h.publish(r, KEYS, events[:half])
        h.wait_drained(r, KEYS, timeout=90)
    finally:
        for proc in procs:
            h.kill9(proc)
    procs = _start_cluster(server.url, config, tmp_path, addresses)
    try:
        h.publish(r, KEYS, events[half:])
        h.wait_drained(r, KEYS, timeout=90)
    finally:
        for proc in procs:  # a cluster ends when every process's input has ended: stop all
            proc.send_signal(signal.SIGTERM)
        try:
            codes = [proc.wait(timeout=60) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    h.kill9(proc)
    assert codes == [0, 0]
    got = h.live_commands(r, KEYS)
    expected, states = h.oracle(events, config, tmp_path)
    assert len(got) == len(set(got)), "a command was written twice"
    assert sorted(got) == sorted(expected)
    assert h.live_states(r, KEYS, sorted(states)) == states
    logs = [(tmp_path / f"host{n}.log").read_text() for n in range(len(HOSTS))]
    assert all("process" in log and addresses in log for log in logs)


def test_cluster_flags_need_a_shared_redis(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--addresses", "127.0.0.1:1;127.0.0.2:2"]
    done = subprocess.run(
        [*cmd, "--process-id", "1"],
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert b"--redis (or REDIS_URL) is required" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
