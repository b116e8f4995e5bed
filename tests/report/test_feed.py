"""The report replay's plumbing: isolation as the replay's, streaming CSV, the what-if diff."""

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dataflows.replay import replay
from dataflows.report import Report, replay_rows, write_csv, write_table
from dataflows.report_replay import Lane, run
from dataflows.whatif import Diff
from operators import events as ev
from operators.engine import Engine
from operators.intake import EventReader
from operators.policy import Policy
from operators.records import Command, Context, Decision
from operators.scorecard import ProspectFacts, Tally
from operators.scorecard_view import PROSPECT_COLUMNS, scorecard
from operators.timeutil import parse_ts
from tests.report.helpers import POLICY, UNBOUNDED, closed_loop, write_events
from tests.report.reference_scorecard import reference_scorecard
from tests.report.test_reference import differences

UNTIL = parse_ts("2026-03-21T00:00:00Z")


class Faulty(Engine):
    """An engine with bugs: page views whose id ends in `!` raise, and so does every third
    sequence step when it fires (a timer)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        page = self._handlers[ev.PageView]

        def page_or_boom(parts: Any, s: Any, e: Any, ts: int, out: list[Any]) -> None:
            if e.id.endswith("!"):
                msg = "page view bug"
                raise RuntimeError(msg)
            page(parts, s, e, ts, out)

        self._handlers[ev.PageView] = page_or_boom
        fire = self.sequencer.fire

        def fire_or_boom(s: Any, item: Any, now: int, out: list[Any]) -> None:
            if item.reason.endswith(":3"):  # the third step
                msg = "step bug"
                raise RuntimeError(msg)
            fire(s, item, now, out)

        self.sequencer.fire = fire_or_boom  # type: ignore[method-assign]


def test_events_and_timers_that_raise_are_isolated_as_in_the_replay(tmp_path: Path) -> None:
    events = closed_loop(150, seed=8)
    for n, e in enumerate(events):
        if e["type"] == "page_view" and n % 3 == 0:
            e["id"] += "!"
    path = write_events(tmp_path / "e.jsonl", events)
    lane = Lane(
        Faulty(POLICY),
        Tally(POLICY, **UNBOUNDED),
        EventReader(POLICY.limits, frozenset(POLICY.sequences)),
    )
    rows: list[tuple[int, str, int, Any]] = []
    run(
        path,
        [lane],
        until=UNTIL,
        observe=lambda p, _e, outs: rows.extend((t, p, s, r) for t, s, r in outs[0]),
    )
    rows.sort(key=lambda r: r[:3])
    result = replay(path, Faulty(POLICY), until=UNTIL)
    assert [r[3] for r in rows if type(r[3]) is Command] == result.commands
    assert [r[3] for r in rows if type(r[3]) is not Command] == result.decisions
    reasons = [d.reason for d in result.dead_letters]
    assert any("page view bug" in r for r in reasons)
    assert any("step bug" in r for r in reasons)
    # the scorecard counts what the replay did: the rejected events are left out
    rejected = {json.loads(d.event)["id"] for d in result.dead_letters if '"timer"' not in d.event}
    kept = [e for e in events if e["id"] not in rejected]
    commands = [msgspec.to_builtins(c) for c in result.commands]
    decisions = [msgspec.to_builtins(d) for d in result.decisions]
    card = scorecard(lane.tally.counts, POLICY.sequences)
    assert differences(card, reference_scorecard(kept, commands, decisions, POLICY)) == []


def test_inspecting_one_prospect_replays_only_its_events(tmp_path: Path) -> None:
    """The prospect filter also finds events whose prospect is written with JSON escapes."""
    lines = [
        b'{"id":"1","type":"page_view","prospect":"p\\u00e9","ts":"2026-03-02T15:00:00Z","url":"/"}',
        b'{"id":"2","type":"page_view","prospect":"q","ts":"2026-03-02T15:00:00Z","url":"/p\xc3\xa9"}',
        '{"id":"3","type":"page_view","prospect":"pé","ts":"2026-03-02T16:00:00Z","url":"/"}'.encode(),
    ]  # fmt: skip
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    lane = Lane(Engine(POLICY), Tally(POLICY), EventReader(POLICY.limits))
    seen: list[str] = []
    run(path, [lane], only="pé", observe=lambda _p, e, _o: seen.append(e.id if e else ""))
    assert seen == ["1", "3"]
    assert list(lane.states) == ["pé"]


def test_csv_rows_are_written_as_they_come() -> None:
    out = io.StringIO()

    def rows() -> Any:
        for k in range(500):
            assert out.getvalue().count("\n") == k + 1  # header and every earlier row written
            yield [f"p{k}", k, None, True]

    assert write_table(out, ["prospect", "touches", "first_touch", "replied"], rows()) == 500
    assert out.getvalue().splitlines()[1] == "p0,0,,true"


def test_prospects_csv_streams_a_large_population(tmp_path: Path) -> None:
    """50,000 prospects: writing prospects.csv holds one row at a time, not 50,000."""
    lane = Lane(Engine(POLICY), Tally(POLICY), EventReader(POLICY.limits))
    for k in range(50_000):
        lane.facts[f"prospect-{k:06d}"] = ProspectFacts(touches=[k % 3, 0, 1, 0, 0])
    report = Report(scorecard(lane.tally.counts, POLICY.sequences), lane, UNTIL)
    tracemalloc.start()
    try:
        write_csv(tmp_path, report.card, replay_rows(report))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000, peak  # rows of 50,000 prospects as lists would take ~50 MB
    with (tmp_path / "prospects.csv").open() as f:
        header = f.readline().strip().split(",")
        count = sum(1 for _ in f)
    assert header == list(PROSPECT_COLUMNS)
    assert count == 50_000


def _command(channel: str, reason: str, ts: str) -> tuple[int, int, Command]:
    context = Context(touches=[], clicks=[], last_reply=None)
    record = Command("id", "p", ts, channel, "send", reason, None, None, context)  # type: ignore[arg-type]
    return (parse_ts(ts), 1, record)


def _decision() -> tuple[int, int, Decision]:
    d = Decision("p", "2026-03-02T15:00:00Z", "email", "request:c", "blocked", "gap")
    return (parse_ts(d.ts), 2, d)


E1 = ("email", "r", "t1")
E2 = ("email", "r", "t2")
S2 = ("sms", "r", "t2")


@pytest.mark.parametrize(
    ("a", "b", "changed"),
    [
        ([[E1], [S2]], [[E1], [S2]], []),
        ([[E1], []], [[], [E1]], []),  # the same list, one event later
        ([[E1], []], [[E2], []], ["p"]),  # another time
        ([[E1], [S2]], [[E1], []], ["p"]),  # one command more
    ],
)
def test_whatif_diff_compares_whole_command_lists(
    a: list[list[tuple[str, str, str]]], b: list[list[tuple[str, str, str]]], changed: list[str]
) -> None:
    ts = {"t1": "2026-03-02T15:00:00Z", "t2": "2026-03-03T15:00:00Z"}
    diff = Diff()
    for step_a, step_b in zip(a, b, strict=True):
        outs_a: list[Any] = [_command(c, r, ts[t]) for c, r, t in step_a] + [_decision()]
        outs_b: list[Any] = [_command(c, r, ts[t]) for c, r, t in step_b]
        diff.observe("p", None, [outs_a, outs_b])
    assert diff.result() == changed


def test_touch_keys_of_our_command_ids_need_no_hashing() -> None:
    from operators.engine import command_id
    from operators.scorecard_facts import touch_key
    from operators.state import command_key

    ours = command_id("p", "e1", "email", "request:c")
    assert touch_key(ours) == int(ours[:16], 16)
    assert touch_key("not-one-of-ours") == command_key("not-one-of-ours")
    assert touch_key("x" * 32) == command_key("x" * 32)  # 32 characters, not hex
    assert touch_key("0" * 32) == 1  # never 0: that marks a manual touch
