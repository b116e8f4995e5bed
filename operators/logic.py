"""The thin Bytewax adapter: one `StatefulBatchLogic` per prospect, feeding `Engine`.

Timers: in replay, due times lie in the past of the wall clock, so `notify_at` would fire them at
once and out of event order. Replay therefore fires a prospect's timers lazily (the engine fires
every timer due by an event's time before applying it) and at end of input up to `--until`.
`LiveProspectLogic` also returns the next due time from `notify_at`, so live timers wake on
the wall clock.
"""

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, NamedTuple

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
# Loads a prospect's checkpointed state (None for a new prospect).
StateLoader = Callable[[str], ProspectState | None]


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


class LiveProspectLogic(StatefulBatchLogic[LiveInput, Effects, None]):
    """Live mode: load state on first sight, wake timers on the wall clock, emit `Effects`."""

    __slots__ = ("engine", "load", "state")

    def __init__(self, engine: Engine, load: StateLoader) -> None:
        self.engine = engine
        self.load = load
        self.state: ProspectState | None = None

    def _state_for(self, item: Event | str) -> ProspectState:
        if self.state is None:
            prospect = item if isinstance(item, str) else item.prospect
            self.state = self.load(prospect) or ProspectState(prospect=prospect)
        return self.state

    def on_batch(self, values: list[LiveInput]) -> tuple[Iterable[Effects], bool]:
        state = self._state_for(values[0][0])
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
        return (self._effects(state, out, acks, first_seen),), self.RETAIN

    def on_notify(self) -> tuple[Iterable[Effects], bool]:
        if self.state is None:
            return _NO_EFFECTS, self.RETAIN
        out: list[Out] = []
        self.engine.fire_due(self.state, _wall_ms(), out)
        return (self._effects(self.state, out, [], None),), self.RETAIN

    def notify_at(self) -> datetime | None:
        due = self.engine.next_due(self.state) if self.state is not None else None
        return from_ms(due) if due is not None else None

    def snapshot(self) -> None:
        return None

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
