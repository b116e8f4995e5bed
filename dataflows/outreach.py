"""The outreach dataflow: decode → key by prospect → rules → outputs, plus a dead-letter branch.

Replay and live mode share this shape and the same engine; they differ only in the source, the
decoder (live inputs carry a stream entry to acknowledge), the per-prospect logic (live loads
checkpointed state and returns `Effects`) and the sinks. Decoding happens in one batch step
before keying (one reused msgspec decoder, no per-item lambdas), because Bytewax's per-key
activation, not our work, dominates the cost per event.
"""

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from connectors.files import RawLine
from connectors.redis_source import TICK_ID, WAKE_PREFIX, Entry
from dataflows.live_logic import LiveInput, Wake
from operators.engine import Engine
from operators.events import Event
from operators.intake import EventReader
from operators.logic import ProspectLogic
from operators.records import DeadLetter, dead_letter
from operators.state import ProspectState

# What the replay decoder yields: a keyed event, or a dead letter.
Decoded = tuple[str, Event] | DeadLetter
# What the live decoder yields: a keyed live input, or a dead letter with its entry to ack.
LiveDecoded = tuple[str, LiveInput] | tuple[DeadLetter, tuple[int, bytes]]


def decode_batch(batch: list[RawLine], reader: EventReader) -> list[Decoded]:
    """Decode raw lines; bad ones become dead letters carrying the raw line and the reason."""
    out: list[Decoded] = []
    append = out.append
    read = reader.read
    for line_no, raw in batch:
        event = read(raw)
        if isinstance(event, str):
            append(dead_letter(raw, event, line_no))
        else:
            append((event.prospect, event))
    return out


def decode_live_batch(batch: list[Entry], reader: EventReader) -> list[LiveDecoded]:
    """Decode stream entries; timer wake-ups pass through keyed by their prospect."""
    out: list[LiveDecoded] = []
    append = out.append
    read = reader.read
    for shard, entry_id, raw in batch:
        if entry_id == TICK_ID:
            continue
        if entry_id[:5] == WAKE_PREFIX:
            prospect = raw.decode()
            append((prospect, (Wake(prospect, int(entry_id[5:])), None)))
            continue
        event = read(raw)
        if isinstance(event, str):
            append((dead_letter(raw, event), (shard, entry_id)))
        else:
            append((event.prospect, (event, (shard, entry_id))))
    return out


def _is_effect(item: tuple[str, Any]) -> bool:
    """(prospect, outputs or effects), as opposed to (prospect, a failure's dead letter)."""
    value = item[1]
    return type(value) is not DeadLetter and not (
        type(value) is tuple and type(value[0]) is DeadLetter
    )


def _is_keyed(item: Any) -> bool:
    """A keyed input (prospect, value), as opposed to a dead letter."""
    return type(item) is tuple and type(item[0]) is str


def build_flow(
    source: Source[Any],
    decode: Callable[[list[Any]], list[Any]],
    logic: Callable[[None], StatefulBatchLogic[Any, Any, None]],
    outputs: Sink[Any],
    dead_letters: Sink[Any],
    *,
    flow_id: str = "touchflow",
) -> Dataflow:
    """The one dataflow shape replay and live mode share."""
    flow = Dataflow(flow_id)
    raw = op.input("events", flow, source)
    decoded = op.flat_map_batch("decode", raw, decode)
    split = op.branch("valid", decoded, _is_keyed)
    keyed: Stream[tuple[str, Any]] = split.trues
    effects = op.stateful_batch("prospects", keyed, logic)
    # What the rules could not apply (an event or timer that raised) joins the decoder's rejects.
    failed = op.branch("applied", effects, _is_effect)
    op.output("outputs", failed.trues, outputs)
    rejected = op.merge("rejected", split.falses, op.key_rm("failures", failed.falses))
    op.output("dead_letters", rejected, dead_letters)
    return flow


def replay_flow(
    source: Source[RawLine],
    outputs: Sink[Any],
    dead_letters: Sink[DeadLetter],
    engine: Engine,
    *,
    until: int | None = None,
) -> Dataflow:
    """The replay dataflow: lazy timers in event time, `until` fires the rest at the end."""

    def logic(_resume: None) -> ProspectLogic:
        return ProspectLogic(engine, ProspectState(), until=until)

    reader = EventReader(engine.policy.limits, frozenset(engine.policy.sequences))

    def decode(batch: list[RawLine]) -> list[Decoded]:
        return decode_batch(batch, reader)

    return build_flow(source, decode, logic, outputs, dead_letters)
