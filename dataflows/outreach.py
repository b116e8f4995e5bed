"""The outreach dataflow: decode → key by prospect → rules → outputs, plus a dead-letter branch.

Replay and live mode share this shape and the same engine; they differ only in the source, the
decoder (live inputs carry a stream entry to acknowledge), the per-prospect logic (live loads
checkpointed state and returns `Effects`) and the sinks. Decoding happens in one batch step
before keying (one reused msgspec decoder, no per-item lambdas), because Bytewax's per-key
activation, not our work, dominates the cost per event.
"""

from collections.abc import Callable, Container
from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from connectors.files import RawLine
from connectors.redis_source import WAKE_ID, Entry
from operators.engine import Engine
from operators.events import Enroll, Event, decode_event, rejection_reason
from operators.logic import LiveInput, ProspectLogic
from operators.records import DeadLetter, dead_letter
from operators.state import ProspectState

# What the replay decoder yields: a keyed event, or a dead letter.
Decoded = tuple[str, Event] | DeadLetter
# What the live decoder yields: a keyed live input, or a dead letter with its entry to ack.
LiveDecoded = tuple[str, LiveInput] | tuple[DeadLetter, tuple[int, bytes]]


def decode_batch(batch: list[RawLine], sequences: Container[str] | None = None) -> list[Decoded]:
    """Decode raw lines; bad ones become dead letters carrying the raw line and the reason.

    With `sequences`, an `enroll` naming a sequence the policy does not define is rejected too.
    """
    out: list[Decoded] = []
    append = out.append
    for line_no, raw in batch:
        try:
            event = decode_event(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            append(dead_letter(raw, rejection_reason(exc), line_no))
            continue
        if sequences is not None and type(event) is Enroll and event.sequence not in sequences:
            append(dead_letter(raw, unknown_sequence(event.sequence), line_no))
            continue
        append((event.prospect, event))
    return out


def unknown_sequence(name: str) -> str:
    return f"unknown sequence {name!r} (not in the policy) - at `$.sequence`"


def decode_live_batch(
    batch: list[Entry], sequences: Container[str] | None = None
) -> list[LiveDecoded]:
    """Decode stream entries; timer wake-ups pass through keyed by their prospect."""
    out: list[LiveDecoded] = []
    append = out.append
    for shard, entry_id, raw in batch:
        if entry_id == WAKE_ID:
            prospect = raw.decode()
            append((prospect, (prospect, None)))
            continue
        try:
            event = decode_event(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            append((dead_letter(raw, rejection_reason(exc)), (shard, entry_id)))
            continue
        if sequences is not None and type(event) is Enroll and event.sequence not in sequences:
            append((dead_letter(raw, unknown_sequence(event.sequence)), (shard, entry_id)))
            continue
        append((event.prospect, (event, (shard, entry_id))))
    return out


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
    op.output("outputs", effects, outputs)
    op.output("dead_letters", split.falses, dead_letters)
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

    known = frozenset(engine.policy.sequences)

    def decode(batch: list[RawLine]) -> list[Decoded]:
        return decode_batch(batch, known)

    return build_flow(source, decode, logic, outputs, dead_letters)
