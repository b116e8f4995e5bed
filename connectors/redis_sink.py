"""The commit sink for live mode: commands and decisions at once, state and acks per checkpoint.

The one ordering that makes live mode effectively-once: an input is acknowledged only after the
commands and decisions it caused, and the state that includes it, are written. So each worker
has one sink that receives a prospect's `Effects` whole and:

1. writes commands at once (latency), each at most once per command id: a Lua script does, per
   command, SET-if-absent on a marker with a TTL and XADDs only if it was absent, atomically;
2. writes decision records (the same script call: one round trip per batch, however large);
3. at each checkpoint interval, for every dirty prospect, in one Lua script call per chunk of
   prospects (atomic, and a failing call stops before the acks): the latest state (with a TTL
   beyond the longest rule horizon; with the scorecard on, the prospect's facts in the same
   value, `connectors.state_value`), the scorecard counts
   those states added since they were last written (`connectors.scorecard_store`: a count is
   written exactly when the state that includes its input is), its next timer in the shard's
   timer set, then XACK of every input that state includes. Chunks keep each call short, since
   Redis serves nothing else while it runs one (5,000 states in one transaction held it for
   ~25 ms, and every trigger waiting behind it).

Both scripts take a whole batch per call: redis-py spends more time packing a command than
Redis spends running it, so the number of commands, not their size, is the cost to cut.

A crash between 1 and 3 redelivers the inputs; they are applied to the older state again and yield
the same command ids, which the markers drop.

An outage is waited out, never a crash: every write here runs under `retrying`, which retries a
lost connection and a refusal alike (Redis out of memory, read-only, ...) and reports the process
unhealthy meanwhile. A refused call writes nothing (Redis checks before a script's first write,
and a MULTI is refused whole), so nothing is acknowledged that was not written; a retried
commands call may write its decision records twice (they are at least once), never a command.
"""

import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.commit_scripts import CHECKPOINT, WRITE_OUTPUTS
from connectors.effects import Dirty, Effects, Saved
from connectors.identity import DEFAULT_DEDUPE_S, index_profiles
from connectors.keys import Keys, shard_of
from connectors.metrics import Metrics
from connectors.retry import retrying
from connectors.scorecard_store import counts_args
from connectors.state_value import join
from operators.records import ENCODER, Command

log = logging.getLogger(__name__)

# Outputs or states per script call: bounds how long one call blocks Redis.
_CHUNK: Final = 200
# Arguments per command inside the checkpoint script (Lua's `unpack` stack limit is ~8,000).
_MAX_ARGS: Final = 1_000


def _split(
    head: list[bytes | int | str], args: list[Any], step: int = 1
) -> list[list[bytes | int | str]]:
    """`head + args` as commands of at most `_MAX_ARGS` arguments (`step` keeps pairs whole)."""
    size = _MAX_ARGS - _MAX_ARGS % step
    return [head + args[i : i + size] for i in range(0, len(args), size)]


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
        dedupe_s: int = DEFAULT_DEDUPE_S,
        scorecard: bool = False,
    ) -> None:
        self._r: Any = client
        self._dedupe_s = dedupe_s  # how long the gateway's per-event markers live
        self._scorecard = scorecard  # every chunk moves the counts' `as_of`, counts or not
        self._keys = keys
        self._interval = interval_s
        self._state_ttl = state_ttl_s
        self._marker_ttl = marker_ttl_s
        self._metrics = metrics
        self._stopping = stopping
        self._lock = threading.Lock()  # guards the dirty states
        self._checkpointing = threading.Lock()  # one checkpoint at a time, so newer states win
        self._dirty: dict[str, Dirty] = {}
        self._writing: dict[str, Dirty] = {}  # the checkpoint being written
        self._counted = keys.counted("-")  # the last chunk written's marker (see `CHECKPOINT`)
        self._addresses: dict[str, tuple[str | None, str | None]] = {}  # see `Effects.address`
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
            dirty = self._dirty
            for prospect, fx in items:
                older = dirty.get(prospect)
                if older is None:
                    dirty[prospect] = Dirty(fx)
                else:
                    older.newer(fx)
                if fx.address is not None:
                    email, phone = self._addresses.get(prospect, (None, None))
                    self._addresses[prospect] = (fx.address[0] or email, fx.address[1] or phone)

    def _outputs_pipeline(self, items: list[tuple[str, Effects]]) -> Any:
        """One `WRITE_OUTPUTS` call per `_CHUNK` records. EVAL rather than EVALSHA: Redis
        caches the compiled script either way, and EVAL needs no SCRIPT EXISTS round trip nor a
        reload after a Redis restart."""
        pipe = self._r.pipeline(transaction=False)
        records = [record for _p, fx in items for _ts, _seq, record in fx.outputs]
        for start in range(0, len(records), _CHUNK):
            keys: list[str] = [self._keys.decisions]
            commands: list[bytes] = []
            decisions: list[bytes] = []
            for record in records[start : start + _CHUNK]:
                if type(record) is Command:
                    keys += (self._keys.sent_marker(record.id), self._keys.commands(record.channel))
                    commands.append(ENCODER.encode(record))
                else:
                    decisions.append(ENCODER.encode(record))
            argv = [self._marker_ttl, len(commands), *commands, *decisions]
            pipe.execute_command("EVAL", WRITE_OUTPUTS, len(keys), *keys, *argv)
        return pipe

    def checkpoint(self) -> None:
        """Write dirty states and timers, then acknowledge their inputs (see the module doc)."""
        with self._checkpointing:
            self._checkpoint()

    def saved(self, prospect: str) -> Saved | None:
        """The prospect's newest state, with its facts, if no checkpoint has written it yet,
        else None: a prospect that left the worker (idle) and comes back must resume from this,
        not from an older state in Redis (`connectors.checkpoint.StateStore`)."""
        with self._lock:
            found = self._dirty.get(prospect) or self._writing.get(prospect)
        return Saved(found.state, found.facts) if found is not None else None

    def _checkpoint(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            addresses, self._addresses = self._addresses, {}
            self._writing = dirty
            self._next_checkpoint = time.monotonic() + self._interval
        if not dirty:
            return
        started = time.perf_counter()
        prospects = list(dirty)
        try:
            if addresses:  # before the acks of the profiles that carried them
                try:
                    self._index(addresses)
                except Exception:
                    self._put_back(dirty)
                    raise
            for start in range(0, len(prospects), _CHUNK):
                chunk = {p: dirty[p] for p in prospects[start : start + _CHUNK]}
                chunk_id = secrets.token_hex(8)
                write = partial(self._write_chunk, chunk, chunk_id)
                try:
                    retrying("checkpoint", write, self._stopping)
                    self._counted = self._keys.counted(chunk_id)
                except Exception:
                    self._put_back({p: dirty[p] for p in prospects[start:]})
                    raise
        finally:
            with self._lock:
                self._writing = {}
        size = sum(len(d.state) + len(d.facts or b"") for d in dirty.values())
        self._metrics.checkpointed(len(dirty), size, time.perf_counter() - started)

    def _index(self, addresses: dict[str, tuple[str | None, str | None]]) -> None:
        """Index prospects by address for the gateway (`connectors.identity`), which also
        appends what was parked for those addresses; kept for the next try if it fails."""
        profiles = [(p, email, phone) for p, (email, phone) in addresses.items()]
        try:
            retrying(
                "identity index",
                lambda: index_profiles(self._r, self._keys, profiles, dedupe_s=self._dedupe_s),
                self._stopping,
            )
        except Exception:
            with self._lock:
                for prospect, (email, phone) in addresses.items():
                    newer = self._addresses.get(prospect, (None, None))
                    self._addresses[prospect] = (newer[0] or email, newer[1] or phone)
            raise

    def _put_back(self, unwritten: dict[str, Dirty]) -> None:
        """Keep unwritten states for the next try; a newer state keeps the older one's acks."""
        with self._lock:
            for prospect, old in unwritten.items():
                newer = self._dirty.get(prospect)
                if newer is None:
                    self._dirty[prospect] = old
                else:
                    newer.older(old)

    def _write_chunk(self, dirty: dict[str, Dirty], chunk_id: str) -> None:
        """One Lua call: the chunk's counts (once per `chunk_id`), states with their facts,
        timers, acks."""
        keys = [self._keys.state(p) for p in dirty]
        argv: list[bytes | int | str] = [self._state_ttl, len(dirty)]
        argv += [d.state if d.facts is None else join(d.state, d.facts) for d in dirty.values()]
        counts = [d.counts for d in dirty.values() if d.counts is not None]
        if self._scorecard or counts:  # these states' counts (and `as_of`, counts or not)
            keys += (self._keys.scorecard, self._keys.counted(chunk_id), self._counted)
            argv += counts_args(counts, max(d.stream_ms for d in dirty.values()))
        else:
            argv.append(-1)
        for command in self._after_states(dirty):
            argv.append(len(command))
            argv += command
        self._r.execute_command("EVAL", CHECKPOINT, len(keys), *keys, *argv)

    def _after_states(self, dirty: dict[str, Dirty]) -> list[list[bytes | int | str]]:
        """Timer updates, then the acks of the inputs these states include."""
        due_by_shard: dict[int, list[int | str]] = defaultdict(list)
        none_by_shard: dict[int, list[str]] = defaultdict(list)
        acks_by_shard: dict[int, list[bytes]] = defaultdict(list)
        shards = self._keys.shards
        for prospect, d in dirty.items():
            due, acks = d.due, d.acks
            if due is None:
                none_by_shard[shard_of(prospect, shards)].append(prospect)
            else:
                due_by_shard[shard_of(prospect, shards)] += (due, prospect)
            for shard, entry_id in acks:
                acks_by_shard[shard].append(entry_id)
        out: list[list[bytes | int | str]] = []
        for shard, members in none_by_shard.items():
            out += _split(["ZREM", self._keys.timers(shard)], members)
        for shard, scored in due_by_shard.items():
            out += _split(["ZADD", self._keys.timers(shard)], scored, step=2)
        for shard, ids in acks_by_shard.items():
            out += _split(["XACK", self._keys.events(shard), self._keys.group], ids)
        return out

    def _flush_loop(self) -> None:
        """Checkpoint every interval on this thread, so the worker never waits for it: the
        checkpoint's round trips release the GIL, and the dataflow goes on meanwhile."""
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
        dedupe_s: int = DEFAULT_DEDUPE_S,
        scorecard: bool = False,
    ) -> None:
        self._dedupe_s = dedupe_s
        self._scorecard = scorecard
        self._make_client = make_client
        self._keys = keys
        self._metrics = metrics
        self._interval = interval_s
        self._state_ttl = state_ttl_s
        self._marker_ttl = marker_ttl_s
        self._stopping = stopping
        self._partitions: list[_CommitPartition] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CommitPartition:
        part = _CommitPartition(
            self._make_client(),
            self._keys,
            self._interval,
            self._state_ttl,
            self._marker_ttl,
            self._metrics,
            self._stopping,
            self._dedupe_s,
            self._scorecard,
        )
        self._partitions.append(part)
        return part

    def unwritten(self, prospect: str) -> bytes | None:
        """The prospect's newest state not yet checkpointed by any of this process's workers."""
        saved = self.saved(prospect)
        return saved.state if saved is not None else None

    def saved(self, prospect: str) -> Saved | None:
        """`unwritten`, with the prospect's facts not yet written (`_CommitPartition.saved`)."""
        for part in self._partitions:
            saved = part.saved(prospect)
            if saved is not None:
                return saved
        return None
