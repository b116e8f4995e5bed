"""What the live flow's stateful step hands its sinks: the commit sink's and the dead-letter
sink's contract (`connectors.redis_sink`, `connectors.dead_letters`).
"""

from typing import NamedTuple

from operators.engine import Out
from operators.records import DeadLetter
from operators.scorecard_facts import Counts

# Where an input came from, to acknowledge it once its effects are durable: (shard, entry id).
Ack = tuple[int, bytes]


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
    # The scorecard (None when `streams.scorecard` is off): the prospect's facts encoded right
    # after the batch, and the counts this batch added, both written in the checkpoint call
    # that writes `state` (`connectors.scorecard_store`), so counts go with the states they
    # came from: never lost nor doubled across a kill.
    facts: bytes | None = None
    counts: Counts | None = None
    stream_ms: int = 0  # the latest stream time the batch brought: the counts' `as_of`


class Saved(NamedTuple):
    """A prospect's checkpoint as the commit sink holds it before writing it: its state and,
    with the scorecard on, its facts."""

    state: bytes
    facts: bytes | None


# A live input or timer that raised: its dead letter, and the entry to acknowledge (None for a
# timer, which has no entry of its own).
LiveFailure = tuple[DeadLetter, Ack | None]
LiveOutput = Effects | LiveFailure
