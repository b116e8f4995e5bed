"""Property: for generated event streams, no output breaks a rule (checked by tests.reference)."""

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings

from operators.engine import Engine
from operators.events import decode_event
from operators.policy import load_policy
from operators.state import ProspectState
from operators.timeutil import DAY_MS, parse_ts
from tests.reference import check
from tests.streams import event_streams

ENGINE = Engine(load_policy())


def run_engine(events: list[dict[str, Any]], until: int) -> tuple[list[Any], list[Any]]:
    """Drive the engine directly (no Bytewax), in the replay's canonical output order."""
    states: dict[str, ProspectState] = {}
    rows: list[tuple[int, str, int, Any]] = []
    for doc in events:
        event = decode_event(msgspec.json.encode(doc))
        state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        rows += [(ts, event.prospect, seq, r) for ts, seq, r in ENGINE.apply(state, event)]
    for prospect, state in states.items():
        outs: list[Any] = []
        ENGINE.fire_due(state, until, outs)
        rows += [(ts, prospect, seq, r) for ts, seq, r in outs]
    rows.sort(key=lambda row: row[:3])
    records = [msgspec.to_builtins(r[3]) for r in rows]
    commands = [r for r in records if "action" in r]
    decisions = [r for r in records if "verdict" in r]
    return commands, decisions


def horizon(events: list[dict[str, Any]]) -> int:
    return max((parse_ts(e["ts"]) for e in events), default=0) + 30 * DAY_MS


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_no_output_breaks_a_rule(events: list[dict[str, Any]]) -> None:
    commands, decisions = run_engine(events, horizon(events))
    assert check(events, commands, decisions) == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=1, max_events=60))
def test_long_single_prospect_histories_break_no_rule(events: list[dict[str, Any]]) -> None:
    commands, decisions = run_engine(events, horizon(events))
    assert check(events, commands, decisions) == []


LAX = "caps = []\n[gap]\nhours = 0\n"
LAX_POLICIES = {
    "no caps": (LAX, "over the email week cap"),
    "no consent": (LAX + "[consent]\nrequired = []\n", "no consent"),
    "no quiet hours": (LAX + "[quiet_hours]\nchannels = []\n", "in quiet hours"),
    "no keywords": (LAX + "[keywords]\nstop = []\n", "opted out"),
}


def _stream() -> list[dict[str, Any]]:
    """p: STOP by sms, phone without consent, four emails at once; q: an sms at 22:00 local."""
    from operators.timeutil import format_ts

    base = parse_ts("2026-03-03T03:00:00Z")  # 22:00 in New York
    p: list[dict[str, Any]] = [
        {"type": "profile", "timezone": "America/New_York"},
        {"type": "consent", "channel": "sms", "granted": True},
        {"type": "replied", "channel": "sms", "text": "STOP"},
        {"type": "touch_request", "channel": "phone", "campaign": "c"},
        {"type": "touch_request", "channel": "sms", "campaign": "c"},
        *({"type": "touch_request", "channel": "email", "campaign": "c"} for _ in range(4)),
    ]
    q: list[dict[str, Any]] = [
        {"type": "profile", "timezone": "America/New_York"},
        {"type": "consent", "channel": "sms", "granted": True},
        {"type": "touch_request", "channel": "sms", "campaign": "c"},
    ]
    return [
        {"id": f"{who}{i}", "prospect": who, "ts": format_ts(base + i * 60_000), **doc}
        for who, docs in (("p", p), ("q", q))
        for i, doc in enumerate(docs)
    ]


def test_the_checker_catches_engines_that_break_each_rule() -> None:
    """A test that cannot fail is a defect: a lax engine must be caught, rule by rule."""
    from operators.policy import parse_policy

    events = _stream()
    global ENGINE
    strict = ENGINE
    try:
        for name, (toml, expected) in LAX_POLICIES.items():
            ENGINE = Engine(parse_policy(toml))
            commands, decisions = run_engine(events, horizon(events))
            problems = check(events, commands, decisions)
            assert any(expected in p for p in problems), (name, problems)
        ENGINE = strict
        commands, decisions = run_engine(events, horizon(events))
        assert check(events, commands, decisions) == []
    finally:
        ENGINE = strict
