"""The commit sink for live mode: commands and decisions at once, state and acks per checkpoint.

The one ordering that makes live mode effectively-once: an input is acknowledged only after the
commands and decisions it caused, and the state that includes it, are written. So each worker
has one sink that receives a prospect's `Effects` whole and:

1. writes commands at once (latency), each at most once per command id: a Lua script does
   SET-if-absent on a marker with a TTL and XADDs only if it was absent, atomically;
2. writes decision records;
3. at each checkpoint interval, in one MULTI transaction: the latest state of every dirty
   prospect (with a TTL beyond the longest rule horizon), its next timer in the shard's timer set,
   then XACK of every input those states include.

A crash between 1 and 3 redelivers the inputs; they are applied to the older state again and yield
the same command ids, which the markers drop.
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from redis.exceptions import ConnectionError, TimeoutError

from connectors.keys import Keys, shard_of
from connectors.metrics import Metrics
from operators.logic import Ack, Effects
from operators.records import ENCODER, Command, DeadLetter

log = logging.getLogger(__name__)

_SEND_ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'command', ARGV[2])
end
return false
"""
_MAX_BACKOFF_S: Final = 2.0


def retrying(what: str, action: Callable[[], Any], stopping: Callable[[], bool]) -> Any:
    """Run a Redis write until it succeeds: a sink may wait for Redis, never drop data."""
    backoff = 0.05
    while True:
        try:
            return action()
        except (ConnectionError, TimeoutError, OSError) as exc:
            log.warning("%s: Redis unavailable (%s); retrying in %.2fs", what, exc, backoff)
            time.sleep(backoff)
            backoff = min(_MAX_BACKOFF_S, backoff * 2)
            if stopping() and backoff >= _MAX_BACKOFF_S:
                log.warning("%s: still retrying while stopping", what)


class _CommitPartition(StatelessSinkPartition[tuple[str, Effects]]):
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        interval_s: float,
        state_ttl_s: int,
        marker_ttl_s: int,
        metrics: Metrics,
        stopping: Callable[[], bool],
    ) -> None:
        self._r: Any = client
        self._keys = keys
        self._interval = interval_s
        self._state_ttl = state_ttl_s
        self._marker_ttl = marker_ttl_s
        self._metrics = metrics
        self._stopping = stopping
        self._send_once = client.register_script(_SEND_ONCE)
        self._lock = threading.Lock()  # guards the dirty set and acks
        self._checkpointing = threading.Lock()  # one checkpoint at a time, so newer states win
        self._dirty: dict[str, tuple[bytes, int | None]] = {}
        self._acks: list[Ack] = []
        self._next_checkpoint = time.monotonic() + interval_s
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, daemon=True, name="checkpoint")
        self._flusher.start()

    def write_batch(self, items: list[tuple[str, Effects]]) -> None:
        if any(fx.outputs for _prospect, fx in items):
            # The pipeline is rebuilt on every try: redis-py empties a pipeline whose execute
            # failed, and re-running an empty one would "succeed" with nothing written.
            retrying("commands", lambda: self._outputs_pipeline(items).execute(), self._stopping)
            self._metrics.outputs_written(items)
        with self._lock:
            for prospect, fx in items:
                self._dirty[prospect] = (fx.state, fx.next_due)
                self._acks.extend(fx.acks)

    def _outputs_pipeline(self, items: list[tuple[str, Effects]]) -> Any:
        pipe = self._r.pipeline(transaction=False)
        decisions = self._keys.decisions
        for _prospect, fx in items:
            for _ts, _seq, record in fx.outputs:
                payload = ENCODER.encode(record)
                if type(record) is Command:
                    marker = self._keys.sent_marker(record.id)
                    stream = self._keys.commands(record.channel)
                    args: list[int | bytes] = [self._marker_ttl, payload]
                    self._send_once(keys=[marker, stream], args=args, client=pipe)
                else:
                    pipe.xadd(decisions, {"decision": payload})
        return pipe

    def checkpoint(self) -> None:
        """Write dirty states and timers, then acknowledge their inputs, in one transaction."""
        with self._checkpointing:
            self._checkpoint()

    def _checkpoint(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            acks, self._acks = self._acks, []
            self._next_checkpoint = time.monotonic() + self._interval
        if not dirty and not acks:
            return
        started = time.perf_counter()
        try:
            retrying(
                "checkpoint",
                lambda: self._checkpoint_pipeline(dirty, acks).execute(),
                self._stopping,
            )
        except Exception:
            with self._lock:  # put it back for the next try; states written since are newer
                for prospect, entry in dirty.items():
                    self._dirty.setdefault(prospect, entry)
                self._acks[:0] = acks
            raise
        size = sum(len(state) for state, _due in dirty.values())
        self._metrics.checkpointed(len(dirty), size, time.perf_counter() - started)

    def _checkpoint_pipeline(
        self, dirty: dict[str, tuple[bytes, int | None]], acks: list[Ack]
    ) -> Any:
        pipe = self._r.pipeline(transaction=True)
        for prospect, (state, due) in dirty.items():
            pipe.set(self._keys.state(prospect), state, ex=self._state_ttl)
            timers = self._keys.timers(shard_of(prospect, self._keys.shards))
            if due is None:
                pipe.zrem(timers, prospect)
            else:
                pipe.zadd(timers, {prospect: due})
        by_stream: dict[int, list[bytes]] = defaultdict(list)
        for shard, entry_id in acks:
            by_stream[shard].append(entry_id)
        for shard, ids in by_stream.items():
            pipe.xack(self._keys.events(shard), self._keys.group, *ids)
        return pipe

    def _flush_loop(self) -> None:
        """Checkpoint every interval on this thread, so the worker never waits for it: the
        transaction's round trips release the GIL, and the dataflow goes on meanwhile."""
        while not self._closed.wait(self._interval):
            if time.monotonic() >= self._next_checkpoint:
                try:
                    self.checkpoint()
                except Exception:  # the next write_batch or close retries the same data
                    log.exception("background checkpoint failed")

    def close(self) -> None:
        self._closed.set()
        self._flusher.join(timeout=10)
        self.checkpoint()
        self._r.close()


class CommitSink(DynamicSink[tuple[str, Effects]]):
    """One commit partition per worker (prospect effects stay on the worker that made them)."""

    def __init__(
        self,
        make_client: Callable[[], redis.Redis],
        keys: Keys,
        metrics: Metrics,
        *,
        interval_s: float = 1.0,
        state_ttl_s: int = 200 * 86_400,
        marker_ttl_s: int = 8 * 86_400,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._make_client = make_client
        self._keys = keys
        self._metrics = metrics
        self._interval = interval_s
        self._state_ttl = state_ttl_s
        self._marker_ttl = marker_ttl_s
        self._stopping = stopping

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CommitPartition:
        return _CommitPartition(
            self._make_client(),
            self._keys,
            self._interval,
            self._state_ttl,
            self._marker_ttl,
            self._metrics,
            self._stopping,
        )


# A rejected live input: the dead letter and the stream entry to acknowledge.
LiveDeadLetter = tuple[DeadLetter, Ack]


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
        for letter, (shard, entry_id) in items:
            raw = (
                letter.event.encode()
                if letter.event is not None
                else bytes.fromhex(letter.event_hex or "")
            )
            pipe.xadd(self._keys.dead, {"event": raw, "reason": letter.reason, "entry": entry_id})
            pipe.xack(self._keys.events(shard), self._keys.group, entry_id)
        return pipe

    def close(self) -> None:
        self._r.close()


class DeadLetterSink(DynamicSink[LiveDeadLetter]):
    """Rejected input to `prefix:dead` (fields `event`, `reason`), acked in the same MULTI."""

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
