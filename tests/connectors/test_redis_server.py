"""The embedded Redis server really starts, authenticates, persists through AOF, and dies."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.redis_server import EmbeddedRedis, EmbeddedRedisError, find_redis_server_binary

pytestmark = pytest.mark.redis

Factory = Callable[..., EmbeddedRedis]


def _port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_binary_is_found_and_executable() -> None:
    binary = Path(find_redis_server_binary())
    assert binary.is_file(), binary
    assert binary.stat().st_mode & 0o111, f"{binary} is not executable"


def test_context_manager_serves_set_get_and_cleans_up() -> None:
    with EmbeddedRedis() as server:
        data_dir = server.data_dir
        assert data_dir is not None
        assert server.pid is not None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
            assert client.config_get("appendonly") == {"appendonly": "no"}
    assert server.pid is None
    assert not data_dir.exists(), "the temporary data dir should be removed by stop()"
    assert not _port_accepts(server.port)


def test_password_is_required_and_checked(embedded_redis_factory: Factory) -> None:
    password = 'p@ss "word" with spaces'
    server = embedded_redis_factory(password=password)
    assert password not in " ".join(Path(f"/proc/{server.pid}/cmdline").read_text().split("\0"))
    with redis.Redis.from_url(server.url) as client:
        assert client.set("k", "v")
        assert client.get("k") == b"v"
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors with backoff by default
    for wrong_password in (None, "wrong"):
        with (
            redis.Redis(port=server.port, password=wrong_password, retry=no_retry) as client,
            pytest.raises(redis.AuthenticationError),
        ):
            client.get("k")


def test_restart_keeps_data_through_aof(embedded_redis_factory: Factory) -> None:
    server = embedded_redis_factory(appendonly=True, appendfsync="always")
    port, pid = server.port, server.pid
    with redis.Redis.from_url(server.url) as client:
        client.set("checkpoint", "42")
        client.xadd("events:0", {"id": "e1"})
    server.restart()
    assert server.port == port
    assert server.pid != pid
    with redis.Redis.from_url(server.url) as client:
        assert client.get("checkpoint") == b"42"
        assert client.xlen("events:0") == 1


def test_kill_closes_port_and_start_recovers_data(embedded_redis_factory: Factory) -> None:
    server = embedded_redis_factory(appendonly=True, appendfsync="always")
    with redis.Redis.from_url(server.url) as client:
        client.set("survivor", "yes")
    server.kill()
    assert server.pid is None
    assert not _port_accepts(server.port)
    server.start()  # same port and dir, as after a crash
    with redis.Redis.from_url(server.url) as client:
        assert client.get("survivor") == b"yes"


def test_stop_is_idempotent(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "redis")
    server.stop()  # before start: nothing to do
    server.start()
    port = server.port
    server.stop()
    server.stop()
    assert server.pid is None
    assert not _port_accepts(port)
    assert (tmp_path / "redis" / "redis.log").is_file(), "a caller's data dir must be kept"


def test_start_twice_is_refused(embedded_redis_factory: Factory) -> None:
    server = embedded_redis_factory()
    with pytest.raises(EmbeddedRedisError, match="already running"):
        server.start()


def test_port_in_use_fails_with_log_tail(embedded_redis_factory: Factory, tmp_path: Path) -> None:
    first = embedded_redis_factory()
    second = EmbeddedRedis(port=first.port, data_dir=tmp_path / "second")
    with pytest.raises(EmbeddedRedisError, match="log tail") as excinfo:
        second.start()
    assert "in use" in str(excinfo.value)
    assert second.pid is None


def test_bad_arguments_are_rejected_early() -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedRedis(appendfsync="sometimes")
    with pytest.raises(ValueError, match="port"):
        EmbeddedRedis(port=70000)


@pytest.mark.parametrize("run", ["first", "second"])
def test_redis_client_gets_an_empty_test_database(redis_client: redis.Redis, run: str) -> None:
    # Each run leaves a key behind; whichever runs second fails unless the fixture flushed.
    assert redis_client.connection_pool.connection_kwargs["db"] == 15
    assert redis_client.dbsize() == 0
    redis_client.set(f"leftover:{run}", "1")
    assert redis_client.dbsize() == 1


def test_redis_test_url_points_at_the_test_database(redis_test_url: str) -> None:
    assert redis_test_url.split("?")[0].endswith("/15"), redis_test_url
