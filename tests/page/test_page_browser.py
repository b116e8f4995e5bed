"""The scorecard page in a real headless chromium, served by the real metrics server.

The page must load without a console error, show every number of `/scorecard.json` (each
cell is compared with the JSON the server answered, not with the card the test built), draw
its charts from the same numbers, refresh itself, and work behind the bearer token.
"""

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from connectors.health import Health
from connectors.metrics import Metrics
from connectors.web import NOT_YET, WebServer, serve
from operators.scorecard_facts import Counts
from operators.scorecard_view import (
    CAMPAIGN_KEYS,
    CHANNEL_KEYS,
    OVERALL_KEYS,
    SEQUENCE_KEYS,
    scorecard,
)
from tests.page.browser import console, console_errors, headless, require_chromium, wait_ready
from tests.page.data import Card, scorecard_of
from tests.report.helpers import POLICY

pytestmark = pytest.mark.timeout(180)
TOKEN = "page-test-token-5f1c"


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    return scorecard_of(tmp_path_factory.mktemp("page"), prospects=150, seed=11)


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    require_chromium()
    with headless() as driver:
        yield driver


@pytest.fixture
def browser(chromium: WebDriver) -> Iterator[WebDriver]:
    """The shared browser on a blank page, its console and cookies empty: a page of an earlier
    test, still refreshing against a server that is gone, cannot log into this test."""
    chromium.get("about:blank")
    chromium.delete_all_cookies()
    console(chromium)
    yield chromium
    chromium.get("about:blank")


@pytest.fixture
def start() -> Iterator[Callable[..., WebServer]]:
    servers: list[WebServer] = []

    def make(provider: Callable[[], Card | None] | None, token: str | None = None) -> WebServer:
        servers.append(serve(Metrics(health=Health()), 0, lambda: None, scorecard=provider,
                             token=token))  # fmt: skip
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def _served_json(server: WebServer, token: str | None = None) -> Card:
    request = urllib.request.Request(f"{server.url}/scorecard.json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as reply:
        served: Card = orjson.loads(reply.read())
        return served


def _cells(driver: WebDriver) -> dict[str, str]:
    """Every value cell of the page: its `data-cell` path in the JSON → the text shown."""
    found: dict[str, str] = driver.execute_script(
        "const out = {};"
        "for (const n of document.querySelectorAll('[data-cell]')) out[n.dataset.cell] = "
        "n.textContent;"
        "return out;"
    )
    return found


def _check_shown(path: str, value: Any, text: str) -> None:
    """A cell shows its JSON value: counts exactly, rates in % to 0.1, means to 0.01."""
    key = path.rsplit(".", 1)[1]
    if value is None:
        assert text == "—", (path, text)
    elif key.endswith(("rate", "share")):
        assert text.endswith("%"), (path, text)
        assert abs(float(text[:-1]) - value * 100) <= 0.05 + 1e-9, (path, value, text)
    elif key in ("avg_touches_to_reply", "complaints_per_1000_touches"):
        assert abs(float(text) - value) <= 0.005 + 1e-9, (path, value, text)
    else:
        assert text == f"{value:,}", (path, value, text)


def _expected_cells(served: Card) -> dict[str, Any]:
    """Every number the page must show, by its path in the JSON."""
    out: dict[str, Any] = {}
    for channel, row in served["channels"].items():
        out.update({f"channels.{channel}.{k}": row[k] for k in CHANNEL_KEYS})
    out.update({f"overall.{k}": served["overall"][k] for k in OVERALL_KEYS})
    for table, keys in (
        ("sequences", SEQUENCE_KEYS),
        ("campaigns", CAMPAIGN_KEYS),
        ("held_back", ("deferred", "blocked")),
    ):
        for name, row in served[table].items():
            out.update({f"{table}.{name}.{k}": row[k] for k in keys})
    return out


def _chart(driver: WebDriver, canvas: str) -> dict[str, Any]:
    data: dict[str, Any] = driver.execute_script(
        "const c = window.Chart.getChart(arguments[0]);"
        "return {labels: c.data.labels, sets: c.data.datasets.map(d => [d.label, d.data])};",
        canvas,
    )
    return data


def test_the_page_shows_every_number_of_scorecard_json(
    browser: WebDriver, start: Callable[..., WebServer], card: Card
) -> None:
    server = start(lambda: card)
    served = _served_json(server)
    assert served["channels"]["email"]["touches"] > 0, "the replay gave the page nothing to show"
    browser.get(f"{server.url}/scorecard?refresh=0")
    wait_ready(browser)
    assert console_errors(browser) == []
    cells = _cells(browser)
    expected = _expected_cells(served)
    assert set(cells) == set(expected)
    for path, value in expected.items():
        _check_shown(path, value, cells[path])
    assert served["as_of"] in browser.find_element("id", "status").text

    conversions = _chart(browser, "chart-conversions")
    assert conversions["sets"] == [
        ["conversions", [served["channels"][c]["conversions"] for c in conversions["labels"]]]
    ]
    held = _chart(browser, "chart-held")
    rules = sorted(served["held_back"].items(), key=lambda r: (-sum(r[1].values()), r[0]))
    assert len(rules) > 10, "too few rules to see the chart fold the rest into one bar"
    assert held["labels"][:9] == [name for name, _row in rules[:9]]
    assert held["labels"][9] == f"other ({len(rules) - 9} rules)"
    for verdict, values in held["sets"]:
        assert values[:9] == [row[verdict] for _name, row in rules[:9]]
        assert sum(values) == sum(row[verdict] for _name, row in rules)  # nothing lost
    for kind in ("touches", "replies"):
        chart = _chart(browser, f"chart-{kind}")
        assert chart["labels"] == sorted(served["daily"])
        for channel, values in chart["sets"]:
            assert values == [served["daily"][d][kind].get(channel, 0) for d in chart["labels"]]


def test_the_page_refreshes_itself(
    browser: WebDriver, start: Callable[..., WebServer], card: Card
) -> None:
    now = {"card": card}
    server = start(lambda: now["card"])
    browser.get(f"{server.url}/scorecard?refresh=1")
    wait_ready(browser)
    later = orjson.loads(orjson.dumps(card))
    later["channels"]["sms"]["touches"] += 1234
    later["campaigns"]["spring-launch"] = {"requested": 9, "sent": 7, "deferred": 1, "blocked": 1}
    now["card"] = later
    WebDriverWait(browser, 15).until(lambda d: _cells(d).get("campaigns.spring-launch.sent") == "7")
    assert _cells(browser)["channels.sms.touches"] == f"{later['channels']['sms']['touches']:,}"
    assert console_errors(browser) == []


def test_behind_a_token_the_page_opens_with_it_once(
    browser: WebDriver, start: Callable[..., WebServer], card: Card
) -> None:
    server = start(lambda: card, TOKEN)
    for url in (f"{server.url}/scorecard", f"{server.url}/scorecard?token=wrong"):
        browser.get(url)
        assert "unauthorized" in browser.find_element("tag name", "body").text
    console(browser)  # the refused loads above are logged as errors: not the page's
    browser.get(f"{server.url}/scorecard?token={TOKEN}&refresh=0")
    wait_ready(browser)
    assert browser.current_url == f"{server.url}/scorecard?refresh=0"  # the token left the URL
    (cookie,) = browser.get_cookies()
    assert cookie["httpOnly"] is True
    assert TOKEN not in cookie["value"]
    served = _served_json(server, TOKEN)
    cells = _cells(browser)
    for path, value in _expected_cells(served).items():
        _check_shown(path, value, cells[path])
    assert console_errors(browser) == []


def test_an_empty_scorecard_shows_zeros_and_dashes(
    browser: WebDriver, start: Callable[..., WebServer]
) -> None:
    """A deployment that has counted nothing yet: every cell still there, no chart breaks."""
    empty = scorecard(Counts(), POLICY.sequences)
    empty |= {"as_of": "2026-11-30T00:00:00Z", "daily": {}}
    server = start(lambda: empty)
    browser.get(f"{server.url}/scorecard?refresh=0")
    wait_ready(browser)
    served = _served_json(server)
    cells = _cells(browser)
    assert set(cells) == set(_expected_cells(served))
    for path, value in _expected_cells(served).items():
        _check_shown(path, value, cells[path])
    assert cells["overall.reply_rate"] == "—"
    assert browser.find_element("id", "campaigns").text.endswith("(none)")
    assert _chart(browser, "chart-touches")["labels"] == []
    assert console_errors(browser) == []


@pytest.mark.parametrize("keeps", ["none", "not yet"])
def test_the_page_says_why_it_has_no_numbers(
    browser: WebDriver, start: Callable[..., WebServer], keeps: str
) -> None:
    server = start(None if keeps == "none" else lambda: None)
    browser.get(f"{server.url}/scorecard?refresh=0")
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-state") == "error"
    )
    status = browser.find_element("id", "status").text
    assert status.startswith("no scorecard here" if keeps == "none" else NOT_YET[:20]), status
    errors = console_errors(browser)  # the failed fetch itself, and nothing else
    assert len(errors) == 1, errors
    assert "scorecard.json" in errors[0], errors


def test_the_vendored_chart_library_is_the_one_the_page_loads() -> None:
    """No CDN: the page's scripts are all package files, and the library's license ships too."""
    page = Path(__file__).resolve().parents[2] / "connectors" / "page"
    html = (page / "scorecard.html").read_text()
    assert "://" not in html.replace("http://www.w3.org", "")
    assert 'src="scorecard/assets/chart.umd.min.js"' in html
    assert (page / "vendor" / "chart.umd.min.js").stat().st_size > 100_000
    assert "MIT" in (page / "vendor" / "chart.js-LICENSE.md").read_text()
