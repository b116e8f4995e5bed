"""The metrics server answers its two paths exactly, and `/healthz` says why it is unhealthy."""

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from connectors.health import Health
from connectors.metrics import Metrics, serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


class _Server:
    def __init__(self) -> None:
        self.health = Health()
        self.metrics = Metrics(health=self.health)
        self.port = _free_port()


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    s = _Server()
    http = serve(s.metrics, s.port, s.health.problem)
    try:
        yield s
    finally:
        http.shutdown()
        http.server_close()


@pytest.mark.parametrize("path", ["/metrics", "/metrics?x", "/metrics?name[]=a"])
def test_metrics_answers_on_its_exact_path(server: _Server, path: str) -> None:
    status, body = _get(server.port, path)
    assert status == 200
    assert b"touchflow_redis_refusing 0.0" in body


@pytest.mark.parametrize(
    "path",
    ["/metricsXYZ", "/healthzfoo", "/metrics/", "/healthz/x", "/", "/metric", "/x/metrics"],
)
def test_any_other_path_is_not_found(server: _Server, path: str) -> None:
    assert _get(server.port, path) == (404, b"not found\n")


def test_healthz_is_503_with_the_reason_while_a_writer_waits(server: _Server) -> None:
    assert _get(server.port, "/healthz") == (200, b"ok\n")
    assert _get(server.port, "/healthz?verbose") == (200, b"ok\n")
    first, second = object(), object()
    server.health.report(first, "Redis refuses writes (commands): OOM no room", refusal=True)
    server.health.report(second, "Redis unavailable (checkpoint): gone", refusal=False)
    status, body = _get(server.port, "/healthz")
    assert (status, body) == (503, b"unhealthy: Redis refuses writes (commands): OOM no room\n")
    assert b"touchflow_redis_refusing 1.0" in _get(server.port, "/metrics")[1]
    server.health.clear(first)  # the other writer still waits: still unhealthy, not refusing
    assert _get(server.port, "/healthz") == (
        503,
        b"unhealthy: Redis unavailable (checkpoint): gone\n",
    )
    assert b"touchflow_redis_refusing 0.0" in _get(server.port, "/metrics")[1]
    server.health.clear(second)
    assert _get(server.port, "/healthz") == (200, b"ok\n")
