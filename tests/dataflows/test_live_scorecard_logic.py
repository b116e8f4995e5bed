"""The live flow's scorecard counting, in process: the same counts and facts as the replay's.

`LiveProspectLogic` counts each batch into fresh fields (its counts, carried to the checkpoint
with the state), and encodes the facts only after a batch that changed them. Driven as Bytewax
drives it, over generated streams, with a part of the history already checkpointed (its counts
written, its facts loaded with the state), the fields summed over every batch plus the
checkpointed counts must equal the replay's counts; after every batch, the facts last encoded
must be the facts the logic holds (a change left unencoded would be lost at the next restart);
and each prospect's last facts must be the replay's facts. Entry times are the events' own
(arrival-time traffic, where the contract says live equals replay), and a wake-up at the end
fires the timers due by then, as `report --until` does.
"""

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.effects import Effects
from dataflows.live_logic import LiveInput, LiveProspectLogic, Wake
from operators.emit import Out
from operators.events import Event
from operators.policy import load_policy
from operators.records import DeadLetter
from operators.scorecard import Tally
from operators.scorecard_facts import (
    Fields,
    ProspectFacts,
    add_fields,
    counts_from,
    decode_facts,
    encode_facts,
)
from operators.scorecard_feed import apply_scored, fire_due_scored
from operators.scorecard_view import scorecard
from operators.state import ProspectState, encode_state
from operators.timeutil import DAY_MS, to_ms
from tests.dataflows.test_live_logic import ENGINE, DictLoader, decoded, due_now
from tests.streams import event_streams

POLICY = load_policy()


def replayed(
    stream: list[Event], tally: Tally, until: int | None
) -> tuple[dict[str, ProspectState], dict[str, ProspectFacts]]:
    """The replay's path (`scorecard_feed`) over `stream`, timers due by `until` at the end."""
    states: dict[str, ProspectState] = {}
    facts: dict[str, ProspectFacts] = {}
    for event in stream:
        p = event.prospect
        state = states.setdefault(p, ProspectState(prospect=p))
        out: list[Out] = []
        dead: list[DeadLetter] = []
        apply_scored(ENGINE, tally, state, facts.setdefault(p, ProspectFacts()), event, out, dead)
    if until is not None:
        for p, state in states.items():
            fire_due_scored(ENGINE, tally, state, facts[p], until, [], [])
    return states, facts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams(prospects=3, max_events=40), st.data())
def test_live_deltas_sum_to_the_replays_counts(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    stream = decoded(events)
    until = max(to_ms(e.ts) for e in stream) + 30 * DAY_MS
    whole = Tally(POLICY)
    want_states, want_facts = replayed(stream, whole, until)

    cut = data.draw(st.integers(0, len(stream)), label="checkpointed prefix")
    before = Tally(POLICY)
    states, facts = replayed(stream[:cut], before, None)
    loader = DictLoader(
        {p: encode_state(s) for p, s in states.items()},
        data.draw(st.frozensets(st.sampled_from(["p0", "p1", "p2"])), label="prefetched"),
        {p: encode_facts(f) for p, f in facts.items()},
    )
    total: Fields = dict(before.fields)
    last: dict[str, Effects] = {}
    encoded = dict(loader.facts)  # per prospect, the facts a restart would load
    logics: dict[str, LiveProspectLogic] = {}
    tally = Tally(POLICY)

    def collect(prospect: str, effects: Any) -> None:
        for fx in effects:
            if isinstance(fx, Effects):
                if fx.counts is not None:  # None: the batch changed no count
                    add_fields(total, fx.counts)
                if fx.facts is not None:  # None: the batch changed no facts
                    encoded[prospect] = fx.facts
                last[prospect] = fx
        held = logics[prospect].facts
        if held is not None:
            assert held == stored(prospect), "facts changed by a batch that did not hand them over"

    def stored(prospect: str) -> ProspectFacts:
        data = encoded.get(prospect)
        return decode_facts(data) if data is not None else ProspectFacts()

    def logic(prospect: str) -> LiveProspectLogic:
        return logics.setdefault(prospect, LiveProspectLogic(ENGINE, loader, tally))

    rest = [(e, (0, b"%d-0" % to_ms(e.ts))) for e in stream[cut:]]
    while rest:
        size = data.draw(st.integers(1, 8), label="activation size")
        activation, rest = rest[:size], rest[size:]
        by_key: dict[str, list[LiveInput]] = {}
        for event, ack in activation:
            by_key.setdefault(event.prospect, []).append((event, ack))
        for prospect, values in by_key.items():
            collect(prospect, logic(prospect).on_batch(values)[0])
        for prospect, one in logics.items():
            if prospect not in by_key and due_now(one):
                collect(prospect, one.on_notify()[0])
    for prospect in want_states:  # the stream reaches `until`: every shard wakes its timers
        one = logic(prospect)
        collect(prospect, one.on_batch([(Wake(prospect, until), None)])[0])
        collect(prospect, one.on_notify()[0])

    seqs = POLICY.sequences
    assert scorecard(counts_from(total.items()), seqs) == scorecard(whole.counts, seqs)
    for prospect, fx in last.items():
        assert stored(prospect) == want_facts[prospect]
        assert fx.state == encode_state(want_states[prospect])


def test_with_the_scorecard_off_nothing_is_counted() -> None:
    (event,) = decoded(
        [
            {"id": "r", "type": "touch_request", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
            | {"channel": "email", "campaign": "c"}
        ]
    )
    later = (0, b"1772463900000-0")  # appended after the request's arbitration window closed
    loader = DictLoader({}, frozenset({"p"}))
    (fx,) = LiveProspectLogic(ENGINE, loader).on_batch([(event, later)])[0]
    assert isinstance(fx, Effects)
    assert fx.outputs
    assert fx.counts is None
    assert fx.facts is None
    counted = LiveProspectLogic(ENGINE, DictLoader({}, frozenset({"p"})), Tally(POLICY))
    (fx,) = counted.on_batch([(event, later)])[0]
    assert isinstance(fx, Effects)
    assert fx.counts is not None
    counts = counts_from(fx.counts.items())
    assert counts.campaigns == {"c": [1, 1, 0, 0]}  # requested, sent
    assert counts.touches == [1, 0, 0, 0, 0]
    assert fx.facts is not None  # the request's decision and command changed them
    assert fx.stream_ms == 1772463900000


def test_a_batch_that_changes_no_facts_hands_them_over_unencoded_again() -> None:
    """Page views and callbacks naming no known command change neither counts nor facts (most
    live batches are such): the facts go with the state as they were, encoded once."""
    events = decoded(
        [
            {"id": "v", "type": "page_view", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
            | {"url": "https://x.example/"},
            {"id": "o", "type": "opened", "prospect": "p", "ts": "2026-03-02T15:01:00Z"}
            | {"channel": "email", "command": "unknown"},
        ]
    )
    logic = LiveProspectLogic(ENGINE, DictLoader({}, frozenset({"p"})), Tally(POLICY))
    (fx,) = logic.on_batch([(e, (0, b"1772463900000-%d" % k)) for k, e in enumerate(events)])[0]
    assert isinstance(fx, Effects)
    assert fx.facts == encode_facts(ProspectFacts())
    assert fx.counts is None
    assert logic.facts == ProspectFacts()
    stored = ProspectFacts(flags=1)
    logic = LiveProspectLogic(
        ENGINE, DictLoader({}, frozenset({"p"}), {"p": encode_facts(stored)}), Tally(POLICY)
    )
    (first,) = logic.on_batch([(events[0], (0, b"1772463900000-0"))])[0]
    (second,) = logic.on_batch([(events[1], (0, b"1772463900000-1"))])[0]
    assert isinstance(first, Effects)
    assert isinstance(second, Effects)
    assert first.facts == encode_facts(stored)
    assert second.facts is first.facts, "unchanged: not encoded again"
    # Facts as an older version wrote them (fewer fields: they decode the same, but encode to
    # other bytes): a batch that leaves them as they were writes the loaded bytes back, not
    # an encoding of its own.
    older = b"\x93\xc0\xc0\x01"  # [touches, ledger, flags] only
    assert older != encode_facts(stored)
    assert decode_facts(older) == stored
    logic = LiveProspectLogic(ENGINE, DictLoader({}, frozenset({"p"}), {"p": older}), Tally(POLICY))
    (fx,) = logic.on_batch([(events[0], (0, b"1772463900000-0"))])[0]
    assert isinstance(fx, Effects)
    assert fx.facts is older


class _BrokenTally(Tally):
    def event(self, f: ProspectFacts, event: Event, ts: int) -> None:
        msg = "a counting bug"
        raise RuntimeError(msg)


def test_a_counting_bug_costs_the_counts_never_the_commands() -> None:
    """The event's effects stand (its command is written, its entry acknowledged); only its
    counts may be off, and the next events are counted again."""
    first, second = decoded(
        [
            {"id": f"r{k}", "type": "touch_request", "prospect": "p", "ts": ts}
            | {"channel": "email", "campaign": "c"}
            for k, ts in ((1, "2026-03-02T15:00:00Z"), (2, "2026-03-09T15:00:00Z"))
        ]
    )
    tally = _BrokenTally(POLICY)
    logic = LiveProspectLogic(ENGINE, DictLoader({}, frozenset({"p"})), tally)
    effects, _ = logic.on_batch([(first, (0, b"1772463900000-0"))])
    (fx,) = effects
    assert isinstance(fx, Effects)
    assert fx.acks == [(0, b"1772463900000-0")]
    assert sorted(type(r).__name__ for _t, _s, r in fx.outputs) == ["Command", "Decision"]
    (fx,) = logic.on_batch([(second, (0, b"1773068700000-0"))])[0]
    assert isinstance(fx, Effects)
    assert fx.acks == [(0, b"1773068700000-0")]
