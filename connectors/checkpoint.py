"""Reading prospect state back from Redis: one key per prospect, MessagePack.

Writing happens in the commit sink (`connectors.redis_sink`), together with the acknowledgements;
this module is the read side, used the first time a worker sees a prospect.
"""

from collections.abc import Callable
from typing import Any

import msgspec
import redis

from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_sink import retrying
from operators.state import ProspectState, decode_state


class StateStore:
    """Loads checkpointed state in batches; an unreadable state is an error, never a fresh one.

    The flow requests the states of the prospects it meets for the first time, then takes them
    one by one; the first `take` of a round loads every requested state in one MGET per
    `chunk` keys, instead of a round trip per prospect.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
        *,
        chunk: int = 1_000,
    ) -> None:
        self._r: Any = client
        self._keys = keys
        self._metrics = metrics
        self._stopping = stopping
        self._chunk = chunk
        self._requested: list[str] = []
        self._loaded: dict[str, bytes | None] = {}

    def request(self, prospect: str) -> None:
        self._requested.append(prospect)

    def take(self, prospect: str) -> ProspectState | None:
        if prospect not in self._loaded:
            self._load_requested(prospect)
        data = self._loaded.pop(prospect)
        self._metrics.in_memory.inc()
        if data is None:
            return None
        try:
            return decode_state(data)
        except msgspec.DecodeError as exc:
            msg = f"checkpoint {self._keys.state(prospect)} is unreadable: {exc}"
            raise RuntimeError(msg) from exc

    def _load_requested(self, prospect: str) -> None:
        wanted = [p for p in dict.fromkeys(self._requested) if p not in self._loaded]
        if prospect not in wanted:
            wanted.append(prospect)
        self._requested = []
        state_key = self._keys.state
        for start in range(0, len(wanted), self._chunk):
            part = wanted[start : start + self._chunk]
            values = retrying(
                "load states", self._mget([state_key(p) for p in part]), self._stopping
            )
            self._loaded.update(zip(part, values, strict=True))

    def _mget(self, keys: list[str]) -> Callable[[], list[bytes | None]]:
        return lambda: self._r.mget(keys)
