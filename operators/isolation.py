"""Per-event isolation: whatever one event or one timer does, it costs that event alone.

The engine changes a prospect's state in place, so an exception half-way through a rule (a bug,
an overflowing date, anything) would leave the state half-changed, and re-raising it would stop
the flow for every prospect. Here each event and each timer runs against a snapshot of the state
(its MessagePack encoding, under a microsecond for a typical state): if it raises, the state is
put back as it was, the event goes to the dead letters with the exception named, and the flow
goes on. A timer that raises is dropped with a dead letter describing it, so it is not retried
at every later event of the prospect. A failed event's id is not remembered either: its dead
letter and the prospect's checkpoint are written by different sinks, so a redelivery after a
crash must fail again and write its dead letter again (at least once), never pass as a duplicate.
"""

from typing import Final, NamedTuple

import msgspec

from operators.emit import Out
from operators.engine import Engine
from operators.events import Event
from operators.records import DeadLetter
from operators.state import Pending, ProspectState, decode_state, encode_state
from operators.state_records import legacy_tuple
from operators.timeutil import to_ms

_JSON: Final = msgspec.json.Encoder()
_FIELDS: Final = ProspectState.__struct_fields__


def apply_isolated(
    engine: Engine, state: ProspectState, event: Event, out: list[Out], dead: list[DeadLetter]
) -> bool:
    """`engine.apply`, isolated; False if the event raised: then `state` is as it was before
    the event (timers due by its time fired, each isolated) and the last of `dead` says why."""
    before = encode_state(state)
    mark = len(out)
    try:
        out.extend(engine.apply(state, event))
        return True
    except Exception:
        restore(state, before)
        del out[mark:]
    return apply_stepwise(engine, state, event, out, dead) is not None


class Stepwise(NamedTuple):
    """An event applied step by step: where its own outputs start in `out` (after those of the
    timers it fired) and the time it was admitted at (None: a redelivery, no effect)."""

    split: int
    admitted: int | None


def apply_stepwise(
    engine: Engine, state: ProspectState, event: Event, out: list[Out], dead: list[DeadLetter]
) -> Stepwise | None:
    """After `engine.apply` raised and was undone: again step by step, to tell a failing timer
    (dropped, `fire_due_isolated`) from a failing event (rejected: None, its outputs withdrawn,
    the state as before it, the last of `dead` saying why)."""
    fire_due_isolated(engine, state, to_ms(event.ts), out, dead)
    split = len(out)
    before = encode_state(state)
    try:
        admitted = engine.admit(state, event)
        if admitted is not None:
            engine.handle(state, event, admitted, out)
    except Exception as exc:
        restore(state, before)
        del out[split:]
        dead.append(rejected(event, exc))
        return None
    return Stepwise(split, admitted)


def fire_due_isolated(
    engine: Engine, state: ProspectState, until: int, out: list[Out], dead: list[DeadLetter]
) -> None:
    """`engine.fire_due`, one timer at a time; a timer that raises is dropped with a record."""
    while state.pending and state.pending[0].due <= until:
        before = encode_state(state)
        mark = len(out)
        try:
            engine.fire_next(state, out)
        except Exception as exc:
            restore(state, before)
            del out[mark:]
            for item in engine.drop_next(state):
                dead.append(DeadLetter(event=_describe(state, item), reason=_failed("timer", exc)))


def rejected(event: Event, exc: Exception) -> DeadLetter:
    """The dead letter of an event whose rules raised: the event as JSON, the exception named."""
    return DeadLetter(event=_JSON.encode(event).decode(), reason=_failed("event", exc))


def restore(state: ProspectState, encoded: bytes) -> None:
    """Put `state` back in place (callers hold references to this very object)."""
    saved = decode_state(encoded)
    for name in _FIELDS:
        setattr(state, name, getattr(saved, name))


def _failed(what: str, exc: Exception) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    verb = "rejected" if what == "event" else "dropped"
    return f"{what} raised {type(exc).__name__}: {text}; {verb}, prospect state unchanged"


def _describe(state: ProspectState, item: Pending) -> str:
    """A dropped timer as JSON, for the dead letters (it has no input line of its own); `flags`
    in the layout of the checkpoints before named records, as dead letters have always had."""
    due, channel, reason, topic, cause, flags, first = legacy_tuple(item)
    return _JSON.encode(
        {
            "timer": {
                "prospect": state.prospect,
                "due_ms": due,
                "channel": channel,
                "reason": reason,
                "topic": topic,
                "cause": cause,
                "flags": flags,
                "first_ms": first,
            }
        }
    ).decode()
