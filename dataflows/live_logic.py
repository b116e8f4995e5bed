"""Live mode's per-prospect logic: load state on first sight, fire timers in stream time, emit
`Effects` for the commit sink.

Wiring, not domain: it adapts `operators.engine` to Bytewax and to the state store and sinks of
`connectors` (replay's adapter, with no I/O at all, is `operators.logic.ProspectLogic`). Timers
wake through the shard's timer set in Redis, not Bytewax's `notify_at` (`operators.logic` says why);
`notify_at` is kept for one short wait only: a first batch held while its state loads.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, NamedTuple, Protocol

from bytewax.operators import StatefulBatchLogic

from connectors.effects import Ack, Effects, LiveFailure, LiveOutput, TakenFacts
from operators.engine import Engine, Out
from operators.events import Event, Profile
from operators.isolation import apply_isolated, fire_due_isolated
from operators.records import DeadLetter
from operators.scorecard import Tally
from operators.scorecard_facts import ProspectFacts, encode_facts
from operators.scorecard_feed import apply_scored, fire_due_scored
from operators.state import ProspectState, encode_state

log = logging.getLogger(__name__)


class Wake(NamedTuple):
    """ "Fire your timers due by `at`": the prospect's shard has reached stream time `at` (ms)."""

    prospect: str
    at: int


class Evict(NamedTuple):
    """ "Leave the worker": the prospect has been idle; its state is in Redis (or about to be),
    and its next input or timer brings it back (`StateLoader.forget`)."""

    prospect: str


# A live input: an event with the entry to acknowledge, a wake-up or an eviction (nothing to
# acknowledge).
LiveInput = tuple[Event | Wake | Evict, Ack | None]


class StateLoader(Protocol):
    """Loads checkpointed state, many prospects per round trip.

    `ready` says whether a prospect's state is loaded already (prefetched); `request` names a
    prospect whose state will be needed; `take` returns it (None for a new prospect), loading
    every requested prospect at once if this one is not loaded yet.
    """

    def ready(self, prospect: str) -> bool: ...

    def request(self, prospect: str) -> None: ...

    def take(self, prospect: str) -> ProspectState | None: ...

    def forget(self, prospect: str) -> None: ...

    def take_facts(self, prospect: str) -> TakenFacts:
        """The scorecard facts loaded with the state `take` just returned, with their bytes."""
        ...


# "Call `on_notify` at the next activation": any time in the past will do.
_AT_ONCE: Final = datetime(2000, 1, 1, tzinfo=UTC)


class LiveProspectLogic(StatefulBatchLogic[LiveInput, LiveOutput, None]):
    """Live mode: load state on first sight, fire timers in stream time, emit `Effects`.

    Bytewax builds one logic per key and calls it key by key, so loading state in the first
    `on_batch` would cost one Redis round trip per new prospect. The decode step prefetches the
    states of a batch's prospects in one round trip, so they are usually ready. If not, the
    first batch is held and the state requested; Bytewax calls `on_notify` for every such key in
    its next activation, and the first of those loads all requested states in one round trip.

    Timers never look at a clock here: an event fires those due by its time (`Engine.apply`),
    a wake-up those due by its shard's stream time, and after a batch those due by the latest
    stream time it brought. So a run that was killed and restarted decides every timer at the
    same point of the stream as an uninterrupted one (see `connectors.redis_source`).
    """

    __slots__ = ("encoded", "engine", "facts", "held", "loader", "prospect", "state", "tally")

    def __init__(self, engine: Engine, loader: StateLoader, tally: Tally | None = None) -> None:
        self.engine = engine
        self.loader = loader
        self.tally = tally  # None: `streams.scorecard` is off, no counting
        self.state: ProspectState | None = None
        self.facts: ProspectFacts | None = None
        self.encoded: bytes | None = None  # `facts` as loaded or last encoded (None: neither)
        self.held: list[LiveInput] = []
        self.prospect = ""

    def on_batch(self, values: list[LiveInput]) -> tuple[Iterable[LiveOutput], bool]:
        if any(type(v[0]) is Evict for v in values):
            kept = [v for v in values if type(v[0]) is not Evict]
            if not kept and not self.held:  # idle, nothing loading: leave the worker
                self.loader.forget(values[0][0].prospect)
                return _NO_EFFECTS, self.DISCARD
            if not kept:
                return _NO_EFFECTS, self.RETAIN
            values = kept  # more came with the eviction: stay
        state = self.state
        if state is None:
            if not self.held:
                self.prospect = values[0][0].prospect
                if not self.loader.ready(self.prospect):
                    self.loader.request(self.prospect)
                    self.held = list(values)
                    return _NO_EFFECTS, self.RETAIN
                state = self._loaded()
            else:
                state, values = self._loaded(), self._release() + values
        return self._apply(state, values), self.RETAIN

    def on_notify(self) -> tuple[Iterable[LiveOutput], bool]:
        if self.state is None and self.held:
            return self._apply(self._loaded(), self._release()), self.RETAIN
        return _NO_EFFECTS, self.RETAIN

    def on_eof(self) -> tuple[Iterable[LiveOutput], bool]:
        if self.state is None and self.held:
            return self._apply(self._loaded(), self._release()), self.RETAIN
        return _NO_EFFECTS, self.RETAIN

    def notify_at(self) -> datetime | None:
        return _AT_ONCE if self.held else None

    def snapshot(self) -> None:
        return None

    def _release(self) -> list[LiveInput]:
        held, self.held = self.held, []
        return held

    def _loaded(self) -> ProspectState:
        state = self.loader.take(self.prospect) or ProspectState(prospect=self.prospect)
        self.state = state
        if self.tally is not None:
            self.facts, self.encoded = self.loader.take_facts(self.prospect)
        return state

    def _apply(self, state: ProspectState, values: list[LiveInput]) -> tuple[LiveOutput, ...]:
        """Effects of the batch, then a dead letter per input or timer that raised (an input's
        with its entry, which the dead-letter sink acknowledges; not in the effects' acks).

        With the scorecard on, events and timers go through `operators.scorecard_feed`, the
        replay's own path, counting into the tally's current fields: the batch's counts, which
        the effects carry to the checkpoint that writes this state (`Tally.take`), with the
        facts, encoded again only if the batch changed them: on bench_live's mix, a third of
        the batches change facts (benchmarks/bench_scorecard_live.py)."""
        engine = self.engine
        tally = self.tally
        if tally is not None:
            tally.changed = False
        out: list[Out] = []
        acks: list[Ack] = []
        dead: list[DeadLetter] = []
        failed: list[LiveFailure] = []
        first_seen: int | None = None
        stream_ms = 0  # the latest stream time this batch brings
        address: tuple[str | None, str | None] | None = None
        for item, ack in values:
            if isinstance(item, Wake):
                self._timers(state, item.at, out, dead)
                stream_ms = max(stream_ms, item.at)
                continue
            if isinstance(item, Evict):  # held while loading: the prospect stays
                continue
            if ack is not None:
                seen = _entry_ms(ack[1])
                stream_ms = max(stream_ms, seen)
                first_seen = seen if first_seen is None else min(first_seen, seen)
            if not self._event(state, item, out, dead):
                failed.append((dead.pop(), ack))
                continue
            if ack is not None:
                acks.append(ack)
            if type(item) is Profile and (item.email or item.phone):
                email, phone = address or (None, None)
                address = (item.email or email, item.phone or phone)
        due = engine.next_due(state)
        if due is not None and due <= stream_ms:  # due already: no wake-up needed
            self._timers(state, stream_ms, out, dead)
        failed += ((letter, None) for letter in dead)  # dropped timers: nothing to acknowledge
        if tally is not None and self.facts is not None and (tally.changed or not self.encoded):
            self.encoded = encode_facts(self.facts)
        effects = Effects(
            out,
            encode_state(state),
            engine.next_due(state),
            acks,
            first_seen,
            address,
            self.encoded,
            tally.take() if tally is not None else None,
            stream_ms,
        )
        return (effects, *failed)

    def _event(
        self, state: ProspectState, event: Event, out: list[Out], dead: list[DeadLetter]
    ) -> bool:
        """`apply_scored` (the engine isolated, as `apply_isolated`); the counting is isolated
        too: the engine raises inside its own guard, so whatever escapes is the tally's, after
        the event's effects were made. A counting bug must not stop outreach (the event would
        come back at every restart until the poison limit dead-letters it, effects and all):
        it is logged, and that event's counts may be off."""
        if self.tally is None or self.facts is None:
            return apply_isolated(self.engine, state, event, out, dead)
        try:
            return apply_scored(self.engine, self.tally, state, self.facts, event, out, dead)
        except Exception:
            log.exception("scorecard counting failed on an event of %s", state.prospect)
            self.tally.changed = True  # it may have changed the facts half-way: keep them
            return True

    def _timers(
        self, state: ProspectState, until: int, out: list[Out], dead: list[DeadLetter]
    ) -> None:
        if self.tally is None or self.facts is None:
            fire_due_isolated(self.engine, state, until, out, dead)
            return
        try:
            fire_due_scored(self.engine, self.tally, state, self.facts, until, out, dead)
        except Exception:  # as in `_event`: the timers fired, only their counting failed
            log.exception("scorecard counting failed on timers of %s", state.prospect)
            self.tally.changed = True


_NO_EFFECTS: Final[tuple[LiveOutput, ...]] = ()


def _entry_ms(entry_id: bytes) -> int:
    """A Redis stream entry id starts with the server's time in ms when it was added."""
    return int(entry_id.split(b"-", 1)[0])
