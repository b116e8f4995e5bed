"""What keeps this process from doing its work right now, for `/healthz` and a gauge.

A writer that cannot write (Redis gone, or refusing writes) holds the flow: nothing is lost, but
nothing moves either, and an operator should learn it from the health check rather than the logs.
Each retrying writer reports its reason under a token of its own and clears it once its write
lands (or it gives up), so the process is healthy again only when every writer is through: a
single flag that any writer could clear would report health while another still waits.
"""

import threading
import time
from typing import Final, NamedTuple


class Trouble(NamedTuple):
    reason: str
    refusal: bool  # Redis answered "not now" (OOM, READONLY, ...), as opposed to not answering
    since: float  # time.monotonic() of the first failure


class Health:
    """The troubles of this process's writers, by token; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._troubles: dict[object, Trouble] = {}

    def report(self, token: object, reason: str, *, refusal: bool) -> None:
        """`token`'s writer is retrying because of `reason` (replaces its earlier reason)."""
        with self._lock:
            older = self._troubles.get(token)
            since = older.since if older is not None else time.monotonic()
            self._troubles[token] = Trouble(reason, refusal, since)

    def clear(self, token: object) -> None:
        """`token`'s writer is through (written, or gave up); unknown tokens are ignored."""
        with self._lock:
            self._troubles.pop(token, None)

    def problem(self) -> str | None:
        """The reason of the longest-standing trouble, or None when every writer is through."""
        with self._lock:
            if not self._troubles:
                return None
            return min(self._troubles.values(), key=lambda t: t.since).reason

    def refusing(self) -> bool:
        """True while some writer waits because Redis refuses (not because it is unreachable)."""
        with self._lock:
            return any(t.refusal for t in self._troubles.values())


# One per process: every sink of a worker process reports here, and its `/healthz` reads it.
HEALTH: Final = Health()
