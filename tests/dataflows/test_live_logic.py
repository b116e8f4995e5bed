"""Live mode's per-prospect adapter: held first batches and bulk state loads change nothing.

`LiveProspectLogic` holds a prospect's first batch until Bytewax's next activation, so that the
states of all prospects seen for the first time load in one round trip. Driven the way Bytewax
drives it (batches of any size, `on_notify` when `notify_at` says so, `on_eof` at the end), it
must produce exactly what applying every event in order to the checkpointed state produces.
Timers fire in stream time: an event fires those due by its time, a wake-up those due by its
shard's stream time, and a batch those due by the latest entry time it brought; the equivalence
runs with entry times near 0, so only event time fires timers.
"""

from datetime import datetime
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.effects import Effects, TakenFacts
from dataflows.live_logic import LiveInput, LiveProspectLogic, Wake
from operators.engine import Engine
from operators.events import Event, decode_event
from operators.policy import load_policy
from operators.records import Command
from operators.scorecard_facts import ProspectFacts, decode_facts
from operators.state import ProspectState, decode_state, encode_state
from tests.streams import event_streams

ENGINE = Engine(load_policy())


class DictLoader:
    """The `StateLoader` protocol over a dict of encoded states (and facts); counts its load
    rounds."""

    def __init__(
        self,
        stored: dict[str, bytes],
        prefetched: frozenset[str] = frozenset(),
        facts: dict[str, bytes] | None = None,
    ) -> None:
        self.stored = stored
        self.facts = facts or {}
        self.prefetched = set(prefetched)  # these are `ready` until taken
        self.requested: list[str] = []
        self.loaded: dict[str, bytes | None] = {}
        self.rounds = 0
        self.taken: list[str] = []

    def ready(self, prospect: str) -> bool:
        return prospect in self.prefetched

    def request(self, prospect: str) -> None:
        self.requested.append(prospect)

    def take(self, prospect: str) -> ProspectState | None:
        if prospect in self.prefetched:
            self.prefetched.discard(prospect)
            self.loaded[prospect] = self.stored.get(prospect)
        if prospect not in self.loaded:
            self.rounds += 1
            for p in [*self.requested, prospect]:
                self.loaded[p] = self.stored.get(p)
            self.requested = []
        self.taken.append(prospect)
        data = self.loaded.pop(prospect)
        return decode_state(data) if data is not None else None

    def forget(self, prospect: str) -> None:
        return None

    def take_facts(self, prospect: str) -> TakenFacts:
        data = self.facts.get(prospect)
        return (
            TakenFacts(decode_facts(data), data)
            if data is not None
            else TakenFacts(ProspectFacts())
        )


def decoded(docs: list[dict[str, Any]]) -> list[Event]:
    return [decode_event(msgspec.json.encode(doc)) for doc in docs]


def due_now(logic: LiveProspectLogic) -> bool:
    """Held input asks for a notification at once (any past time); nothing else may ask."""
    at = logic.notify_at()
    assert at is None or at < datetime(2001, 1, 1, tzinfo=at.tzinfo)
    return at is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=3, max_events=30), st.data())
def test_held_batches_and_bulk_loads_give_the_direct_outputs(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    stream = decoded(events)
    # Some prospects already have a checkpoint: their first events were applied before.
    cut = data.draw(st.integers(0, len(stream)), label="checkpointed prefix")
    direct: dict[str, ProspectState] = {}
    for event in stream[:cut]:
        state = direct.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        ENGINE.apply(state, event)
    prefetched = data.draw(st.frozensets(st.sampled_from(["p0", "p1", "p2"])), label="prefetched")
    loader = DictLoader({p: encode_state(s) for p, s in direct.items()}, prefetched)
    expected: dict[str, list[Any]] = {}
    for event in stream[cut:]:
        state = direct.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        expected.setdefault(event.prospect, []).extend(ENGINE.apply(state, event))

    logics: dict[str, LiveProspectLogic] = {}
    got: dict[str, list[Any]] = {}
    acked: list[tuple[int, bytes]] = []
    last: dict[str, Effects] = {}

    def collect(prospect: str, effects: Any) -> None:
        for fx in effects:
            got.setdefault(prospect, []).extend(fx.outputs)
            acked.extend(fx.acks)
            last[prospect] = fx

    rest = [(e, (0, f"{i + 1}-0".encode())) for i, e in enumerate(stream[cut:])]
    inputs = [ack for _e, ack in rest]
    while rest:  # one activation: a batch per key, then the notifications that are due
        size = data.draw(st.integers(1, 8), label="activation size")
        activation, rest = rest[:size], rest[size:]
        by_key: dict[str, list[LiveInput]] = {}
        for event, ack in activation:
            by_key.setdefault(event.prospect, []).append((event, ack))
        for prospect, values in by_key.items():
            logic = logics.setdefault(prospect, LiveProspectLogic(ENGINE, loader))
            collect(prospect, logic.on_batch(values)[0])
        for prospect, logic in logics.items():
            if prospect not in by_key and due_now(logic):
                collect(prospect, logic.on_notify()[0])
    for prospect, logic in logics.items():
        collect(prospect, logic.on_eof()[0])

    assert {p: o for p, o in got.items() if o} == {p: o for p, o in expected.items() if o}
    assert sorted(acked) == sorted(inputs), "every input is acknowledged exactly once"
    assert sorted(loader.taken) == sorted(logics), "each prospect's state is loaded once"
    for prospect, fx in last.items():
        assert decode_state(fx.state) == direct[prospect]


def test_first_batches_of_many_prospects_load_in_one_round() -> None:
    loader = DictLoader({})
    events = decoded(
        [
            {"id": f"e{k}", "type": "page_view", "prospect": f"p{k}", "ts": "2026-03-02T10:00:00Z"}
            | {"url": "https://x.example/a"}
            for k in range(5)
        ]
    )
    logics = [LiveProspectLogic(ENGINE, loader) for _ in events]
    for logic, event in zip(logics, events, strict=True):
        effects, _ = logic.on_batch([(event, (0, b"1-0"))])
        assert list(effects) == [], "the first batch is held until the states are loaded"
        assert due_now(logic)
    assert loader.rounds == 0
    for logic in logics:
        (fx,) = logic.on_notify()[0]
        assert fx.acks == [(0, b"1-0")]
    assert loader.rounds == 1
    assert not any(due_now(logic) for logic in logics)


def test_a_timer_fires_when_the_stream_reaches_it_not_before() -> None:
    """A campaign request waits for its arbitration window; live, the window closes when the
    shard's stream time passes it: at the end of a batch whose entries are that late, or on a
    wake-up carrying the shard's watermark. Never on the worker's clock."""
    request = decoded(
        [
            {"id": "r1", "type": "touch_request", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
            | {"channel": "chat", "campaign": "c"}
        ]
    )[0]
    window_closes = ENGINE.policy.requests.arbitration_seconds * 1000 + 1772463600000
    logic = LiveProspectLogic(ENGINE, DictLoader({}))
    logic.on_batch([(request, (0, b"1772463600000-0"))])
    (fx,) = logic.on_notify()[0]
    assert fx.outputs == []
    assert fx.next_due == window_closes
    (fx,) = logic.on_batch([(Wake("p", window_closes - 1), None)])[0]  # not yet
    assert fx.outputs == []
    (fx,) = logic.on_batch([(Wake("p", window_closes), None)])[0]  # the source's wake-up
    assert [r.channel for _t, _s, r in fx.outputs if isinstance(r, Command)] == ["chat"]
    assert fx.next_due is None
    assert logic.notify_at() is None, "timers never go through Bytewax's notify_at"


def test_an_entry_appended_after_a_due_time_fires_the_timer_in_its_batch() -> None:
    request, view = decoded(
        [
            {"id": "r1", "type": "touch_request", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
            | {"channel": "chat", "campaign": "c"},
            # an event whose own time is older (a late callback), appended after the window
            {"id": "v", "type": "opened", "prospect": "p", "ts": "2026-03-02T14:00:00Z"}
            | {"channel": "email"},
        ]
    )
    window_closes = ENGINE.policy.requests.arbitration_seconds * 1000 + 1772463600000
    logic = LiveProspectLogic(ENGINE, DictLoader({}, frozenset({"p"})))
    (fx,) = logic.on_batch([(request, (0, b"1772463600000-0"))])[0]
    assert fx.outputs == []
    later = b"%d-0" % (window_closes + 5)
    (fx,) = logic.on_batch([(view, (0, later))])[0]
    assert [r.channel for _t, _s, r in fx.outputs if isinstance(r, Command)] == ["chat"]


def test_a_prefetched_state_is_used_in_the_same_batch() -> None:
    event = decoded(
        [{"id": "e", "type": "form_submit", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}]
    )[0]
    loader = DictLoader({}, frozenset({"p"}))
    logic = LiveProspectLogic(ENGINE, loader)
    (fx,) = logic.on_batch([(event, (0, b"1-0"))])[0]
    assert [r.channel for _t, _s, r in fx.outputs if isinstance(r, Command)] == ["email"]
    assert not due_now(logic)
    assert loader.rounds == 0
