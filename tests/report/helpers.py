"""Shared by the report tests: files of events, the engine's outputs, closed-loop traffic."""

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson

from dataflows.demo.answers import Behaviour, plan
from dataflows.demo.simulate import generate
from dataflows.report_replay import Lane, new_lane, run
from operators.engine import Engine
from operators.events import decode_event
from operators.policy import Policy, load_policy
from operators.scorecard_view import scorecard
from operators.state import ProspectState
from operators.timeutil import format_ts, parse_ts

POLICY = load_policy()
# The reference keeps everything; the accumulator's ledger bound is tested on its own.
UNBOUNDED: dict[str, int] = {"ledger_days": 100_000, "ledger_max": 1_000_000}


def write_events(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def card_of(
    path: Path,
    policy: Policy = POLICY,
    *,
    until: int | None = None,
    ledger_days: int = 100_000,
    ledger_max: int = 1_000_000,
) -> tuple[dict[str, Any], Lane]:
    """The accumulator's scorecard of a file (through `dataflows.report_replay`)."""
    lane = new_lane(policy, ledger_days=ledger_days, ledger_max=ledger_max)
    run(path, [lane], until=until)
    return scorecard(lane.tally.counts, policy.sequences), lane


def engine_outputs(
    events: list[dict[str, Any]], until: int | None, policy: Policy = POLICY
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`Engine.apply` per event and the timers due by `until` at the end, in the replay's
    canonical order, as plain dicts (commands, decisions)."""
    engine = Engine(policy)
    states: dict[str, ProspectState] = {}
    rows: list[tuple[int, str, int, Any]] = []
    for doc in events:
        event = decode_event(msgspec.json.encode(doc))
        state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        rows += [(ts, event.prospect, seq, r) for ts, seq, r in engine.apply(state, event)]
    if until is not None:
        for prospect, state in states.items():
            outs: list[Any] = []
            engine.fire_due(state, until, outs)
            rows += [(ts, prospect, seq, r) for ts, seq, r in outs]
    rows.sort(key=lambda row: row[:3])
    records = [msgspec.to_builtins(r[3]) for r in rows]
    return [r for r in records if "action" in r], [r for r in records if "verdict" in r]


def closed_loop(
    prospects: int, *, seed: int, hours: float = 48.0, policy: Policy = POLICY
) -> list[dict[str, Any]]:
    """Simulated traffic plus a simulated sender's answers to the commands it gets.

    `dataflows.demo.simulate`'s day of events, replayed once; every command then gets the answers
    `dataflows.demo.answers.plan` gives it (touch_sent naming it, sometimes on another channel via
    its backup below, touch_failed, delivered, opened, clicked, replies, STOP, call outcomes),
    minutes after the command. Merged by time, so each prospect's events stay in time order.
    The second replay's commands mostly match the first's (same causes), the rest of the
    answers name commands that no longer come (as a sender's late answers would).
    """
    start = datetime(2026, 3, 3, tzinfo=UTC)
    events = generate(prospects, seed=seed, start=start, hours=hours, duplicate_fraction=0.01)
    until = parse_ts(format_ts(int(start.timestamp() * 1000))) + int(hours * 3_600_000) * 3
    commands, _ = engine_outputs(events, until, policy)
    behaviour = Behaviour(delay_scale=600.0)  # answers 1-30 minutes after the command
    answers: list[tuple[int, int, dict[str, Any]]] = []
    for n, command in enumerate(commands):
        at = parse_ts(command["ts"])
        for i, (delay, answer) in enumerate(plan(command, seed=seed, behaviour=behaviour)):
            if answer["type"] == "touch_sent" and command["backup"] and n % 4 == 0:
                answer = {**answer, "channel": command["backup"]}  # the sender fell back
            answers.append((at + int(delay * 1000), i, {**answer, "ts": format_ts(at)}))
    merged: list[tuple[int, int, dict[str, Any]]] = [
        (parse_ts(str(e["ts"])), 0, dict(e)) for e in events
    ]
    for ts, _i, answer in answers:
        merged.append((ts, 1, {**answer, "ts": format_ts(ts)}))
    merged.sort(key=lambda x: (x[0], x[1]))
    return [e for _ts, _k, e in merged]
