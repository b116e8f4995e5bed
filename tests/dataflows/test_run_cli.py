"""`touchflow run` as an operator meets it: embedded Redis, clean stops, one-line errors."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from connectors.redis_client import redacted
from connectors.redis_server import EmbeddedRedis

pytestmark = pytest.mark.redis


def _env_without_redis() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def _touchflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "dataflows.cli", *args]
    return subprocess.run(
        cmd, capture_output=True, timeout=timeout, env=_env_without_redis(), check=False
    )


def test_run_without_a_url_starts_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--data-dir", str(tmp_path / "data")]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=_env_without_redis())
    deadline = time.monotonic() + 30
    while b"touchflow live on" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "started embedded Redis" in text
    assert "stopping after a final checkpoint" in text
    assert (tmp_path / "data" / "redis").is_dir()
    assert "Traceback" not in text


def test_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    run = _touchflow("run", "--redis", "redis://127.0.0.1:1/0")
    assert run.returncode == 1
    assert run.stderr.count(b"\n") == 1
    assert b"cannot reach Redis at redis://127.0.0.1:1/0" in run.stderr


def test_wrong_password_is_one_line_and_never_shows_the_secret(
    embedded_redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = embedded_redis_factory(password="right-secret")
    url = f"redis://:wrong-secret@127.0.0.1:{server.port}/0"
    run = _touchflow("run", "--redis", url)
    assert run.returncode == 1
    assert run.stderr.count(b"\n") == 1
    assert b"refused the credentials" in run.stderr
    assert b"wrong-secret" not in run.stderr
    missing = _touchflow("run", "--redis", f"redis://127.0.0.1:{server.port}/0")
    assert missing.returncode == 1
    assert b"needs a password" in missing.stderr


def test_password_urls_work_for_publish(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    server = embedded_redis_factory(password="s3cret")
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"id":"1","type":"chat_started","prospect":"p","ts":"2026-03-02T10:00:00Z"}\n'
    )
    run = _touchflow("publish", str(events), "--redis", server.url)
    assert run.returncode == 0, run.stderr
    assert b"published 1 events" in run.stderr
    assert b"s3cret" not in run.stderr


def test_redacted_hides_passwords() -> None:
    assert redacted("redis://u:pw@h:6379/0") == "redis://u:***@h:6379/0"
    assert redacted("rediss://:pw@h/1") == "rediss://:***@h/1"
    assert redacted("redis://h:6379") == "redis://h:6379"


def test_another_shard_count_on_the_same_streams_stops_at_start(
    embedded_redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    """Events already sharded 4 ways: `run` or `publish` with 8 would strand shards' entries and
    timers, and send a prospect's events to two streams; both refuse in one line, change nothing."""
    server = embedded_redis_factory()
    events = tmp_path / "e.jsonl"
    events.write_text(
        "".join(
            f'{{"id":"{n}","type":"chat_started","prospect":"p{n}","ts":"2026-03-02T10:00:00Z"}}\n'
            for n in range(20)
        )
    )
    assert _touchflow("publish", str(events), "--redis", server.url).returncode == 0
    eight = tmp_path / "eight.toml"
    default = (Path(__file__).parents[2] / "config" / "default.toml").read_text()
    assert "\nshards = 4\n" in default
    eight.write_text(default.replace("\nshards = 4\n", "\nshards = 8\n"))
    for command in (["publish", str(events)], ["run"]):
        refused = _touchflow(*command, "--redis", server.url, "--config", str(eight))
        assert refused.returncode == 1, command
        assert refused.stderr.count(b"\n") == 1, refused.stderr
        assert b"streams.shards is 8" in refused.stderr
        assert b"split 4 ways" in refused.stderr
    r = redis.Redis.from_url(server.url)
    try:
        assert sum(r.xlen(f"touchflow:events:{n}") for n in range(8)) == 20
        assert r.get("touchflow:shards") == b"4"
        assert not any(
            r.xinfo_groups(f"touchflow:events:{n}")
            for n in range(4)
            if r.exists(f"touchflow:events:{n}")
        )
    finally:
        r.close()
