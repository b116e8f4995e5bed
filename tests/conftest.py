"""Shared fixtures: one real Redis for the whole session, a clean database for each test.

The server is, in order of preference: the one at `REDIS_URL`, a testcontainers Redis (pinned
image) when a Docker engine answers, else an embedded redis-server started for the session. Tests
use database 15 (never 0, which is where a developer's own data lives) and it is flushed before
each test.
"""

from __future__ import annotations

import gc
import os
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.redis_server import EmbeddedRedis

REDIS_IMAGE = "redis:7.2.5-alpine"
TEST_DB = 15  # never 0: with REDIS_URL this may be a developer's own server

EmbeddedRedisFactory = Callable[..., EmbeddedRedis]


def _docker_answers() -> bool:
    """True when a Docker engine answers a ping within a couple of seconds."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    # docker-py leaks a socket when the engine is absent; under `filterwarnings = error` that
    # ResourceWarning would fail a random later test, so collect it here, where it is ignored.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker  # lazily: most runs never need it

            client = docker.from_env(timeout=2)
            try:
                answers = bool(client.ping())
            finally:
                client.close()
        except Exception:
            answers = False
        gc.collect()
    return answers


def _redis_container() -> Any:
    """A testcontainers RedisContainer (module moved to `community` in testcontainers 4.x)."""
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        with warnings.catch_warnings():  # the old location warns that it is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.redis import RedisContainer
    return RedisContainer(REDIS_IMAGE)


def _with_db(url: str, db: int) -> str:
    """The same server URL pointing at database `db` (path for redis://, query for unix://)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "db"]
    if parts.scheme == "unix":
        query.append(("db", str(db)))
        return f"unix://{parts.netloc}{parts.path}?{urllib.parse.urlencode(query)}"
    return parts._replace(path=f"/{db}", query=urllib.parse.urlencode(query)).geturl()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Redis server (database 0 in the URL; tests use `redis_test_url`)."""
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        yield env_url
        return
    if _docker_answers():
        with _redis_container() as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_test_url(redis_url: str) -> str:
    """URL of the test database on the session server."""
    return _with_db(redis_url, TEST_DB)


@pytest.fixture
def redis_client(redis_test_url: str) -> Iterator[redis.Redis]:
    """A client on the test database, flushed before the test and closed after it."""
    client = redis.Redis.from_url(redis_test_url)
    try:
        client.flushdb()
        yield client
    finally:
        client.close()


@pytest.fixture
def embedded_redis_factory(tmp_path: Path) -> Iterator[EmbeddedRedisFactory]:
    """Make extra, started EmbeddedRedis servers (e.g. to kill and restart); all stopped after."""
    servers: list[EmbeddedRedis] = []

    def make(**kwargs: Any) -> EmbeddedRedis:
        kwargs.setdefault("data_dir", tmp_path / f"redis-{len(servers)}")
        server = EmbeddedRedis(**kwargs)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
