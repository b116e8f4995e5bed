"""Fuzz: arbitrary bytes and arbitrary JSON among valid events (issue 10, item 8).

Whatever is thrown at the reader and the engine: no exception escapes, every line is either
applied or dead-lettered, and the lines that were dead-lettered had no effect at all (the
outputs equal those of the accepted lines alone; with no accidental valid event among the
garbage, those of the valid lines alone).
"""

import random
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.engine import Engine
from operators.events import Event
from operators.intake import EventReader
from operators.isolation import apply_isolated, fire_due_isolated
from operators.policy import load_policy
from operators.records import DeadLetter
from operators.state import ProspectState
from tests.operators.test_properties import horizon
from tests.streams import event_streams

POLICY = load_policy()
ENGINE = Engine(POLICY)
READER = EventReader(POLICY.limits, frozenset(POLICY.sequences))

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_fields = st.sampled_from(["id", "type", "prospect", "ts", "channel", "url", "text", "sequence"])
_near_events = st.fixed_dictionaries(
    {
        "id": st.text(max_size=3) | st.integers(),
        "type": st.sampled_from(["page_view", "replied", "touch_request", "enroll", "x"]),
        "prospect": st.sampled_from(["p0", "p1", "", 7]),
        "ts": st.sampled_from(
            ["2026-03-02T15:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", "now"]
        ),
    },
    optional={f: _json for f in ("channel", "url", "text", "sequence", "campaign")},
)
_deep = st.integers(min_value=200, max_value=3000).map(
    lambda n: b'{"id":"d","type":"opened","x":' + b"[" * n + b"]" * n + b"}"
)
_garbage = (
    st.binary(max_size=200)
    | _json.map(msgspec.json.encode)
    | st.dictionaries(_fields, _json).map(msgspec.json.encode)
    | _near_events.map(msgspec.json.encode)
    | _deep
)


def run(lines: list[bytes], until: int) -> tuple[list[bytes], list[DeadLetter], list[bool]]:
    """Read and apply each line, as the flow does; outputs in replay's canonical order."""
    states: dict[str, ProspectState] = {}
    rows: list[tuple[int, str, int, Any]] = []
    dead: list[DeadLetter] = []
    accepted: list[bool] = []
    for raw in lines:
        event = READER.read(raw)
        if isinstance(event, str):
            dead.append(DeadLetter(event=None, reason=event))
            accepted.append(False)
            continue
        accepted.append(_apply(event, states, rows, dead))
    for prospect, state in states.items():
        outs: list[Any] = []
        fire_due_isolated(ENGINE, state, until, outs, dead)
        rows += [(ts, prospect, seq, r) for ts, seq, r in outs]
    rows.sort(key=lambda row: row[:3])
    return [msgspec.json.encode(r[3]) for r in rows], dead, accepted


def _apply(
    event: Event,
    states: dict[str, ProspectState],
    rows: list[tuple[int, str, int, Any]],
    dead: list[DeadLetter],
) -> bool:
    state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
    outs: list[Any] = []
    ok = apply_isolated(ENGINE, state, event, outs, dead)
    rows += [(ts, event.prospect, seq, r) for ts, seq, r in outs]
    return ok


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=2, max_events=15), st.lists(_garbage, max_size=12), st.randoms())
def test_garbage_costs_only_itself(
    events: list[dict[str, Any]], garbage: list[bytes], rnd: random.Random
) -> None:
    valid = [msgspec.json.encode(e) for e in events]
    mixed = list(valid)
    for raw in garbage:
        mixed.insert(rnd.randrange(len(mixed) + 1), raw)
    until = horizon(events)
    outputs, dead, accepted = run(mixed, until)
    assert len(accepted) == len(mixed)
    assert accepted.count(False) <= len(dead)  # every rejected line left a dead letter
    kept = [raw for raw, ok in zip(mixed, accepted, strict=True) if ok]
    assert all(accepted[mixed.index(raw)] for raw in valid), "a valid event was rejected"
    assert run(kept, until)[0] == outputs  # what was dead-lettered had no effect
    if len(kept) == len(valid):
        assert outputs == run(valid, until)[0]
