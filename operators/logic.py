"""The thin Bytewax adapter: one `StatefulBatchLogic` per prospect, feeding `Engine`.

Timers: in replay, due times lie in the past of the wall clock, so `notify_at` would fire them at
once and out of event order. Replay therefore fires a prospect's timers lazily (the engine fires
every timer due by an event's time before applying it) and at end of input up to `--until`.
`LiveProspectLogic` also returns the next due time from `notify_at`, so live timers wake on
the wall clock.
"""

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, NamedTuple, Protocol

from bytewax.operators import StatefulBatchLogic

from operators.engine import Engine, Out
from operators.events import Event
from operators.state import ProspectState, encode_state
from operators.timeutil import from_ms

_NOTHING: Final[tuple[list[Out], ...]] = ()


class ProspectLogic(StatefulBatchLogic[Event, list[Out], None]):
    """Apply a prospect's events in order; emit one list of outputs per batch that has any."""

    __slots__ = ("engine", "state", "until")

    def __init__(self, engine: Engine, state: ProspectState, *, until: int | None) -> None:
        self.engine = engine
        self.state = state
        self.until = until

    def on_batch(self, values: list[Event]) -> tuple[Iterable[list[Out]], bool]:
        state = self.state
        if not state.prospect:
            state.prospect = values[0].prospect
        apply = self.engine.apply
        if len(values) == 1:
            out = apply(state, values[0])
        else:
            out = []
            for event in values:
                out.extend(apply(state, event))
        return ((out,) if out else _NOTHING), self.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Out]], bool]:
        if self.until is None:
            return _NOTHING, self.RETAIN
        out: list[Out] = []
        self.engine.fire_due(self.state, self.until, out)
        return ((out,) if out else _NOTHING), self.RETAIN

    def snapshot(self) -> None:
        """Nothing for Bytewax's own recovery: Redis holds the checkpoint (see connectors)."""
        return None


# -- live mode ------------------------------------------------------------------------------------

# Where an input came from, to acknowledge it once its effects are durable: (shard, entry id).
Ack = tuple[int, bytes]
# A live input: an event, or a prospect id (str) for "fire your due timers", with its ack.
LiveInput = tuple[Event | str, Ack | None]


class StateLoader(Protocol):
    """Loads checkpointed state, many prospects per round trip.

    `request` names a prospect whose state will be needed; `take` returns it (None for a new
    prospect), loading every requested prospect at once if this one is not loaded yet.
    """

    def request(self, prospect: str) -> None: ...

    def take(self, prospect: str) -> ProspectState | None: ...


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


# "Call `on_notify` at the next activation": any time in the past will do.
_AT_ONCE: Final = datetime(2000, 1, 1, tzinfo=UTC)


class LiveProspectLogic(StatefulBatchLogic[LiveInput, Effects, None]):
    """Live mode: load state on first sight, wake timers on the wall clock, emit `Effects`.

    Bytewax builds one logic per key and calls it key by key, so loading state in the first
    `on_batch` would cost one Redis round trip per new prospect. Instead the first batch is held
    and the state requested; Bytewax calls `on_notify` for every such key in its next activation,
    and the first of those loads all requested states in one round trip.
    """

    __slots__ = ("engine", "held", "loader", "prospect", "state")

    def __init__(self, engine: Engine, loader: StateLoader) -> None:
        self.engine = engine
        self.loader = loader
        self.state: ProspectState | None = None
        self.held: list[LiveInput] = []
        self.prospect = ""

    def on_batch(self, values: list[LiveInput]) -> tuple[Iterable[Effects], bool]:
        state = self.state
        if state is None:
            if not self.held:
                first = values[0][0]
                self.prospect = first if isinstance(first, str) else first.prospect
                self.loader.request(self.prospect)
                self.held = list(values)
                return _NO_EFFECTS, self.RETAIN
            state, values = self._loaded(), self._release() + values
        return (self._apply(state, values),), self.RETAIN

    def on_notify(self) -> tuple[Iterable[Effects], bool]:
        if self.state is None:
            if not self.held:
                return _NO_EFFECTS, self.RETAIN
            return (self._apply(self._loaded(), self._release()),), self.RETAIN
        out: list[Out] = []
        self.engine.fire_due(self.state, _wall_ms(), out)
        return (self._effects(self.state, out, [], None),), self.RETAIN

    def on_eof(self) -> tuple[Iterable[Effects], bool]:
        if self.state is None and self.held:
            return (self._apply(self._loaded(), self._release()),), self.RETAIN
        return _NO_EFFECTS, self.RETAIN

    def notify_at(self) -> datetime | None:
        if self.state is None:
            return _AT_ONCE if self.held else None
        due = self.engine.next_due(self.state)
        return from_ms(due) if due is not None else None

    def snapshot(self) -> None:
        return None

    def _release(self) -> list[LiveInput]:
        held, self.held = self.held, []
        return held

    def _loaded(self) -> ProspectState:
        state = self.loader.take(self.prospect) or ProspectState(prospect=self.prospect)
        self.state = state
        return state

    def _apply(self, state: ProspectState, values: list[LiveInput]) -> Effects:
        out: list[Out] = []
        acks: list[Ack] = []
        first_seen: int | None = None
        for item, ack in values:
            if isinstance(item, str):
                self.engine.fire_due(state, _wall_ms(), out)
            else:
                out.extend(self.engine.apply(state, item))
            if ack is not None:
                acks.append(ack)
                seen = _entry_ms(ack[1])
                first_seen = seen if first_seen is None else min(first_seen, seen)
        return self._effects(state, out, acks, first_seen)

    def _effects(
        self, state: ProspectState, out: list[Out], acks: list[Ack], first_seen: int | None
    ) -> Effects:
        return Effects(out, encode_state(state), self.engine.next_due(state), acks, first_seen)


_NO_EFFECTS: Final[tuple[Effects, ...]] = ()


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _entry_ms(entry_id: bytes) -> int:
    """A Redis stream entry id starts with the server's time in ms when it was added."""
    return int(entry_id.split(b"-", 1)[0]) if entry_id else _wall_ms()
