"""Property: for generated event streams, no output breaks a rule (checked by tests.reference)."""

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings

from operators.decider import Decider, Hold
from operators.emit import Out
from operators.engine import Engine
from operators.events import decode_event
from operators.policy import Policy, load_policy
from operators.records import Verdict
from operators.state import Pending, ProspectState
from operators.state_records import Candidate
from operators.timeutil import DAY_MS, parse_ts
from tests.reference import check
from tests.streams import event_streams

ENGINE = Engine(load_policy())


def run_engine(
    events: list[dict[str, Any]], until: int, engine: Engine | None = None
) -> tuple[list[Any], list[Any]]:
    """Drive the engine directly (no Bytewax), in the replay's canonical output order."""
    engine = engine or ENGINE
    states: dict[str, ProspectState] = {}
    rows: list[tuple[int, str, int, Any]] = []
    for doc in events:
        event = decode_event(msgspec.json.encode(doc))
        state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        rows += [(ts, event.prospect, seq, r) for ts, seq, r in engine.apply(state, event)]
    for prospect, state in states.items():
        outs: list[Any] = []
        engine.fire_due(state, until, outs)
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
    """A test that cannot fail is a defect: a lax engine must be caught, rule by rule, and so
    must engines that decide one instant in the wrong order (rule 13)."""
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
    _catches_engines_that_break_the_order_of_an_instant()


# -- rule 13: engines that decide an instant in the wrong order -------------------------------


class QueueOrder(Engine):
    """Decides the items due at one instant in queue order (main before rule 13)."""

    def _next_index(self, pending: list[Pending]) -> int:
        return 0


class PriorityForgetter(Decider):
    """Decides as the real decider, but a deferral drops a request's priority (as main did)."""

    def hold(self, s: ProspectState, c: Candidate, h: Hold, now: int, out: list[Out]) -> Verdict:
        return super().hold(s, msgspec.structs.replace(c, priority=0), h, now, out)


class ForgetsPriority(Engine):
    """Ranks an instant rightly, but a deferral drops a request's priority (as main did)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy, decider=PriorityForgetter)


def _instant_stream() -> list[dict[str, Any]]:
    """o: a call request and a proposal view at night, both held for the 08:00 opening (the
    issue's case); r: a priority-0 and a priority-9 request held by the day's cap until the
    same instant, the priority-0 one first (the issue's LinkedIn request and renewal)."""
    from operators.timeutil import format_ts

    night = parse_ts("2026-03-03T03:00:00Z")  # 22:00 in New York
    day = parse_ts("2026-03-03T15:00:00Z")  # 10:00 in New York
    docs: list[tuple[str, int, dict[str, Any]]] = [
        ("o", night - DAY_MS, {"type": "profile", "timezone": "America/New_York"}),
        ("o", night - DAY_MS, {"type": "consent", "channel": "sms", "granted": True}),
        ("o", night - DAY_MS, {"type": "consent", "channel": "phone", "granted": True}),
        ("o", night, {"type": "touch_request", "channel": "phone", "campaign": "calls"}),
        ("o", night + 120_000, {"type": "proposal_view", "document": "quote"}),
        ("r", day - DAY_MS, {"type": "profile", "timezone": "America/New_York"}),
        ("r", day, {"type": "touch_sent", "channel": "email"}),
        ("r", day + 3_600_000, {"type": "touch_request", "channel": "linkedin", "campaign": "x"}),
        (
            "r",
            day + 7_200_000,
            {"type": "touch_request", "channel": "email", "campaign": "renewal", "priority": 9},
        ),
    ]
    return [
        {"id": f"{who}{i}", "prospect": who, "ts": format_ts(at), **doc}
        for i, (who, at, doc) in enumerate(docs)
    ]


def _catches_engines_that_break_the_order_of_an_instant() -> None:
    """Each rule 13 check catches the engine that breaks it: queue order (both checks), a
    priority dropped at a deferral (the priority check alone); the real engine passes."""
    events = _instant_stream()
    until = horizon(events)
    policy = load_policy()
    queue = check(events, *run_engine(events, until, QueueOrder(policy)))
    assert any("o phone request:calls" in p and "shares its instant" in p for p in queue), queue
    assert any("r priority inversion" in p for p in queue), queue
    forgets = check(events, *run_engine(events, until, ForgetsPriority(policy)))
    assert forgets, "the priority-0 request took the slot of the priority-9 one"
    assert all("r priority inversion" in p for p in forgets), forgets
    commands, decisions = run_engine(events, until)
    assert check(events, commands, decisions) == []
    sent = [(c["prospect"], c["reason"], c["ts"]) for c in commands]
    assert ("o", "trigger:proposal_view", "2026-03-03T13:00:00Z") in sent  # the text, not the call
    assert ("r", "request:renewal", "2026-03-04T15:00:00Z") in sent  # the renewal takes the slot
