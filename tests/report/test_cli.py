"""`report`, `whatif` and `inspect` as real processes (`python -m dataflows.<module>`).

`dataflows.cli` will route `touchflow report|whatif|inspect` to the same `command` functions;
until then each module is its own entry point with the same arguments and exit statuses.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from operators.timeutil import DAY_MS, HOUR_MS, format_ts, parse_ts
from tests.report.helpers import closed_loop, write_events
from tests.report.test_definitions import CONTRACT_CHANNEL_KEYS, CONTRACT_OVERALL_EXTRA

ROOT = Path(__file__).resolve().parents[2]
UNTIL = "2026-03-21T00:00:00Z"
T0 = parse_ts("2026-03-02T15:00:00Z")


def touchflow(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"dataflows.{module}", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "events.jsonl"
    return write_events(path, closed_loop(150, seed=21))


# -- report ---------------------------------------------------------------------------------------


def test_report_json_is_one_object_of_the_contracts_shape(events_file: Path) -> None:
    done = touchflow("report", events_file, "--until", UNTIL, "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    card = json.loads(lines[0])
    # The contract's keys, in its order, then `daily` (touches and replies per day, the page's)
    # and `as_of` (the time the numbers stand at: `--until`, as `report --redis` says its own).
    contract = ["channels", "overall", "sequences", "campaigns", "held_back"]
    assert list(card) == [*contract, "daily", "as_of"]
    assert card["as_of"] == UNTIL
    for day, row in card["daily"].items():
        assert len(day) == 10
        assert set(row) == {"touches", "replies"}
        assert all(list(by) == list(card["channels"]) for by in row.values())
    touched = sum(n for row in card["daily"].values() for n in row["touches"].values())
    assert touched == card["overall"]["touches"]
    for row in card["channels"].values():
        assert set(row) == CONTRACT_CHANNEL_KEYS
    assert set(card["overall"]) == CONTRACT_CHANNEL_KEYS | CONTRACT_OVERALL_EXTRA
    assert card["overall"]["touches"] > 0
    assert all(set(r) == {"deferred", "blocked"} for r in card["held_back"].values())
    keys = {"requested", "sent", "deferred", "blocked"}
    assert all(set(r) == keys for r in card["campaigns"].values())
    again = touchflow("report", events_file, "--until", UNTIL, "--json")
    assert again.stdout == done.stdout  # deterministic


def test_report_table_and_csv_files(events_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    done = touchflow("report", events_file, "--until", UNTIL, "--csv", out)
    assert done.returncode == 0, done.stderr
    assert "Scorecard" in done.stdout
    assert "Held back" in done.stdout
    card = json.loads(touchflow("report", events_file, "--until", UNTIL, "--json").stdout)
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "campaigns.csv",
        "channels.csv",
        "held_back.csv",
        "prospects.csv",
        "sequences.csv",
    ]
    with (out / "channels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["channel"] for r in rows] == ["email", "sms", "phone", "chat", "linkedin", "overall"]
    assert int(rows[-1]["touches"]) == card["overall"]["touches"]
    assert float(rows[0]["reply_rate"]) == card["channels"]["email"]["reply_rate"]
    with (out / "sequences.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["sequence", "enrolled", "completed", "exited_by_reply", "reply_rate"]
    with (out / "held_back.csv").open() as f:
        held = {r["rule"]: r for r in csv.DictReader(f)}
    counts = {
        k: {"deferred": int(v["deferred"]), "blocked": int(v["blocked"])} for k, v in held.items()
    }
    assert counts == card["held_back"]


def test_prospects_csv_has_the_contracts_columns(events_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    assert touchflow("report", events_file, "--until", UNTIL, "--csv", out).returncode == 0
    card = json.loads(touchflow("report", events_file, "--until", UNTIL, "--json").stdout)
    with (out / "prospects.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        "prospect",
        "touches",
        "touches_email",
        "touches_sms",
        "touches_phone",
        "touches_chat",
        "touches_linkedin",
        "first_touch",
        "last_touch",
        "replied",
        "first_reply_channel",
        "first_reply_ts",
        "converted",
        "status",
        "preferred_channel",
        "fatigue_class",
    ]
    assert len({r["prospect"] for r in rows}) == len(rows) == 150
    assert sum(int(r["touches"]) for r in rows) == card["overall"]["touches"]
    assert sum(r["replied"] == "true" for r in rows) == card["overall"]["prospects_replied"]
    statuses = {"active", "cooldown", "opted_out", "do_not_contact", "customer"}
    assert {r["status"] for r in rows} <= statuses
    assert {r["fatigue_class"] for r in rows} <= {"undersaturated", "on_target", "saturated"}
    for r in rows:
        per_channel = sum(int(r[f"touches_{c}"]) for c in ("email", "sms", "phone", "chat"))
        assert int(r["touches"]) == per_channel + int(r["touches_linkedin"])
        assert (r["first_touch"] == "") == (r["touches"] == "0")
        assert (r["first_reply_ts"] == "") == (r["replied"] == "false")


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["missing.jsonl"], 1, "cannot read"),
        (["{events}", "--config", "nope.toml"], 1, "cannot read config"),
        (["{events}", "--until", "yesterday"], 2, "Invalid isoformat"),
        (["--redis", "redis://127.0.0.1:1"], 1, "cannot reach Redis at redis://127.0.0.1:1"),
        (["{events}", "--redis", "redis://127.0.0.1:1"], 2, "not both"),
        (["--redis", "redis://127.0.0.1:1", "--until", "2026-03-01T00:00:00Z"], 2, "--until"),
        ([], 2, "needs EVENTS.jsonl"),
    ],
)
def test_report_errors_are_one_line(
    events_file: Path, args: list[str], status: int, says: str
) -> None:
    done = touchflow("report", *(a.replace("{events}", str(events_file)) for a in args))
    assert done.returncode == status
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert says in done.stderr


def test_a_bad_config_is_named(events_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[caps]]\nname = 'week'\nhours = -1\n")
    done = touchflow("report", events_file, "--config", bad)
    assert done.returncode == 1
    assert done.stderr.startswith(f"touchflow: invalid config {bad}")


# -- whatif ---------------------------------------------------------------------------------------


def _ev(kind: str, at: int, prospect: str, n: int, **fields: Any) -> dict[str, Any]:
    event = {"id": f"{prospect}-{n}", "type": kind, "prospect": prospect, "ts": format_ts(at)}
    return event | fields


def test_whatif_lists_the_prospects_whose_commands_differ(tmp_path: Path) -> None:
    """A: the default week cap of 3 emails; B: 1. Two requests a few days apart: `many` gets
    the second email under A only; `one` asks once and gets it under both."""
    events = [
        _ev("touch_request", T0, "many", 1, channel="email", campaign="c"),
        _ev("touch_request", T0 + 3 * DAY_MS, "many", 2, channel="email", campaign="c"),
        _ev("touch_request", T0, "one", 1, channel="email", campaign="c"),
        _ev("page_view", T0 + 4 * DAY_MS, "one", 2, url="/blog"),
    ]
    path = write_events(tmp_path / "e.jsonl", events)
    a = tmp_path / "a.toml"
    a.write_text("")
    b = tmp_path / "b.toml"
    b.write_text('[[caps]]\nname = "week"\nhours = 168\nper_channel = { email = 1 }\n')
    done = touchflow("whatif", path, "--config", a, "--config", b, "--until", UNTIL, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert list(result) == ["a", "b", "changed"]
    assert result["changed"] == ["many"]
    assert result["a"]["channels"]["email"]["touches"] == 3
    assert result["b"]["channels"]["email"]["touches"] == 2
    assert result["b"]["held_back"]["cap.email.week"]["blocked"] == 1
    same = touchflow("whatif", path, "--config", a, "--config", a, "--json")
    assert json.loads(same.stdout)["changed"] == []
    out = tmp_path / "csv"
    table = touchflow("whatif", path, "--config", a, "--config", b, "--until", UNTIL, "--csv", out)
    assert table.returncode == 0, table.stderr
    assert "prospects' commands differ: many" in table.stdout
    assert (out / "changed.csv").read_text() == "prospect\nmany\n"
    assert (out / "a" / "prospects.csv").exists()
    assert (out / "b" / "channels.csv").exists()


def test_whatif_needs_two_configs(tmp_path: Path) -> None:
    path = write_events(tmp_path / "e.jsonl", [])
    done = touchflow("whatif", path, "--config", path)
    assert done.returncode == 2
    assert "--config twice" in done.stderr


# -- inspect --------------------------------------------------------------------------------------


def test_inspect_explains_one_prospect(tmp_path: Path) -> None:
    night = parse_ts("2026-03-03T03:00:00Z")  # 22:00 in New York
    events = [
        _ev("profile", T0, "p", 1, timezone="America/New_York", email="p@x.org", segment="x"),
        _ev("consent", T0, "p", 2, channel="sms", granted=True),
        _ev("touch_request", T0, "p", 3, channel="email", campaign="c"),
        _ev("replied", T0 + HOUR_MS, "p", 4, channel="email", sentiment="negative"),
        _ev("touch_request", night, "p", 5, channel="sms", campaign="late", transactional=True),
        _ev("enroll", night + 1000, "p", 6, sequence="basic"),
        *(_ev("page_view", T0 + k * 1000, "q", k, url="/") for k in range(3)),
    ]
    path = write_events(tmp_path / "e.jsonl", events)
    done = touchflow("inspect_cli", "p", "--events", path, "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["prospect"] == "p"
    assert found["profile"]["email"] == "p@x.org"
    assert found["consent"]["sms"] is True
    assert found["consent"]["phone"] is False
    assert [c["rule"] for c in found["cooldowns"]] == ["cooldown.negative"]
    assert found["cooldowns"][0]["until"] == format_ts(T0 + HOUR_MS + 90 * DAY_MS)
    phone = found["channels"]["phone"]
    assert phone == {"rule": "consent.phone", "next_allowed": None, "held_by": "consent.phone"}
    email = found["channels"]["email"]
    assert email["rule"] == "cooldown.negative"
    assert email["next_allowed"] == format_ts(T0 + HOUR_MS + 90 * DAY_MS)
    assert found["fatigue"]["class"] in {"undersaturated", "on_target", "saturated"}
    assert {r["channel"] for r in found["ranking"]} == {"email", "sms", "phone", "chat", "linkedin"}
    late, step = found["pending"]
    assert (late["reason"], late["due"], late["held"]) == (
        "request:late",
        "2026-03-03T13:00:00Z",
        True,
    )
    assert (step["reason"], step["kind"]) == ("sequence:basic:2", "sequence step")
    assert [(s["sequence"], s["next_step"], s["steps"]) for s in found["sequences"]] == [
        ("basic", 2, 6)
    ]
    last = found["decisions"][-1]
    assert (last["reason"], last["verdict"], last["rule"]) == (
        "sequence:basic:1",
        "blocked",
        "cooldown.negative",
    )
    assert len(found["decisions"]) == 3
    table = touchflow("inspect_cli", "p", "--events", path)
    assert table.returncode == 0
    assert "cooldown.negative" in table.stdout


def test_inspect_an_unknown_prospect_is_an_error(tmp_path: Path) -> None:
    path = write_events(tmp_path / "e.jsonl", [_ev("page_view", T0, "q", 1, url="/")])
    done = touchflow("inspect_cli", "nobody", "--events", path)
    assert done.returncode == 1
    assert "no event of prospect 'nobody'" in done.stderr
    redis = touchflow("inspect_cli", "p", "--redis", "redis://127.0.0.1:1")
    assert redis.returncode == 1
    assert redis.stderr.startswith("touchflow: cannot reach Redis at redis://127.0.0.1:1")
