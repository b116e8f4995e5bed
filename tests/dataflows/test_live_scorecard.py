"""The live scorecard, exactly once: `report --redis` after kills equals `report EVENTS --until T`.

Real `touchflow run` processes on a real Redis, killed with SIGKILL at random moments while a
producer publishes and started again, as tests/dataflows/test_live.py does for the commands.
The traffic: `live_harness.make_events` (requests, replies, manual touches, opt-outs, ...) and
then callbacks naming the commands those events cause (deliveries, opens, failures, backup
fallbacks, answered calls, meetings), so that every kind of count moves. With the harness's
config nothing is ever deferred, so stream time and event time cannot disagree (the contract's
equality holds where they do not). The oracle is the file mode of the very same events: every
number of the scorecard, `daily` and `as_of` included, every row of the CSV files, and
`inspect` of a few prospects.
"""

import csv
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from connectors.scorecard_store import read_scorecard
from connectors.state_value import split
from dataflows.inspect_cli import explain, explain_live
from dataflows.report import compute
from operators.policy import load_policy
from operators.timeutil import format_ts, parse_ts
from tests.dataflows import live_harness as h
from tests.report.helpers import engine_outputs, write_events

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys(prefix="tft", shards=4)
ROOT = Path(__file__).resolve().parents[2]


def traffic(prospects: int, per_prospect: int, seed: int, config: Path) -> list[dict[str, Any]]:
    """The harness's events, a profile for some prospects first, then callbacks naming the
    commands they cause, all later than every event of the first part (each prospect's
    events stay in time order)."""
    rng = random.Random(seed)
    first = h.make_events(prospects, per_prospect, seed)
    start = parse_ts(first[0]["ts"]) - 60_000
    profiles = [
        {"id": f"prof{p}", "type": "profile", "prospect": f"p{p}", "ts": format_ts(start)}
        | {"email": f"p{p}@x.example", "lead_source": "web", "segment": "smb"}
        for p in range(0, prospects, 3)
    ]
    commands, _decisions = engine_outputs(profiles + first, None, load_policy(config))
    at = max(parse_ts(e["ts"]) for e in first) + 3_600_000
    callbacks: list[dict[str, Any]] = []
    for n, c in enumerate(commands):
        if c["channel"] == "rep":
            continue
        base = {"prospect": c["prospect"], "command": c["id"], "channel": c["channel"]}
        kinds = rng.sample(
            ["delivered", "opened", "touch_failed", "touch_sent", "call_outcome", "meeting"],
            k=rng.randint(0, 3),
        )
        for kind in kinds:
            at += rng.randrange(1, 5_000)
            doc: dict[str, Any] = {"id": f"cb{n}-{kind}", "type": kind, "ts": format_ts(at)}
            if kind == "touch_sent":  # the sender fell back to another channel
                others = [ch for ch in ("email", "sms", "linkedin") if ch != c["channel"]]
                doc |= base | {"channel": rng.choice(others)}
            elif kind == "call_outcome":
                doc |= {"prospect": c["prospect"], "command": c["id"], "outcome": "answered"}
            elif kind == "meeting":
                doc |= {"type": "meeting_booked", "prospect": c["prospect"]}
            else:
                doc |= base
            callbacks.append(doc)
    return profiles + first + callbacks


def scorecard_oracle(
    events: list[dict[str, Any]], config: Path, tmp: Path, live: dict[str, Any]
) -> dict[str, Any]:
    """`report EVENTS --until T`, T the live `as_of`."""
    assert live["as_of"] is not None
    path = write_events(tmp / "events.jsonl", events)
    return compute(path, load_policy(config), until=parse_ts(live["as_of"])).card


def touchflow(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def csv_files(directory: Path) -> dict[str, list[list[str]]]:
    """Each CSV file's header and rows; prospects.csv's rows sorted (Redis SCANs in no order)."""
    out = {}
    for path in sorted(directory.iterdir()):
        with path.open(newline="") as f:
            header, *rows = list(csv.reader(f))
        out[path.name] = [header, *(sorted(rows) if path.name == "prospects.csv" else rows)]
    return out


def assert_reports_agree(
    r: redis.Redis, url: str, events: list[dict[str, Any]], config: Path, tmp: Path
) -> None:
    policy = load_policy(config)
    live = read_scorecard(r, KEYS, policy)
    assert live is not None
    want = scorecard_oracle(events, config, tmp, live)
    assert want["overall"]["touches"] > 0
    assert want["overall"]["delivered"] > 0
    assert sum(want["overall"][k] for k in ("replies", "conversions", "opt_outs")) > 0
    assert live == want
    # The command, as a user runs it: one JSON object, and the same CSV files.
    done = touchflow("report", "--redis", url, "--config", config, "--json", "--csv", tmp / "r")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(want))
    until = live["as_of"]
    path = tmp / "events.jsonl"
    done = touchflow("report", path, "--config", config, "--until", until, "--csv", tmp / "f")
    assert done.returncode == 0, done.stderr
    assert csv_files(tmp / "r") == csv_files(tmp / "f")
    table = touchflow("report", "--redis", url, "--config", config)
    assert table.returncode == 0, table.stderr
    assert f"({KEYS.prefix}) as of {until}" in table.stdout
    assert f"{want['overall']['touches']:,}" in table.stdout
    for prospect in ("p0", "p1", "p3"):
        found = explain_live(url, prospect, policy)
        assert found == explain(path, prospect, policy)
        assert found["decisions"], "every prospect was decided for"
    assert found["profile"]["email"] == "p3@x.example"  # from the facts, not the state
    live = touchflow("inspect", "p3", "--redis", url, "--config", config, "--json")
    replayed = touchflow("inspect", "p3", "--events", path, "--config", config, "--json")
    assert live.returncode == replayed.returncode == 0, live.stderr + replayed.stderr
    assert json.loads(live.stdout) == json.loads(replayed.stdout)


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory(appendonly=True, appendfsync="everysec")


def test_report_redis_after_kills_equals_the_report_of_the_same_events(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = traffic(prospects=40, per_prospect=25, seed=11, config=config)
    r = redis.Redis.from_url(server.url)
    kills = h.publish_through_kills(
        server.url,
        KEYS,
        config,
        events,
        min_kills=6,
        batch=25,
        uptime_s=(0.8, 2.5),
        log=tmp_path / "run.log",
        rng=random.Random(11),
    )
    assert kills >= 6
    assert_reports_agree(r, server.url, events, config, tmp_path)
    r.close()


def test_two_workers_without_kills_count_what_the_replay_counts(
    server: EmbeddedRedis, tmp_path: Path
) -> None:
    config = h.write_config(tmp_path)
    events = traffic(prospects=30, per_prospect=15, seed=12, config=config)
    r = redis.Redis.from_url(server.url)
    proc = h.start_run(server.url, config, workers=2, log=tmp_path / "run.log")
    try:
        h.publish(r, KEYS, events)
        h.wait_drained(r, KEYS, timeout=120)
    finally:
        assert h.stop(proc) == 0
    assert_reports_agree(r, server.url, events, config, tmp_path)
    r.close()


def test_a_deployment_without_the_scorecard_says_so(server: EmbeddedRedis, tmp_path: Path) -> None:
    config = h.write_config(tmp_path)
    config.write_text(config.read_text() + "scorecard = false\n")  # in [streams], the last table
    events = h.make_events(prospects=5, per_prospect=4, seed=13)
    r = redis.Redis.from_url(server.url)
    proc = h.start_run(server.url, config, log=tmp_path / "run.log")
    try:
        h.publish(r, KEYS, events)
        h.wait_drained(r, KEYS, timeout=60)
    finally:
        assert h.stop(proc) == 0
    value: Any = r.get(KEYS.state("p0"))
    assert split(value)[1] is None, "no facts with the state"
    assert not r.exists(KEYS.scorecard), "nothing counted"
    done = touchflow("report", "--redis", server.url, "--config", config)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "touchflow: this deployment keeps no live scorecard (streams.scorecard = false in its "
        "config); report from a file of its events instead: touchflow report EVENTS.jsonl"
    ]
    r.close()
