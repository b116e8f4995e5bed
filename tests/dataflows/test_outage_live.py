"""A real `touchflow run` on a Redis that runs out of memory: it waits, says so, and resumes.

The events the flow is to handle are published in the same transaction that makes Redis refuse
writes (`maxmemory 1` under `noeviction`), so the flow meets every one of them with no room to
write. Reads still work then (XREADGROUP is not refused), so the flow takes the events in and
its sinks meet the refusal. While it lasts the process must stay up, `/healthz` must answer 503
with the reason, and nothing may be written or acknowledged; once Redis has room again, the
commands must be exactly those of `touchflow replay` of the same events, each once.
"""

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_run_serving_metrics(
    url: str, config: Path, metrics_port: int, log: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    """`touchflow run` with `--metrics-port`, once it has logged that it is live."""
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url, "--config", str(config)]
    cmd += ["--workers", str(workers), "--metrics-port", str(metrics_port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 30
    while b"touchflow live on" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "touchflow run did not start"
        time.sleep(0.05)
    return proc


def get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body; (0, b"") while nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except urllib.error.URLError:
        return 0, b""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_out_of_memory_holds_the_flow_which_stays_up_reports_it_and_resumes_exactly_once(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = embedded_redis_factory()
    r = redis.Redis.from_url(server.url)
    config = h.write_config(tmp_path)
    events = h.make_events(prospects=20, per_prospect=8, seed=11)
    half = len(events) // 2
    port = _free_port()
    log = tmp_path / "run.log"
    proc = start_run_serving_metrics(server.url, config, port, log)
    try:
        h.publish(r, KEYS, events[:half])
        h.wait_drained(r, KEYS, timeout=30)
        wait_for("/healthz to answer 200", lambda: get(port, "/healthz") == (200, b"ok\n"))
        written = len(h.live_commands(r, KEYS))
        decisions = r.xlen(KEYS.decisions)

        pipe = r.pipeline(transaction=True)  # the rest of the events, and no room from then on
        for e in events[half:]:
            stream = KEYS.events(shard_of(e["prospect"], KEYS.shards))
            pipe.xadd(stream, {"event": msgspec.json.encode(e)})
        pipe.config_set("maxmemory-policy", "noeviction")
        pipe.config_set("maxmemory", 1)
        pipe.execute()

        wait_for("/healthz to answer 503", lambda: get(port, "/healthz")[0] == 503)
        status, body = get(port, "/healthz")
        assert status == 503
        assert body.startswith(b"unhealthy: Redis refuses writes ("), body
        assert b"OOM command not allowed when used memory > 'maxmemory'" in body
        assert b"touchflow_redis_refusing 1.0" in get(port, "/metrics")[1]
        time.sleep(2.5)  # retries at their longest backoff
        assert proc.poll() is None, "touchflow run exited on a refused write"
        assert get(port, "/healthz")[0] == 503
        assert len(h.live_commands(r, KEYS)) == written
        assert r.xlen(KEYS.decisions) == decisions
        pending = sum(
            int(r.xpending(KEYS.events(n), KEYS.group)["pending"]) for n in range(KEYS.shards)
        )
        assert pending > 0, "the flow did not take the events in"

        r.config_set("maxmemory", 0)
        h.wait_drained(r, KEYS, timeout=30)
        wait_for("/healthz to answer 200 again", lambda: get(port, "/healthz") == (200, b"ok\n"))
        assert b"touchflow_redis_refusing 0.0" in get(port, "/metrics")[1]
        assert proc.poll() is None
    finally:
        r.config_set("maxmemory", 0)
        code = h.stop(proc)
    assert code == 0
    got = h.live_commands(r, KEYS)
    expected, states = h.oracle(events, config, tmp_path)
    assert len(got) == len(set(got)), "a command was written twice"
    assert sorted(got) == sorted(expected)
    assert h.live_states(r, KEYS, sorted(states)) == states
    r.close()
    text = log.read_text()
    assert "Redis refuses writes" in text
    assert "Traceback" not in text


def test_run_started_on_a_read_only_redis_waits_for_it(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    """A replica after a failover refuses the first write (the shard count): `run` waits for it
    to become writable instead of exiting, then works as usual."""
    server = embedded_redis_factory()
    r = redis.Redis.from_url(server.url)
    try:
        r.execute_command("REPLICAOF", "127.0.0.1", str(_free_port()))  # nobody there: read-only
        config = h.write_config(tmp_path)
        log = tmp_path / "run.log"
        cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", server.url]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*cmd, "--config", str(config)], stdout=out, stderr=out, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 30
            while b"refuses" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "no word of the refusal"
                time.sleep(0.1)
            time.sleep(1.0)
            assert proc.poll() is None, "run exited on a read-only Redis"
            assert b"touchflow live on" not in log.read_bytes()
            r.execute_command("REPLICAOF", "NO", "ONE")
            while b"touchflow live on" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "run did not go on once Redis took writes"
                time.sleep(0.1)
            events = h.make_events(prospects=5, per_prospect=4, seed=9)
            h.publish(r, KEYS, events)
            h.wait_drained(r, KEYS)
        finally:
            assert h.stop(proc) == 0
        expected, _states = h.oracle(events, config, tmp_path)
        assert sorted(h.live_commands(r, KEYS)) == sorted(expected)
        assert b"Traceback" not in log.read_bytes()
    finally:
        r.close()
