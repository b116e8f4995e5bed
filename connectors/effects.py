"""What the live flow's stateful step hands its sinks: the commit sink's and the dead-letter
sink's contract (`connectors.redis_sink`, `connectors.dead_letters`).
"""

from typing import NamedTuple

from operators.engine import Out
from operators.records import DeadLetter
from operators.scorecard_facts import Fields, ProspectFacts, add_fields

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
    # The scorecard, written in the checkpoint call that writes `state`
    # (`connectors.scorecard_store`), so counts go with the states they came from: never lost
    # nor doubled across a kill. `facts`: the prospect's facts encoded right after the batch
    # (None: the scorecard is off), written in the same value as `state`
    # (`connectors.state_value`). `counts`: the fields this batch counted (None: none), handed
    # over (the sink adds later batches' counts into them).
    facts: bytes | None = None
    counts: Fields | None = None
    stream_ms: int = 0  # the latest stream time the batch brought: the counts' `as_of`


class Saved(NamedTuple):
    """A prospect's checkpoint as the commit sink holds it before writing it, or as read back:
    its state and, with the scorecard on, its facts (None: none)."""

    state: bytes
    facts: bytes | None


class TakenFacts(NamedTuple):
    """A prospect's facts as loaded with its state, and the bytes they were read from (None: it
    had none): a batch that leaves them as they were writes those bytes back, with no encoding
    on the worker's path."""

    facts: ProspectFacts
    encoded: bytes | None = None


class Dirty:
    """What the commit sink holds of a prospect until a checkpoint writes it, its batches'
    `Effects` taken together: its latest encoded state and facts, next timer, the inputs that
    state includes, and the scorecard counts added since its last checkpoint (they are written
    with that state, so they belong to it: a checkpoint that fails puts them back with the
    acks)."""

    __slots__ = ("acks", "counts", "due", "facts", "state", "stream_ms")

    def __init__(self, fx: Effects) -> None:
        self.state = fx.state
        self.facts = fx.facts
        self.due = fx.next_due
        self.acks: list[Ack] = list(fx.acks)
        self.counts = fx.counts
        self.stream_ms = fx.stream_ms

    def newer(self, fx: Effects) -> None:
        """A later batch of the same prospect: its state and facts win, acks and counts add
        up."""
        self.state, self.due, self.facts = fx.state, fx.next_due, fx.facts
        self.acks += fx.acks
        self._add(fx.counts, fx.stream_ms)

    def older(self, old: "Dirty") -> None:
        """An unwritten earlier checkpoint of the prospect, put back under this newer one."""
        self.acks = old.acks + self.acks
        self._add(old.counts, old.stream_ms)

    def _add(self, counts: Fields | None, stream_ms: int) -> None:
        if counts:
            if self.counts is None:
                self.counts = counts  # the batch's own fields: handed over (`Effects.counts`)
            else:
                add_fields(self.counts, counts)
        if stream_ms > self.stream_ms:
            self.stream_ms = stream_ms


# A live input or timer that raised: its dead letter, and the entry to acknowledge (None for a
# timer, which has no entry of its own).
LiveFailure = tuple[DeadLetter, Ack | None]
LiveOutput = Effects | LiveFailure
