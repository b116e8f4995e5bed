"""The Redis password appears nowhere a real `touchflow run` or `publish` shows anything.

A password-protected Redis; its password given both in the URL's userinfo and in `?password=`.
Every output is searched for it: stdout and stderr, the command line of the process and of each
of its worker processes (what `ps` shows anyone on the machine), `/metrics` and `/healthz` of
every worker; and the one-line errors of a wrong password and of an unreachable host.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
import redis

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from tests.dataflows import live_harness as h
from tests.dataflows.test_outage_live import get, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)
SECRET = "Zq8-never-print-me"


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children of children too)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")


def _free_ports(count: int) -> int:
    """A port P such that P..P+count-1 are free now (one per worker's metrics server)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + count < 65536 and all(_free(base + n) for n in range(count)):
            return base
    msg = "no run of free ports"
    raise AssertionError(msg)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_no_output_of_run_or_publish_shows_the_password(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = embedded_redis_factory(password=SECRET)
    url = f"redis://default:{SECRET}@127.0.0.1:{server.port}/0?password={SECRET}"
    config = h.write_config(tmp_path)
    port = _free_ports(2)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url, "--config", str(config)]
    cmd += ["--workers", "2", "--metrics-port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(cmd, stdout=o, stderr=e, env=env, start_new_session=True)
    seen: list[bytes] = []
    try:
        wait_for("touchflow run to start", lambda: b"touchflow live on" in err.read_bytes(), 30)
        r = redis.Redis.from_url(server.url)
        events = h.make_events(prospects=10, per_prospect=3, seed=9)
        h.publish(r, KEYS, events)
        h.wait_drained(r, KEYS, timeout=60)
        r.close()
        for n in range(2):
            wait_for("the workers' metrics", lambda n=n: get(port + n, "/healthz")[0] == 200, 30)
            for path in ("/metrics", "/healthz", "/nothing"):
                status, body = get(port + n, path)
                assert status in (200, 404)
                seen.append(body)
        assert b"touchflow_commands" in seen[0]
        workers = _descendants(proc.pid)
        assert len(workers) == 2, [_cmdline(pid) for pid in workers]
        for pid in (proc.pid, *workers):
            seen.append(_cmdline(pid))
            assert b"dataflows.cli" in seen[-1]
        published = tmp_path / "one.jsonl"
        published.write_bytes(msgspec.json.encode(events[0]) + b"\n")
        query_only = f"redis://127.0.0.1:{server.port}/0?password={SECRET}"
        config_arg = ["--config", str(config)]
        pub = subprocess.run(
            [sys.executable, "-m", "dataflows.cli", "publish", str(published), "--redis",
             query_only, *config_arg],
            capture_output=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert pub.returncode == 0, pub.stderr
        assert pub.stderr == b"published 1 events\n"
        seen += [pub.stdout, pub.stderr]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    logged = err.read_bytes()
    assert b"touchflow live on redis://default:***@127.0.0.1:" in logged
    assert b"?password=***" in logged
    for text in (*seen, out.read_bytes(), logged):
        assert SECRET.encode() not in text


@pytest.mark.parametrize("where", ["wrong password", "unreachable host"])
def test_run_and_publish_errors_never_show_the_password(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path, where: str
) -> None:
    server = embedded_redis_factory(password="the-right-one")
    port = server.port if where == "wrong password" else 1
    url = f"redis://default:{SECRET}@127.0.0.1:{port}/0?password={SECRET}"
    events = tmp_path / "e.jsonl"
    events.write_text('{"id":"1","type":"chat_started","prospect":"p","ts":"2026-03-02T10:00Z"}\n')
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    for command in (["run"], ["publish", str(events)]):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "dataflows.cli", *command, "--redis", url],
            capture_output=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert done.stderr.count(b"\n") == 1, done.stderr
        assert SECRET.encode() not in done.stdout + done.stderr
        assert b"redis://default:***@127.0.0.1:" in done.stderr
        assert time.monotonic() - started < 30
