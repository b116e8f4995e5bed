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
    """Loads checkpointed state; an unreadable state is an error, never silently a fresh one."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._r: Any = client
        self._keys = keys
        self._metrics = metrics
        self._stopping = stopping

    def load(self, prospect: str) -> ProspectState | None:
        key = self._keys.state(prospect)
        data = retrying("load state", lambda: self._r.get(key), self._stopping)
        self._metrics.in_memory.inc()
        if data is None:
            return None
        try:
            return decode_state(data)
        except msgspec.DecodeError as exc:
            msg = f"checkpoint {key} is unreadable: {exc}"
            raise RuntimeError(msg) from exc
