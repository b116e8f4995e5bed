"""Every number of the scorecard against a naive reference, on generated traffic.

The accumulator (`operators.scorecard`, fed through `dataflows.report_replay`) and the reference
(`tests.report.reference_scorecard`: the contract's text, from the events and the outputs alone)
share no code. Hypothesis streams exercise the edges (callbacks naming real and future command
ids, STOP/START, redeliveries, exact window edges); closed-loop traffic (a simulated day plus a
simulated sender's answers) exercises volume, deliveries, opens, backup fallbacks and failures,
with the outputs of the real Bytewax replay.
"""

import json
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from dataflows.replay import replay
from operators.engine import Engine
from operators.records import Command
from operators.scorecard import Tally
from operators.scorecard_touches import TouchBook
from operators.timeutil import DAY_MS, parse_ts
from tests.report.helpers import POLICY, card_of, closed_loop, engine_outputs, write_events
from tests.report.reference_scorecard import reference_scorecard
from tests.streams import event_streams


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Every path where two scorecards differ, for a readable failure."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: list[str] = []
        for key in dict.fromkeys([*got, *want]):
            if key not in got or key not in want:
                out.append(f"{path}/{key}: missing on one side")
            else:
                out += differences(got[key], want[key], f"{path}/{key}")
        return out
    return [] if got == want and type(got) is type(want) else [f"{path}: {got!r} != {want!r}"]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=3, max_events=40))
def test_generated_streams_match_the_reference(events: list[dict[str, Any]]) -> None:
    until = max(parse_ts(e["ts"]) for e in events) + 30 * DAY_MS
    with tempfile.TemporaryDirectory() as tmp:
        card, _ = card_of(write_events(Path(tmp) / "e.jsonl", events), until=until)
    commands, decisions = engine_outputs(events, until)
    assert differences(card, reference_scorecard(events, commands, decisions, POLICY)) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=1, max_events=60))
def test_long_histories_without_until_match_the_reference(events: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        card, _ = card_of(write_events(Path(tmp) / "e.jsonl", events))
    commands, decisions = engine_outputs(events, None)
    assert differences(card, reference_scorecard(events, commands, decisions, POLICY)) == []


@pytest.fixture(scope="module")
def closed_loop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    events = closed_loop(400, seed=11)
    path = tmp_path_factory.mktemp("report") / "events.jsonl"
    write_events(path, events)
    with path.open("ab") as f:  # a rejected line must change nothing
        f.write(b'{"id": "x", "type": "opened"}\n\n')
    return path


UNTIL = parse_ts("2026-03-21T00:00:00Z")


@pytest.fixture(scope="module")
def closed_loop_reference(closed_loop_file: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reference's scorecard of the closed-loop file from the real replay's outputs, and
    the events it read."""
    result = replay(closed_loop_file, Engine(POLICY), until=UNTIL)
    dead = {d.line for d in result.dead_letters}
    assert dead, "the file holds a rejected line"
    lines = closed_loop_file.read_bytes().splitlines()
    events = [json.loads(x) for n, x in enumerate(lines, 1) if x.strip() and n not in dead]
    commands = [msgspec.to_builtins(c) for c in result.commands]
    decisions = [msgspec.to_builtins(d) for d in result.decisions]
    return reference_scorecard(events, commands, decisions, POLICY), events


def test_closed_loop_traffic_matches_the_reference_from_the_real_replay(
    closed_loop_file: Path, closed_loop_reference: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    want, events = closed_loop_reference
    card, _ = card_of(closed_loop_file, until=UNTIL, ledger_days=45, ledger_max=64)
    assert differences(card, want) == []
    # The traffic exercises what it is meant to (so the comparison above means something).
    o = card["overall"]
    assert min(o["delivered"], o["opened"], o["answered"], o["replies"], o["conversions"]) > 0
    assert o["opt_outs"] > 0
    assert sum(s["completed"] for s in card["sequences"].values()) > 0
    assert sum(s["exited_by_reply"] for s in card["sequences"].values()) > 0
    channel_of = {c["id"]: c["channel"] for c in engine_outputs(events, UNTIL)[0]}
    moved = [
        e
        for e in events
        if e["type"] == "touch_sent"
        and e.get("command") in channel_of
        and channel_of[e["command"]] != e["channel"]
    ]
    assert moved, "some sends fell back to their backup channel"
    assert any(e["type"] == "touch_failed" and e["command"] in channel_of for e in events)


@pytest.mark.parametrize(
    "broken",
    [
        (TouchBook, "move"),
        (TouchBook, "release"),
        (TouchBook, "mark"),
        (TouchBook, "reshaped"),
        (TouchBook, "conversion"),
        (Tally, "_enroll"),
        (Tally, "_decision"),
    ],
)
def test_the_reference_catches_a_broken_accumulator(
    closed_loop_file: Path,
    closed_loop_reference: tuple[dict[str, Any], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    broken: tuple[type, str],
) -> None:
    """A comparison that cannot fail proves nothing: with one step of the accumulator switched
    off, the same comparison finds differences. (Re-crediting a conversion after a late
    release has a hand-made test: this traffic has no such case.)"""
    monkeypatch.setattr(*broken, lambda *_args: None)
    card, _ = card_of(closed_loop_file, until=UNTIL)
    assert differences(card, closed_loop_reference[0]) != []


def test_report_replay_emits_exactly_the_replays_outputs(closed_loop_file: Path) -> None:
    """`dataflows.report_replay` runs the engine itself: same commands and decisions, in the
    same canonical order, as the Bytewax replay."""
    from dataflows.report_replay import new_lane, run

    rows: list[tuple[int, str, int, Any]] = []
    lane = new_lane(POLICY)
    run(
        closed_loop_file,
        [lane],
        until=UNTIL,
        observe=lambda p, _e, outs: rows.extend((ts, p, seq, r) for ts, seq, r in outs[0]),
    )
    rows.sort(key=lambda r: r[:3])
    result = replay(closed_loop_file, Engine(POLICY), until=UNTIL)
    assert [r[3] for r in rows if type(r[3]) is Command] == result.commands
    assert [r[3] for r in rows if type(r[3]) is not Command] == result.decisions
    assert lane.rejected == len(result.dead_letters)
