"""The metrics port answers its paths exactly, `/healthz` says why it is unhealthy, and the
server binds where it is told, fails at once on a taken port and stops cleanly."""

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from connectors.health import Health
from connectors.metrics import Metrics
from connectors.web import serve


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
        http.stop()


@pytest.mark.parametrize("path", ["/metrics", "/metrics?x", "/metrics?name[]=a"])
def test_metrics_answers_on_its_exact_path(server: _Server, path: str) -> None:
    status, body = _get(server.port, path)
    assert status == 200
    assert b"touchflow_redis_refusing 0.0" in body


@pytest.mark.parametrize(
    "path",
    [
        "/metricsXYZ",
        "/healthzfoo",
        "/metrics/",
        "/healthz/x",
        "/",
        "/metric",
        "/x/metrics",
        "/scorecard/",
        "/scorecard/assets/../web.py",
        "/scorecard/assets/scorecard.html",
    ],
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
    scraped = _get(server.port, "/metrics")[1]
    assert b"touchflow_redis_refusing 1.0" in scraped
    assert b"touchflow_healthy 0.0" in scraped
    server.health.clear(first)  # the other writer still waits: still unhealthy, not refusing
    assert _get(server.port, "/healthz") == (
        503,
        b"unhealthy: Redis unavailable (checkpoint): gone\n",
    )
    assert b"touchflow_redis_refusing 0.0" in _get(server.port, "/metrics")[1]
    server.health.clear(second)
    assert _get(server.port, "/healthz") == (200, b"ok\n")
    assert b"touchflow_healthy 1.0" in _get(server.port, "/metrics")[1]


def test_metrics_speaks_openmetrics_when_asked(server: _Server) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
        assert reply.read().endswith(b"# EOF\n")


def test_a_problem_check_that_raises_reads_as_unhealthy() -> None:
    def broken() -> str | None:
        msg = "probe exploded"
        raise RuntimeError(msg)

    metrics = Metrics(health=Health())
    metrics.watch_health(broken)
    assert b"touchflow_healthy 0.0" in generate_latest(metrics.registry)


def test_a_taken_port_fails_serve_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            serve(Metrics(health=Health()), taken.getsockname()[1], lambda: None)


def test_it_binds_the_host_it_is_given_and_stops_cleanly() -> None:
    """Bound to 127.0.0.2 (still loopback), it is not on 127.0.0.1; after stop, nothing is."""
    port = _free_port()
    http = serve(Metrics(health=Health()), port, lambda: None, host="127.0.0.2")
    try:
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/healthz", timeout=5) as reply:
            assert reply.read() == b"ok\n"
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        http.stop()
    assert not http.running
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.2:{port}/healthz", timeout=5)
