"""`/scorecard.json`, the token, the page's files and the `touchflow_scorecard_*` series, over
real HTTP against the real server (uvicorn on its thread), with a scorecard from a replay."""

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.health import Health
from connectors.metrics import Metrics
from connectors.scorecard_metrics import Latest
from connectors.web import (
    COOKIE,
    NO_SCORECARD,
    NOT_YET,
    TOKEN_ENV,
    WebServer,
    metrics_token,
    page_file,
    serve,
)
from operators.scorecard_view import COUNT_KEYS
from operators.timeutil import parse_ts
from tests.page.data import Card, scorecard_of

TOKEN = "s3cr3t-scorecard-token"
PASSWORD = "hunter2-redis-password"


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    return scorecard_of(tmp_path_factory.mktemp("http"), prospects=40, seed=5)


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[WebServer, httpx.Client]]]:
    opened: list[tuple[WebServer, httpx.Client]] = []

    def make(
        provider: Callable[[], Card | None] | None, token: str | None = None
    ) -> tuple[WebServer, httpx.Client]:
        server = serve(Metrics(health=Health()), 0, lambda: None, scorecard=provider, token=token)
        opened.append((server, httpx.Client(base_url=server.url, timeout=10)))
        return opened[-1]

    yield make
    for server, client in opened:
        client.close()
        server.stop()


def test_scorecard_json_is_the_providers_card(
    start: Callable[..., tuple[WebServer, httpx.Client]], card: Card
) -> None:
    _, http = start(lambda: card)
    reply = http.get("/scorecard.json?ignored=1")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.json() == card
    keys = {"channels", "overall", "sequences", "campaigns", "held_back", "as_of", "daily"}
    assert set(card) == keys


def test_no_scorecard_here_not_yet_and_unavailable_say_so(
    start: Callable[..., tuple[WebServer, httpx.Client]], caplog: pytest.LogCaptureFixture
) -> None:
    def failing() -> Card | None:
        msg = f"Error connecting to redis://default:{PASSWORD}@db:6379/0"
        raise ConnectionError(msg)

    caplog.set_level(logging.DEBUG)
    for provider, status, error in (
        (None, 404, NO_SCORECARD),
        (lambda: None, 503, NOT_YET),
        (failing, 503, "scorecard unavailable: Error connecting to redis://default:***@db"),
    ):
        _, http = start(provider)
        reply = http.get("/scorecard.json")
        assert reply.status_code == status
        assert reply.json()["error"].startswith(error)
        assert reply.headers.get("retry-after") == (None if status == 404 else "10")
        assert PASSWORD not in reply.text
        assert http.get("/metrics").status_code == 200  # the flow's own series still served
    assert "scorecard unavailable" in caplog.text
    assert PASSWORD not in caplog.text


def test_the_token_guards_the_scorecard_and_only_it(
    start: Callable[..., tuple[WebServer, httpx.Client]],
    card: Card,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, http = start(lambda: card, TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/scorecard", "/scorecard.json"):
        assert http.get(path).status_code == 401
        assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get(path, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
        refused = http.get(
            path, headers={"Cookie": f"{COOKIE}={TOKEN}"}
        )  # the token itself is not the cookie
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert http.get(path, headers=bearer).status_code == 200
    assert http.get("/scorecard.json", headers=bearer).json() == card
    assert http.get("/scorecard?token=nope").status_code == 401
    # Probes and scrapers carry no token: /metrics and /healthz stay open.
    assert http.get("/metrics").status_code == 200
    assert http.get("/healthz").text == "ok\n"

    opened = http.get(f"/scorecard?refresh=5&token={TOKEN}")
    assert opened.status_code == 303
    assert opened.headers["location"] == "scorecard?refresh=5"
    set_cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "samesite=strict" in set_cookie.lower()
    assert TOKEN not in set_cookie
    cookie = http.cookies[COOKIE]
    assert http.get("/scorecard").status_code == 200  # the client now sends the cookie
    assert http.get("/scorecard.json").json() == card
    http.cookies.clear()
    assert http.get("/scorecard.json").status_code == 401
    forged = "0" * len(cookie)
    assert http.get("/scorecard.json", headers={"Cookie": f"{COOKIE}={forged}"}).status_code == 401
    ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert ours, "nothing logged at all: the check below would prove nothing"
    assert not [r for r in ours if TOKEN in r.getMessage()]


def test_the_token_comes_from_the_environment() -> None:
    assert metrics_token({TOKEN_ENV: TOKEN}) == TOKEN
    assert metrics_token({TOKEN_ENV: ""}) is None
    assert metrics_token({}) is None


def test_the_page_and_its_files(
    start: Callable[..., tuple[WebServer, httpx.Client]], card: Card
) -> None:
    _, http = start(lambda: card)
    page = http.get("/scorecard?refresh=3")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.content == page_file("scorecard.html")
    library = http.get("/scorecard/assets/chart.umd.min.js", headers={"Accept-Encoding": "gzip"})
    assert library.status_code == 200
    assert library.headers["content-type"].startswith("text/javascript")
    assert library.headers["content-encoding"] == "gzip"  # httpx decoded it
    vendored = Path(__file__).resolve().parents[2] / "connectors/page/vendor/chart.umd.min.js"
    assert library.content == vendored.read_bytes()
    for name in ("scorecard.js", "scorecard.css"):
        assert http.get(f"/scorecard/assets/{name}").content == page_file(name)
    assert http.get("/scorecard/assets/nothing.js").status_code == 404
    assert http.post("/scorecard.json").status_code == 405


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_scorecard_is_also_prometheus_series(
    start: Callable[..., tuple[WebServer, httpx.Client]], card: Card
) -> None:
    _, http = start(lambda: card)
    samples = _samples(http.get("/metrics").text)
    for channel, row in card["channels"].items():
        for key in COUNT_KEYS:
            labels = (("channel", channel),)
            assert samples[(f"touchflow_scorecard_{key}", labels)] == row[key], (key, channel)
    overall = card["overall"]
    assert samples[("touchflow_scorecard_prospects_touched", ())] == overall["prospects_touched"]
    assert samples[("touchflow_scorecard_prospects_replied", ())] == overall["prospects_replied"]
    assert samples[("touchflow_scorecard_overall_opt_outs", ())] == overall["opt_outs"]
    for rule, row in card["held_back"].items():
        for verdict in ("deferred", "blocked"):
            key = ("touchflow_scorecard_held_back", (("rule", rule), ("verdict", verdict)))
            assert samples[key] == row[verdict]
    for name, row in card["sequences"].items():
        key = ("touchflow_scorecard_sequence_enrolled", (("sequence", name),))
        assert samples[key] == row["enrolled"]
    as_of = samples[("touchflow_scorecard_as_of_timestamp_seconds", ())]
    assert as_of == parse_ts(card["as_of"]) / 1000
    assert not any("campaign" in dict(labels) for _name, labels in samples)
    assert samples[("touchflow_healthy", ())] == 1.0


@pytest.mark.parametrize("provider", ["none yet", "failing"])
def test_without_a_scorecard_the_other_series_are_still_served(
    start: Callable[..., tuple[WebServer, httpx.Client]], provider: str
) -> None:
    def failing() -> Card | None:
        msg = "Redis is away"
        raise ConnectionError(msg)

    _, http = start((lambda: None) if provider == "none yet" else failing)
    reply = http.get("/metrics")
    assert reply.status_code == 200
    names = {name for name, _labels in _samples(reply.text)}
    assert "touchflow_redis_refusing" in names
    assert not any(name.startswith("touchflow_scorecard_") for name in names)


def test_latest_reads_once_per_max_age() -> None:
    calls: list[int] = []

    def provider() -> Card | None:
        calls.append(1)
        return {"n": len(calls)}

    shared = Latest(provider, max_age_s=3600)
    assert [shared(), shared()] == [{"n": 1}, {"n": 1}]
    fresh = Latest(provider, max_age_s=0)
    assert [fresh(), fresh()] == [{"n": 2}, {"n": 3}]


def test_latest_shares_a_failed_read_too() -> None:
    """Requests queued behind a read that failed get its error, not a read each (a stalled
    Redis would hold every one of them for a socket timeout)."""
    calls: list[int] = []

    def provider() -> Card | None:
        calls.append(1)
        msg = "Redis stalled"
        raise ConnectionError(msg)

    shared = Latest(provider, max_age_s=3600)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            shared()
    assert len(calls) == 1


def test_the_cookie_is_secure_behind_a_tls_proxy(
    start: Callable[..., tuple[WebServer, httpx.Client]], card: Card
) -> None:
    """A TLS-terminating proxy on the same host says `X-Forwarded-Proto: https`, which uvicorn
    trusts from loopback (`FORWARDED_ALLOW_IPS` names other proxies): the cookie is then marked
    Secure, so a browser never sends it over plain HTTP. Asked over plain HTTP, it is not (a
    Secure cookie would never come back, and the page would answer 401 after its redirect)."""
    _, http = start(lambda: card, token=TOKEN)
    proxied = http.get(f"/scorecard?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
    assert proxied.status_code == 303
    assert "secure" in [part.strip().lower() for part in proxied.headers["set-cookie"].split(";")]
    plain = http.get(f"/scorecard?token={TOKEN}")
    assert "secure" not in [part.strip().lower() for part in plain.headers["set-cookie"].split(";")]
