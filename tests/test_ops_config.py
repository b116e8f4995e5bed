"""The ops files under config/ (Grafana dashboard, Prometheus alert rules) query only what the
real processes expose.

A dashboard panel over a misspelled or renamed metric shows "No data", which looks exactly like
"nothing happened", and an alert over one never fires: neither fails loudly on its own. So every
PromQL expression of both files is read (a small tokenizer, unit-tested below), and each metric
and label it names is looked up in the `/metrics` text of a real `touchflow run` and a real
gateway, started on the test Redis with a little traffic pushed through.

Why traffic: prometheus-client prints a labelled metric's `# HELP`/`# TYPE` lines even before
its first `labels()` call, but no sample, so the family names are known from the start and the
label names only once a series exists. Metric names are checked against the declared families
(a family's series: counter `_total`, histogram `_bucket`/`_sum`/`_count`), labels against the
samples the traffic created.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from connectors.keys import Keys, shard_of
from tests.conftest import TEST_DB, _with_db
from tests.dataflows import live_harness as live
from tests.gateway import harness as gw
from tests.gateway import samples

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "config" / "grafana" / "touchflow.json"
RULES = ROOT / "config" / "prometheus" / "touchflow-alerts.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "touchflow-alerts.test.yml"

# Series Prometheus makes itself for every target, and the labels it attaches to every series
# it scrapes: neither comes from a touchflow process.
PROMETHEUS_SERIES = {"up": frozenset({"job", "instance"})}
TARGET_LABELS = frozenset({"job", "instance"})
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


# -- which metrics and labels a PromQL expression uses ------------------------------------------

# Prometheus 3's functions and aggregations (a name not here, followed by `(`, is an error).
# fmt: off
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "double_exponential_smoothing", "end", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn",
    "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "start",
    "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp",
    "vector", "year",
})
AGGREGATIONS = frozenset({
    "avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max", "min",
    "quantile", "stddev", "stdvar", "sum", "topk",
})
# fmt: on
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "atan2", "offset", "inf", "nan"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<op>=~|!~|==|!=|>=|<=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Uses:
    """The metric names an expression selects and the label names it matches or groups on."""

    metrics: frozenset[str]
    labels: frozenset[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            msg = f"cannot read PromQL at {at}: {expr[at : at + 20]!r} in {expr!r}"
            raise ValueError(msg)
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        at = match.end()
    return out


def promql_uses(expr: str) -> Uses:
    """Metrics and labels of one PromQL expression (Grafana's `$var` may stand anywhere).

    An identifier is a keyword or an aggregation (`sum by (x) (...)`: no `(` needed), a function
    when `(` follows (an unknown one is an error, so a misspelled function fails here instead of
    hiding as a metric), or else a metric selector. `{...}` holds label matchers
    (`__name__="x"` selects the metric x), `by`/`on`/... a label list, `[...]` a range or
    subquery, skipped whole.
    """
    tokens = _tokens(expr)
    metrics: set[str] = set()
    labels: set[str] = set()
    depth = 0
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "[":
            end = next((j for j in range(i + 1, len(tokens)) if tokens[j][1] == "]"), None)
            if end is None:
                msg = f"unclosed [ in {expr!r}"
                raise ValueError(msg)
            i = end + 1
        elif text == "{":
            i = _matchers(tokens, i + 1, expr, metrics, labels)
        elif text in ("]", "}"):
            msg = f"unexpected {text} in {expr!r}"
            raise ValueError(msg)
        elif text in ("(", ")"):
            depth += 1 if text == "(" else -1
            if depth < 0:
                msg = f"unbalanced ) in {expr!r}"
                raise ValueError(msg)
            i += 1
        elif kind != "ident":
            i += 1
        elif text.lower() in GROUPING:
            i += 1
            if after == "(":
                i += 1
                while i < len(tokens) and tokens[i][1] != ")":
                    if tokens[i][0] == "ident":
                        labels.add(tokens[i][1])
                    elif tokens[i][1] != ",":
                        msg = f"not a label list after {text} in {expr!r}"
                        raise ValueError(msg)
                    i += 1
                i += 1
        elif text.lower() in KEYWORDS or text in AGGREGATIONS:  # `sum by (x) (...)`
            i += 1
        elif after == "(":
            if text not in FUNCTIONS:
                msg = f"unknown PromQL function {text}() in {expr!r}"
                raise ValueError(msg)
            i += 1
        else:
            metrics.add(text)
            i += 1
    if depth != 0:
        msg = f"unbalanced ( in {expr!r}"
        raise ValueError(msg)
    return Uses(frozenset(metrics), frozenset(labels))


def _matchers(
    tokens: list[tuple[str, str]], i: int, expr: str, metrics: set[str], labels: set[str]
) -> int:
    """Reads `name op "value", ...}` from token i; returns the index after the `}`."""
    while i < len(tokens) and tokens[i][1] != "}":
        if tokens[i][1] == ",":
            i += 1
            continue
        parts = tokens[i : i + 3]
        if len(parts) < 3 or parts[0][0] != "ident" or parts[1][1] not in ("=", "!=", "=~", "!~"):
            msg = f"not a label matcher at {parts} in {expr!r}"
            raise ValueError(msg)
        if parts[2][0] != "string":
            msg = f"a label matcher's value must be a string, got {parts[2][1]} in {expr!r}"
            raise ValueError(msg)
        name, op, value = parts[0][1], parts[1][1], parts[2][1][1:-1]
        if name == "__name__" and op == "=":
            metrics.add(value)
        else:
            labels.add(name)
        i += 3
    if i >= len(tokens):
        msg = f"unclosed {{ in {expr!r}"
        raise ValueError(msg)
    return i + 1


@pytest.mark.parametrize(
    ("expr", "metrics", "labels"),
    [
        (
            'sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))',
            {"a_bucket"},
            {"le", "job"},
        ),
        (
            "time() - max(b_seconds > 0) > 300 and on (job) (sum by (job) (c) > 0)",
            {"b_seconds", "c"},
            {"job"},
        ),
        (  # strings holding braces, parentheses and names are not read as PromQL
            'label_replace(d{x="a{b}(c) e"}, "dst", "$1", "src", "(.*)") offset 5m',
            {"d"},
            {"x"},
        ),
        (
            '{__name__="e_total", shard!="1"} / ignoring (shard) group_left f',
            {"e_total", "f"},
            {"shard"},
        ),
        ("max_over_time(deriv(g[10m])[1h:5m]) * 1e3 + inf", {"g"}, set()),
        ("sum(rate(h_total[5m])) without (reason) > bool 0.5", {"h_total"}, {"reason"}),
        ("topk(${n}, i:recorded) # a comment naming not_a_metric", {"i:recorded"}, set()),
        ('rate(j{a="1",}[5m])', {"j"}, {"a"}),
    ],
)
def test_promql_uses_finds_metrics_and_labels(
    expr: str, metrics: set[str], labels: set[str]
) -> None:
    """The tokenizer is the instrument of every other check here, so it is checked on the
    shapes the ops files use: functions, keywords, ranges, subqueries, matchers, strings."""
    assert promql_uses(expr) == Uses(frozenset(metrics), frozenset(labels))


@pytest.mark.parametrize(
    "expr",
    [
        "histogram_quantil(0.99, a_bucket)",  # a misspelled function is not a metric
        "sum(rate(a[5m])",
        "rate(a[5m)",
        'a{job="x"',
        "a{job=x}",
        "sum by (le 0.5) (a)",
    ],
)
def test_promql_uses_refuses_what_it_cannot_read(expr: str) -> None:
    """Read wrong, an expression would hide names from the check; so refuse instead."""
    with pytest.raises(ValueError, match=re.escape(expr)):
        promql_uses(expr)


# -- the queries of the two files ---------------------------------------------------------------

_LABEL_VALUES = re.compile(r"label_values\(\s*(?P<metric>[^,()]+?)\s*,\s*(?P<label>\w+)\s*\)")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows nest their panels


def load_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def dashboard_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable.

    A variable's `label_values(m, l)` is Grafana's, not PromQL: it is read as the PromQL
    `group by (l) (m)`, which asks Prometheus the same thing."""
    found: list[tuple[str, str]] = []
    for panel in _panels(doc["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in doc["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.fullmatch(query.strip())
        assert match, f"variable {var['name']}: only label_values(metric, label) is read here"
        promql = f"group by ({match['label']}) ({match['metric']})"
        found.append((f"variable {var['name']!r}", promql))
    return found


def load_rules() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is not installed: the dev extra needs `pyyaml` to read the rules")
    doc: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return doc


def rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in rules(doc)]


def all_queries() -> list[tuple[str, str]]:
    return dashboard_queries(load_dashboard()) + rule_queries(load_rules())


# -- what the real processes expose -------------------------------------------------------------


@dataclass
class Exposition:
    """Series names a process declares (with or without samples) and the labels seen on each."""

    families: dict[str, set[str]] = field(default_factory=dict)  # family -> its series names
    labels: dict[str, set[str]] = field(default_factory=dict)  # series -> label names
    sampled: set[str] = field(default_factory=set)  # series with at least one sample

    @property
    def series(self) -> set[str]:
        return set().union(*self.families.values()) if self.families else set()


def _series_of(name: str, kind: str) -> set[str]:
    """The series names a family of this type yields (the parser strips a counter's `_total`)."""
    if kind == "counter":
        return {f"{name}_total"}
    if kind in ("histogram", "gaugehistogram"):
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def parse_exposition(text: str) -> Exposition:
    out = Exposition()
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):
            continue  # prometheus-client's creation-time gauges, never queried
        series = _series_of(family.name, family.type)
        for sample in family.samples:
            series.add(sample.name)
            out.sampled.add(sample.name)
            out.labels.setdefault(sample.name, set()).update(sample.labels)
        out.families[family.name] = series
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            body: bytes = reply.read()
            return body.decode()
    except (urllib.error.URLError, ConnectionError):
        return ""


def _wants(target: str) -> set[str]:
    """Series the ops files query from one target: `gateway` or `run`, told by the name."""
    names = {m for _where, expr in all_queries() for m in promql_uses(expr).metrics}
    names -= PROMETHEUS_SERIES.keys()
    return {n for n in names if n.startswith("touchflow_gateway_") == (target == "gateway")}


def _scrape_until_sampled(url: str, wanted: set[str], timeout: float) -> Exposition:
    """Scrapes until every wanted series has a sample (the lag gauge waits for housekeeping)
    or the time is up; the last scrape either way, so the checks name what is still missing."""
    deadline = time.monotonic() + timeout
    while True:
        exposition = parse_exposition(_scrape(url))
        if wanted <= exposition.sampled or time.monotonic() > deadline:
            return exposition
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run_metrics(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Exposition:
    """`/metrics` of a real `touchflow run` (one worker) after some events went through."""
    tmp = tmp_path_factory.mktemp("ops-run")
    url = _with_db(redis_url, TEST_DB)
    keys = Keys(prefix="tft", shards=4)  # live_harness.CONFIG's streams
    config = tmp / "live.toml"
    config.write_text(live.CONFIG + "housekeeping_seconds = 1\n")  # [streams] is the last table
    client = redis.Redis.from_url(url)
    client.flushdb()
    port = _free_port()
    log = tmp / "run.log"
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url, "--config", str(config)]
    cmd += ["--workers", "1", "--metrics-port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while b"touchflow live on" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "touchflow run did not start"
            time.sleep(0.1)
        live.publish(client, keys, live.make_events(prospects=20, per_prospect=6, seed=3))
        poisoned = {"id": "bad-1", "type": "no_such_type", "prospect": "p0"}
        client.xadd(keys.events(shard_of("p0", 4)), {"event": msgspec.json.encode(poisoned)})
        live.wait_drained(client, keys, timeout=60)
        return _scrape_until_sampled(f"http://127.0.0.1:{port}/metrics", _wants("run"), 20)
    finally:
        client.close()
        live.stop(proc)


@pytest.fixture(scope="module")
def gateway_metrics(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Exposition:
    """`/metrics` of a real gateway after accepted, refused, ignored and unknown requests."""
    tmp = tmp_path_factory.mktemp("ops-gateway")
    url = _with_db(redis_url, TEST_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    gateway = gw.Gateway(url, tmp).start()
    try:
        lines = b"\n".join(
            [
                b'{"id":"o-1","type":"page_view","prospect":"p","ts":"2026-03-02T10:00:00Z",'
                b'"url":"https://x.test/pricing"}',
                b'{"id":"o-2","type":"no_such_type","prospect":"p","ts":"2026-03-02T10:01:00Z"}',
            ]
        )
        assert gateway.post("/v1/events", lines, gw.bearer()).status_code == 200
        wrong = {"Authorization": "Bearer not-the-token"}
        assert gateway.post("/v1/events", lines, wrong).status_code == 401
        batch = orjson.dumps(samples.SENDGRID_BATCH)  # "deferred": ignored; nobody's addresses
        assert gateway.post("/v1/hooks/sendgrid", batch, gw.sendgrid_headers(batch)).is_success
        return _scrape_until_sampled(f"{gateway.base}/metrics", _wants("gateway"), 10)
    finally:
        gateway.stop()


# -- the checks ---------------------------------------------------------------------------------


def _target(metric: str, run: Exposition, gateway: Exposition) -> Exposition:
    return gateway if metric.startswith("touchflow_gateway_") else run


@pytest.mark.redis
def test_every_queried_metric_is_exposed_by_a_real_process(
    run_metrics: Exposition, gateway_metrics: Exposition
) -> None:
    """Each metric a panel or an alert selects is a series `touchflow run` or the gateway
    declares (gateway metrics are the `touchflow_gateway_*` ones); `up` is Prometheus's own."""
    missing = [
        f"{where}: {metric}"
        for where, expr in all_queries()
        for metric in sorted(promql_uses(expr).metrics)
        if metric not in PROMETHEUS_SERIES
        and metric not in _target(metric, run_metrics, gateway_metrics).series
    ]
    assert not missing, "queried but not exposed:\n" + "\n".join(missing)


@pytest.mark.redis
def test_every_queried_label_is_on_the_metrics_it_queries(
    run_metrics: Exposition, gateway_metrics: Exposition
) -> None:
    """`sum by (chanel)` or `{shard="1"}` on a metric without that label silently yields one
    unlabelled line or nothing; each label an expression uses must be on one of its metrics
    (or be a target label), as seen on the samples the test's traffic created."""
    problems: list[str] = []
    for where, expr in all_queries():
        uses = promql_uses(expr)
        available = set(TARGET_LABELS)
        ours = uses.metrics - PROMETHEUS_SERIES.keys()
        if any(m not in _target(m, run_metrics, gateway_metrics).series for m in ours):
            continue  # a metric not exposed at all: reported by the test above
        for metric in uses.metrics & PROMETHEUS_SERIES.keys():
            available |= PROMETHEUS_SERIES[metric]
        for metric in ours:
            exposition = _target(metric, run_metrics, gateway_metrics)
            if metric not in exposition.sampled:
                problems.append(f"{where}: no sample of {metric}, its labels are unknown")
            available |= exposition.labels.get(metric, set())
        problems += [f"{where}: label {label!r}" for label in sorted(uses.labels - available)]
    assert not problems, "labels not on the queried metrics:\n" + "\n".join(problems)


@pytest.mark.redis
def test_the_dashboard_shows_every_metric_the_processes_expose(
    run_metrics: Exposition, gateway_metrics: Exposition
) -> None:
    """A metric added to the code and forgotten on the dashboard is one nobody looks at. The
    scorecard's gauges are exempt beyond touches and replies: the `/scorecard` page shows them
    all, the dashboard only the counts an operator watches over time."""
    shown = {
        m for _w, expr in dashboard_queries(load_dashboard()) for m in promql_uses(expr).metrics
    }
    unshown = [
        family
        for exposition in (run_metrics, gateway_metrics)
        for family, series in exposition.families.items()
        if not series & shown and not family.startswith("touchflow_scorecard_")
    ]
    assert not unshown, f"exposed but on no panel: {sorted(unshown)}"


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_the_dashboard_imports_anywhere() -> None:
    """Importable into any Grafana: every query goes through the `datasource` variable (no
    datasource uid of ours baked in), panel ids are unique, panels fit the 24-column grid and
    do not overlap, and the rows the ops section promises are there."""
    doc = load_dashboard()
    variables = {var["name"]: var for var in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(doc["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} queries nothing"
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
        pos = panel["gridPos"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= 24, panel["title"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    placed = doc["panels"]  # top level: a collapsed row's panels sit elsewhere
    clashes = [
        (a["title"], b["title"])
        for n, a in enumerate(placed)
        for b in placed[n + 1 :]
        if _overlap(a["gridPos"], b["gridPos"])
    ]
    assert not clashes, f"overlapping panels: {clashes}"
    rows = [p["title"].split(" (")[0] for p in panels if p["type"] == "row"]
    for wanted in ("Flow health", "Throughput", "Latency", "Gateway", "Scorecard"):
        assert wanted in rows, f"no {wanted} row in {rows}"


def test_scorecard_panels_do_not_add_up_processes() -> None:
    """The scorecard series are the deployment's whole counts (read from the one live hash,
    `connectors.scorecard_metrics`), exported by process 0 alone; while two processes export
    them (a restart, when the old and the new process 0 are both scraped, or one target in two
    jobs), a `sum` would show every count twice. The panels take one value (`max`)."""
    checked = 0
    for where, expr in dashboard_queries(load_dashboard()):
        if "touchflow_scorecard_" not in expr:
            continue
        assert "sum" not in expr, f"{where} adds up processes: {expr}"
        uses = len(re.findall(r"touchflow_scorecard_\w+", expr))
        assert len(re.findall(r"\bmax by \(channel\) \(", expr)) == uses, f"{where}: {expr}"
        checked += 1
    assert checked >= 3, "the dashboard shows the scorecard"


def test_every_alert_says_how_bad_and_what_to_look_at() -> None:
    """An alert pages someone: it must wait out blips (`for`), say how urgent it is (`severity`,
    which routing keys on) and tell the operator what happened and where to look."""
    found = rules(load_rules())
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    for rule in found:
        name = rule["alert"]
        assert re.fullmatch(r"(\d+[smh])+", str(rule.get("for", ""))), f"{name}: no for:"
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        for key in ("summary", "description"):
            assert len(rule["annotations"].get(key, "").split()) >= 5, f"{name}: thin {key}"


def test_the_rules_alert_on_what_the_ops_section_lists() -> None:
    """Lag, dead letters, checkpoint age, health, a target down, the gateway's spool and its
    signature failures: each is the subject of at least one alert."""
    alerted = {m for _w, expr in rule_queries(load_rules()) for m in promql_uses(expr).metrics}
    wanted = {
        "touchflow_consumer_lag",
        "touchflow_dead_letters_total",
        "touchflow_last_checkpoint_timestamp_seconds",
        "touchflow_healthy",
        "up",
        "touchflow_gateway_spool_pending",
        "touchflow_gateway_signature_failures_total",
    }
    assert wanted <= alerted, f"no alert on {sorted(wanted - alerted)}"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_rules() -> None:
    """Prometheus's own parser: PromQL syntax, rule fields and annotation templates."""
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    """`promtool test rules` on synthetic series (config/prometheus/touchflow-alerts.test.yml):
    each alert fires on the failure it is for, after its `for:`, and stays quiet on the healthy
    or idle look-alike next to it (an idle flow's old checkpoint, a lag that is high but
    shrinking, dead letters among many good events)."""
    tested = _promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
