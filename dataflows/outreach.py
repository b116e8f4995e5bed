"""The outreach dataflow: decode → key by prospect → rules → outputs, plus a dead-letter branch.

Decoding happens in one batch step before keying (one reused msgspec decoder, no per-item
lambdas), because Bytewax's per-key activation, not our work, dominates the cost per event.
"""

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from connectors.files import RawLine
from operators.engine import Engine
from operators.events import Event, decode_event, rejection_reason
from operators.logic import ProspectLogic
from operators.records import DeadLetter, dead_letter
from operators.state import ProspectState

# What the decode step yields: a keyed event, or a dead letter.
Decoded = tuple[str, Event] | DeadLetter


def decode_batch(batch: list[RawLine]) -> list[Decoded]:
    """Decode raw lines; bad ones become dead letters carrying the raw line and the reason."""
    out: list[Decoded] = []
    append = out.append
    for line_no, raw in batch:
        try:
            event = decode_event(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            append(dead_letter(raw, rejection_reason(exc), line_no))
            continue
        append((event.prospect, event))
    return out


def _is_event(item: Decoded) -> bool:
    return type(item) is tuple


def build_flow(
    source: Source[RawLine],
    outputs: Sink[Any],
    dead_letters: Sink[DeadLetter],
    engine: Engine,
    *,
    until: int | None = None,
    live: bool = False,
    flow_id: str = "touchflow",
) -> Dataflow:
    """The one dataflow replay and live mode share; only sources and sinks differ."""
    flow = Dataflow(flow_id)
    raw = op.input("events", flow, source)
    decoded = op.flat_map_batch("decode", raw, decode_batch)
    split = op.branch("valid", decoded, _is_event)
    keyed: Stream[tuple[str, Event]] = split.trues  # type: ignore[assignment]
    builder: Callable[[None], ProspectLogic] = lambda _resume: ProspectLogic(  # noqa: E731
        engine, ProspectState(), until=until, live=live
    )
    effects = op.stateful_batch("prospects", keyed, builder)
    op.output("outputs", effects, outputs)
    rejected: Stream[DeadLetter] = split.falses  # type: ignore[assignment]
    op.output("dead_letters", rejected, dead_letters)
    return flow
