"""The thin Bytewax adapter: one `StatefulBatchLogic` per prospect, feeding `Engine`.

Timers: in replay, due times lie in the past of the wall clock, so `notify_at` would fire them at
once and out of event order. Replay therefore fires a prospect's timers lazily (the engine fires
every timer due by an event's time before applying it) and at end of input up to `--until`.
Live mode also returns the next due time from `notify_at`, so timers wake on the wall clock.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from bytewax.operators import StatefulBatchLogic

from operators.engine import Engine, Out
from operators.events import Event
from operators.state import ProspectState
from operators.timeutil import from_ms, to_ms

_NOTHING: Final[tuple[list[Out], ...]] = ()


class ProspectLogic(StatefulBatchLogic[Event, list[Out], None]):
    """Apply a prospect's events in order; emit one list of outputs per batch that has any."""

    __slots__ = ("engine", "live", "state", "until")

    def __init__(
        self, engine: Engine, state: ProspectState, *, until: int | None, live: bool
    ) -> None:
        self.engine = engine
        self.state = state
        self.until = until
        self.live = live

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

    def on_notify(self) -> tuple[Iterable[list[Out]], bool]:
        out: list[Out] = []
        self.engine.fire_due(self.state, to_ms(datetime.now().astimezone()), out)
        return ((out,) if out else _NOTHING), self.RETAIN

    def on_eof(self) -> tuple[Iterable[list[Out]], bool]:
        if self.until is None:
            return _NOTHING, self.RETAIN
        out: list[Out] = []
        self.engine.fire_due(self.state, self.until, out)
        return ((out,) if out else _NOTHING), self.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.live:
            return None
        due = self.engine.next_due(self.state)
        return from_ms(due) if due is not None else None

    def snapshot(self) -> None:
        """Nothing for Bytewax's own recovery: Redis holds the checkpoint (see connectors)."""
        return None
