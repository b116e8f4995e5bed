"""Feed the scorecard from the engine: what `operators.isolation` does, with a `Tally` watching.

`Tally` must see a prospect's history in order: the outputs of the timers an event fires (they
come first: a `touch_failed` may name the command a timer just emitted), then the event, then the
event's own outputs (a sequence enrolled by the event before its first step's decision). One
`Engine.apply` returns both kinds of outputs in one list, so here it is taken apart into its own
steps, `admit`, `fire_due`, `handle`, exactly as `apply` runs them: the outputs and the state are
the same as `apply_isolated`'s (tests/report checks it against the replay), and only the
boundaries are new.

Isolation as in `operators.isolation`: the state is snapshotted before each event; if the event
raises, it is put back, the timers are fired one at a time (a timer that raises is dropped) and
the event alone goes to the dead letters. A rejected event is not shown to the tally.
"""

from operators.emit import Out
from operators.engine import Engine
from operators.events import Event
from operators.isolation import apply_stepwise, fire_due_isolated, restore
from operators.records import DeadLetter
from operators.scorecard import ProspectFacts, Tally
from operators.state import ProspectState, encode_state


def apply_scored(
    engine: Engine,
    tally: Tally,
    state: ProspectState,
    facts: ProspectFacts,
    event: Event,
    out: list[Out],
    dead: list[DeadLetter],
) -> bool:
    """`isolation.apply_isolated`, feeding `tally`; appends the outputs to `out`. False if the
    event raised (then `dead`'s last item says why, and the tally saw only the timers)."""
    before = encode_state(state)
    mark = len(out)
    try:
        ts = engine.admit(state, event)
        if ts is None:
            return True  # a redelivery: no effect at all
        if state.pending and state.pending[0].due <= ts:  # as `Engine.apply` checks it
            engine.fire_due(state, ts, out)
        split = len(out)
        engine.handle(state, event, ts, out)
    except Exception:
        restore(state, before)
        del out[mark:]
    else:
        _feed(tally, facts, out, mark, split, event, ts)
        return True
    step = apply_stepwise(engine, state, event, out, dead)
    if step is None or step.admitted is None:  # rejected, or a redelivery: only its timers
        tally.outputs(facts, out[mark:])
        return step is not None
    _feed(tally, facts, out, mark, step.split, event, step.admitted)
    return True


def fire_due_scored(
    engine: Engine,
    tally: Tally,
    state: ProspectState,
    facts: ProspectFacts,
    until: int,
    out: list[Out],
    dead: list[DeadLetter],
) -> None:
    """`isolation.fire_due_isolated` (timers due by `until`, as at the end of a replay),
    feeding `tally`."""
    mark = len(out)
    fire_due_isolated(engine, state, until, out, dead)
    if len(out) > mark:
        tally.outputs(facts, out[mark:])


def _feed(
    tally: Tally,
    facts: ProspectFacts,
    out: list[Out],
    mark: int,
    split: int,
    event: Event,
    ts: int,
) -> None:
    if split > mark:
        tally.outputs(facts, out[mark:split])
    tally.event(facts, event, ts)
    if len(out) > split:
        tally.outputs(facts, out[split:])
