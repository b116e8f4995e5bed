"""Rejected live input to `prefix:dead`, acknowledged in the same MULTI (never lost).

Each record keeps the raw bytes, the reason and where the input came from (`shard`, `entry`:
entry ids repeat across shards). A timer whose decision raised has no entry: it is written
without an acknowledgement.
"""

from collections.abc import Callable
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.effects import Ack
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.retry import retrying
from operators.records import DeadLetter

# A rejected live input: the dead letter and the stream entry to acknowledge (None for a timer
# whose decision raised: it has no entry).
LiveDeadLetter = tuple[DeadLetter, Ack | None]


class _DeadLetterPartition(StatelessSinkPartition[LiveDeadLetter]):
    def __init__(
        self, client: redis.Redis, keys: Keys, metrics: Metrics, stopping: Callable[[], bool]
    ) -> None:
        self._r: Any = client
        self._keys = keys
        self._metrics = metrics
        self._stopping = stopping

    def write_batch(self, items: list[LiveDeadLetter]) -> None:
        retrying("dead letters", lambda: self._pipeline(items).execute(), self._stopping)
        self._metrics.dead_letters(len(items))

    def _pipeline(self, items: list[LiveDeadLetter]) -> Any:
        pipe = self._r.pipeline(transaction=True)
        for letter, ack in items:
            raw = (
                letter.event.encode()
                if letter.event is not None
                else bytes.fromhex(letter.event_hex or "")
            )
            fields: dict[str, bytes | str | int] = {"event": raw, "reason": letter.reason}
            if ack is not None:
                shard, entry_id = ack
                fields |= {"shard": shard, "entry": entry_id}
                pipe.xack(self._keys.events(shard), self._keys.group, entry_id)
            pipe.xadd(self._keys.dead, fields)
        return pipe

    def close(self) -> None:
        self._r.close()


class DeadLetterSink(DynamicSink[LiveDeadLetter]):
    """Rejected input to `prefix:dead` (fields `event`, `reason`, and where it came from: `shard`,
    `entry`), acked in the same MULTI."""

    def __init__(
        self,
        make_client: Callable[[], redis.Redis],
        keys: Keys,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._make_client = make_client
        self._keys = keys
        self._metrics = metrics
        self._stopping = stopping

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        return _DeadLetterPartition(self._make_client(), self._keys, self._metrics, self._stopping)
