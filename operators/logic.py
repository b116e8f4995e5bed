"""The thin Bytewax adapter of replay: one `StatefulBatchLogic` per prospect, feeding `Engine`.

Timers: in replay, due times lie in the past of the wall clock, so `notify_at` would fire them at
once and out of event order. Replay therefore fires a prospect's timers lazily (the engine fires
every timer due by an event's time before applying it) and at end of input up to `--until`.

Live mode's adapter (`dataflows.live_logic`) loads and checkpoints state through `connectors`,
so it is wiring, not domain. There a prospect's next due time goes to Redis with its checkpoint
(a sorted set per shard), and the event source turns due entries into wake-up inputs. Not
Bytewax's `notify_at`: Bytewax 0.21's `stateful_batch` scans every key with a scheduled
notification on every activation, so with tens of thousands of prospects waiting (a minute of
arbitration windows, days of sequence steps) the scan, not the rules, used most of the worker
(README, Benchmarks).
"""

from collections.abc import Iterable
from typing import Final

from bytewax.operators import StatefulBatchLogic

from operators.engine import Engine, Out
from operators.events import Event
from operators.isolation import apply_isolated, fire_due_isolated
from operators.records import DeadLetter
from operators.state import ProspectState

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
