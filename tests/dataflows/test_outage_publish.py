"""`touchflow publish` on a Redis that refuses writes: a clear line, retries, no traceback.

It waits for a refusal to end (out of memory here), then publishes every line exactly once; a
refusal that outlasts `--give-up-after` (or TOUCHFLOW_PUBLISH_GIVE_UP_S) ends it with one line and
exit 1, having written nothing of the refused batch.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from connectors.redis_server import EmbeddedRedis
from connectors.shard_count import claim_shards
from dataflows.live import keys_for
from operators.policy import load_policy
from tests.dataflows import live_harness as h

pytestmark = pytest.mark.redis
KEYS = keys_for(load_policy(None))


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory()


@pytest.fixture
def admin(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(server.url)
    claim_shards(r, KEYS)  # as the first `run` or `publish` did, before the outage
    yield r
    r.close()


@pytest.fixture
def events_file(tmp_path: Path) -> tuple[Path, list[bytes]]:
    lines = [msgspec.json.encode(e) for e in h.make_events(prospects=10, per_prospect=3, seed=5)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path, lines


def _publish(
    url: str, path: Path, stderr: Path, *extra: str, **env: str
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "dataflows.cli", "publish", str(path), "--redis", url, *extra]
    environment = {k: v for k, v in os.environ.items() if k != "TOUCHFLOW_PUBLISH_GIVE_UP_S"}
    with stderr.open("wb") as err:
        return subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, env={**environment, **env}
        )


def _published(r: redis.Redis) -> list[bytes]:
    return [
        fields[b"event"] for n in range(KEYS.shards) for _id, fields in r.xrange(KEYS.events(n))
    ]


def test_publish_waits_out_a_refusal_then_publishes_every_line_once(
    server: EmbeddedRedis, admin: redis.Redis, events_file: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    path, lines = events_file
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    stderr = tmp_path / "stderr"
    proc = _publish(server.url, path, stderr, TOUCHFLOW_PUBLISH_GIVE_UP_S="30")
    try:
        deadline = time.monotonic() + 20
        while b"Redis refuses writes" not in stderr.read_bytes():
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "publish did not say that Redis refuses writes"
            time.sleep(0.05)
        time.sleep(1.0)  # a few retries
        assert proc.poll() is None, "publish gave up long before --give-up-after"
        assert _published(admin) == []
    finally:
        admin.config_set("maxmemory", 0)
    assert proc.wait(timeout=30) == 0, stderr.read_text()
    text = stderr.read_text()
    assert text.splitlines() == [
        "touchflow: Redis refuses writes (OOM command not allowed when used memory > "
        "'maxmemory'.); retrying for up to 30 s",
        text.splitlines()[1],
        f"published {len(lines)} events",
    ]
    assert text.splitlines()[1].startswith("touchflow: Redis accepts writes again after ")
    assert sorted(_published(admin)) == sorted(lines)  # each line once


def test_publish_gives_up_after_the_time_allowed_with_one_line_and_exit_1(
    server: EmbeddedRedis, admin: redis.Redis, events_file: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    with socket.socket() as s:  # a master that is not there: Redis turns read-only
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()[1]
    admin.execute_command("REPLICAOF", "127.0.0.1", str(nobody))
    stderr = tmp_path / "stderr"
    try:
        started = time.monotonic()
        proc = _publish(server.url, events_file[0], stderr, TOUCHFLOW_PUBLISH_GIVE_UP_S="1.5")
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
        assert _published(admin) == []
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    text = stderr.read_text()
    assert code == 1, text
    assert took >= 1.5
    assert "Traceback" not in text
    warning, error = text.splitlines()  # exactly two lines
    assert warning == (
        "touchflow: Redis refuses writes (READONLY You can't write against a read only "
        "replica.); retrying for up to 1.5 s"
    )
    assert error.startswith("touchflow: Redis still refuses writes after ")
    assert error.endswith(
        "(READONLY You can't write against a read only replica.); gave up with 0 events "
        "published, the rest not"
    )


def test_give_up_after_takes_seconds_and_refuses_a_negative_time(
    server: EmbeddedRedis, events_file: tuple[Path, list[bytes]], tmp_path: Path
) -> None:
    stderr = tmp_path / "stderr"
    proc = _publish(server.url, events_file[0], stderr, "--give-up-after", "-1")
    assert proc.wait(timeout=30) == 2
    assert stderr.read_text() == "touchflow: --give-up-after must be 0 or more seconds, got -1.0\n"
    proc = _publish(server.url, events_file[0], stderr, TOUCHFLOW_PUBLISH_GIVE_UP_S="soon")
    assert proc.wait(timeout=30) == 2
    assert stderr.read_text() == (
        "touchflow: TOUCHFLOW_PUBLISH_GIVE_UP_S must be a number of seconds, not 'soon'\n"
    )
    proc = _publish(server.url, events_file[0], stderr, "--give-up-after", "0.5")
    assert proc.wait(timeout=30) == 0
    assert stderr.read_text() == "published 30 events\n"
