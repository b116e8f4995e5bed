"""The thin Bytewax adapter: one `StatefulBatchLogic` per prospect, feeding `Engine`.

Timers: in replay, due times lie in the past of the wall clock, so `notify_at` would fire them at
once and out of event order. Replay therefore fires a prospect's timers lazily (the engine fires
every timer due by an event's time before applying it) and at end of input up to `--until`.

Live, a prospect's next due time goes to Redis with its checkpoint (a sorted set per shard), and
the event source turns due entries into wake-up inputs. Not Bytewax's `notify_at`: Bytewax 0.21's
`stateful_batch` scans every key with a scheduled notification on every activation, so with tens
of thousands of prospects waiting (a minute of arbitration windows, days of sequence steps) the
scan, not the rules, used most of the worker (README, Benchmarks). `notify_at` is kept for one
short wait only: a first batch held while its state loads.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, NamedTuple, Protocol

from bytewax.operators import StatefulBatchLogic

from operators.engine import Engine, Out
from operators.events import Event, Profile
from operators.isolation import apply_isolated, fire_due_isolated
from operators.records import DeadLetter
from operators.state import ProspectState, encode_state

_NOTHING: Final[tuple[list[Out] | DeadLetter, ...]] = ()


class ProspectLogic(StatefulBatchLogic[Event, list[Out] | DeadLetter, None]):
    """Apply a prospect's events in order; emit one list of outputs per batch that has any,
    and a dead letter for each event or timer that raised (see `operators.isolation`)."""

    __slots__ = ("engine", "state", "until")

    def __init__(self, engine: Engine, state: ProspectState, *, until: int | None) -> None:
        self.engine = engine
        self.state = state
        self.until = until

    def on_batch(self, values: list[Event]) -> tuple[Iterable[list[Out] | DeadLetter], bool]:
        state = self.state
        if not state.prospect:
            state.prospect = values[0].prospect
        engine = self.engine
        out: list[Out] = []
        dead: list[DeadLetter] = []
        for event in values:
            apply_isolated(engine, state, event, out, dead)
        return _emitted(out, dead), self.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Out] | DeadLetter], bool]:
        if self.until is None:
            return _NOTHING, self.RETAIN
        out: list[Out] = []
        dead: list[DeadLetter] = []
        fire_due_isolated(self.engine, self.state, self.until, out, dead)
        return _emitted(out, dead), self.RETAIN

    def snapshot(self) -> None:
        """Nothing for Bytewax's own recovery: Redis holds the checkpoint (see connectors)."""
        return None


def _emitted(out: list[Out], dead: list[DeadLetter]) -> tuple[list[Out] | DeadLetter, ...]:
    if not dead:
        return (out,) if out else _NOTHING
    return ((out,) if out else ()) + tuple(dead)


# -- live mode ------------------------------------------------------------------------------------

# Where an input came from, to acknowledge it once its effects are durable: (shard, entry id).
Ack = tuple[int, bytes]


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


class Effects(NamedTuple):
    """Everything one batch of one prospect caused, kept together for the commit sink.

    `state` is the prospect's state encoded right after this batch, not a reference to the live
    object: a checkpoint must never contain effects whose commands were not yet written.
    """

    outputs: list[Out]
    state: bytes
    next_due: int | None
    acks: list[Ack]
    first_seen_ms: int | None  # stream time of the batch's oldest input, for latency metrics
    # (email, phone) of the batch's `profile` events, for the gateway's identity index: written
    # with the checkpoint, before the acks, off the worker's path (`connectors.identity`).
    address: tuple[str | None, str | None] | None = None


# "Call `on_notify` at the next activation": any time in the past will do.
_AT_ONCE: Final = datetime(2000, 1, 1, tzinfo=UTC)


# A live input or timer that raised: its dead letter, and the entry to acknowledge (None for a
# timer, which has no entry of its own).
LiveFailure = tuple[DeadLetter, Ack | None]
LiveOutput = Effects | LiveFailure


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

    __slots__ = ("engine", "held", "loader", "prospect", "state")

    def __init__(self, engine: Engine, loader: StateLoader) -> None:
        self.engine = engine
        self.loader = loader
        self.state: ProspectState | None = None
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
        return state

    def _apply(self, state: ProspectState, values: list[LiveInput]) -> tuple[LiveOutput, ...]:
        """Effects of the batch, then a dead letter per input or timer that raised (an input's
        with its entry, which the dead-letter sink acknowledges; not in the effects' acks)."""
        engine = self.engine
        out: list[Out] = []
        acks: list[Ack] = []
        dead: list[DeadLetter] = []
        failed: list[LiveFailure] = []
        first_seen: int | None = None
        stream_ms = 0  # the latest stream time this batch brings
        address: tuple[str | None, str | None] | None = None
        for item, ack in values:
            if isinstance(item, Wake):
                fire_due_isolated(engine, state, item.at, out, dead)
                stream_ms = max(stream_ms, item.at)
                continue
            if isinstance(item, Evict):  # held while loading: the prospect stays
                continue
            if ack is not None:
                seen = _entry_ms(ack[1])
                stream_ms = max(stream_ms, seen)
                first_seen = seen if first_seen is None else min(first_seen, seen)
            if not apply_isolated(engine, state, item, out, dead):
                failed.append((dead.pop(), ack))
                continue
            if ack is not None:
                acks.append(ack)
            if type(item) is Profile and (item.email or item.phone):
                email, phone = address or (None, None)
                address = (item.email or email, item.phone or phone)
        due = engine.next_due(state)
        if due is not None and due <= stream_ms:  # due already: no wake-up needed
            fire_due_isolated(engine, state, stream_ms, out, dead)
        failed += ((letter, None) for letter in dead)  # dropped timers: nothing to acknowledge
        return (self._effects(state, out, acks, first_seen, address), *failed)

    def _effects(
        self,
        state: ProspectState,
        out: list[Out],
        acks: list[Ack],
        first_seen: int | None,
        address: tuple[str | None, str | None] | None,
    ) -> Effects:
        due = self.engine.next_due(state)
        return Effects(out, encode_state(state), due, acks, first_seen, address)


_NO_EFFECTS: Final[tuple[LiveOutput, ...]] = ()


def _entry_ms(entry_id: bytes) -> int:
    """A Redis stream entry id starts with the server's time in ms when it was added."""
    return int(entry_id.split(b"-", 1)[0])
