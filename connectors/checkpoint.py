"""Reading prospect state back from Redis: one key per prospect, MessagePack.

Writing happens in the commit sink (`connectors.redis_sink`), together with the acknowledgements;
this module is the read side, used the first time a worker sees a prospect. With the scorecard
on, each state comes with the prospect's facts, in the same value (`connectors.state_value`). A
state written by a version that kept facts in a key of their own (`Keys.facts`) has them there,
read in a second MGET for those states alone; a state written before the scorecard existed has
none, and its facts start empty.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import redis

from connectors.effects import Saved, TakenFacts
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.retry import retrying
from connectors.state_value import legacy_facts, split
from operators.scorecard_facts import ProspectFacts, decode_facts
from operators.state import ProspectState, decode_state


class StateStore:
    """Loads checkpointed state in batches; an unreadable state is an error, never a fresh one.

    Two ways to batch, both one MGET per `chunk` keys instead of a round trip per prospect:

    - `prefetch`, called by the decode step with a batch's prospects, loads those this process
      has not taken yet, so that the stateful step finds them `ready` in the same activation.
      Only for a flow of one worker: with several, Bytewax routes a prospect to the worker its
      key hashes to, unrelated to which worker decodes its shard, so most prefetches would miss.
      A prefetched state nobody takes is dropped (at most `keep` are kept).
    - otherwise the stateful step `request`s the state, holds the prospect's input, and the
      first `take` of the next activation loads every requested state.

    Both read a prospect's checkpoint before this process holds any state of its own for it, so
    what they read is the newest state there is, with one exception: a prospect that left the
    worker (idle, `forget`) and comes back before its last state was checkpointed. So `take`
    asks `unwritten` (the commit sink's dirty states) first. A Redis that is gone or refuses
    (loading its data, busy with a script) is waited for, like the sinks do (`retrying`): the
    prospect's input waits with it, and no state is ever taken for fresh because it could not
    be read.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
        *,
        chunk: int = 1_000,
        keep: int = 10_000,
        unwritten: Callable[[str], bytes | None] = lambda _prospect: None,
        saved: Callable[[str], Saved | None] | None = None,
        facts: bool = False,
    ) -> None:
        """`facts`: load each prospect's scorecard facts too (`take_facts`); `saved`: the
        commit sink's unwritten state with its facts (else `unwritten`, the state alone)."""
        self._r: Any = client
        self._keys = keys
        self._metrics = metrics
        self._stopping = stopping
        self._chunk = chunk
        self._keep = keep
        self._requested: list[str] = []
        self._loaded: dict[str, Saved | None] = {}
        self._prefetched: dict[str, Saved | None] = {}
        self._taken: set[str] = set()
        self._saved = saved if saved is not None else _state_only(unwritten)
        self._facts = facts
        self._taken_facts: dict[str, TakenFacts] = {}

    def forget(self, prospect: str) -> None:
        """The prospect left the worker: its next input loads (or prefetches) its state again."""
        if prospect in self._taken:
            self._taken.discard(prospect)
            self._metrics.in_memory.dec()

    def prefetch(self, prospects: Iterable[str]) -> None:
        taken, prefetched = self._taken, self._prefetched
        wanted = [p for p in dict.fromkeys(prospects) if p not in taken and p not in prefetched]
        if not wanted:
            return
        if len(prefetched) + len(wanted) > self._keep:
            prefetched.clear()  # states another process's workers own: refetched if ever needed
        prefetched.update(self._mget_all(wanted))

    def ready(self, prospect: str) -> bool:
        return prospect in self._prefetched or prospect in self._loaded

    def request(self, prospect: str) -> None:
        self._requested.append(prospect)

    def take(self, prospect: str) -> ProspectState | None:
        if prospect in self._prefetched:
            data = self._prefetched.pop(prospect)
            self._loaded.pop(prospect, None)
        else:
            if prospect not in self._loaded:
                self._load_requested(prospect)
            data = self._loaded.pop(prospect)
        self._taken.add(prospect)
        self._metrics.in_memory.inc()
        newer = self._saved(prospect)
        if newer is not None:
            data = newer
        if data is None:
            return None
        try:
            state = decode_state(data.state)
            if self._facts and data.facts is not None:  # (off: nobody takes them)
                facts = decode_facts(data.facts)
                self._taken_facts[prospect] = TakenFacts(facts, data.facts)
        except msgspec.DecodeError as exc:
            msg = f"checkpoint {self._keys.state(prospect)} is unreadable: {exc}"
            raise RuntimeError(msg) from exc
        return state

    def take_facts(self, prospect: str) -> TakenFacts:
        """The facts that came with the state `take` just returned, and their bytes (empty
        facts and no bytes for a new prospect, or a state written before the scorecard)."""
        return self._taken_facts.pop(prospect, None) or TakenFacts(ProspectFacts())

    def _load_requested(self, prospect: str) -> None:
        taken, loaded = self._taken, self._loaded
        wanted = [p for p in dict.fromkeys(self._requested) if p not in loaded and p not in taken]
        if prospect not in wanted:
            wanted.append(prospect)
        self._requested = []
        self._loaded.update(self._mget_all(wanted))

    def _mget_all(self, prospects: list[str]) -> Iterator[tuple[str, Saved | None]]:
        """States from Redis, except those the commit sink holds unwritten: asked *before* the
        read, since a checkpoint finishing between the read and `take` would otherwise leave
        the older state read here as the only one (a prospect that left the worker cannot get
        a newer unwritten state meanwhile: nothing applies its events until it is taken)."""
        held = {p: saved for p in prospects if (saved := self._saved(p)) is not None}
        yield from held.items()
        prospects = [p for p in prospects if p not in held]
        state_key = self._keys.state
        for start in range(0, len(prospects), self._chunk):
            part = prospects[start : start + self._chunk]
            values = self._load([state_key(p) for p in part])
            read = {p: self._split(p, v) for p, v in zip(part, values, strict=True)}
            if self._facts:
                self._legacy_facts(read)
            yield from read.items()

    def _split(self, prospect: str, value: bytes | None) -> Saved | None:
        if value is None:
            return None
        try:
            return Saved(*split(value))
        except msgspec.DecodeError as exc:
            msg = f"checkpoint {self._keys.state(prospect)} is unreadable: {exc}"
            raise RuntimeError(msg) from exc

    def _legacy_facts(self, read: dict[str, Saved | None]) -> None:
        """Facts of states written by a version that kept them in a key of their own."""
        for prospect, facts in legacy_facts(read, self._load, self._keys.facts).items():
            saved = read[prospect]
            if saved is not None:
                read[prospect] = saved._replace(facts=facts)

    def _load(self, keys: list[str]) -> list[bytes | None]:
        values: list[bytes | None] = retrying(
            "load states", self._mget(keys), self._stopping, refused="reads"
        )
        return values

    def _mget(self, keys: list[str]) -> Callable[[], list[bytes | None]]:
        return lambda: self._r.mget(keys)


def _state_only(unwritten: Callable[[str], bytes | None]) -> Callable[[str], Saved | None]:
    def saved(prospect: str) -> Saved | None:
        state = unwritten(prospect)
        return Saved(state, None) if state is not None else None

    return saved
