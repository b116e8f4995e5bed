"""Which prospects stay in a live worker's memory: those active in the last minutes.

Memory must track the active set, not every prospect ever seen (at ~2 KB a prospect, ten million
prospects seen would be 20 GB in one worker). A prospect's state is in Redis and its timers wake
it through the shard's timer set, so an idle one can leave the worker and come back, loaded in
bulk like any new prospect, on its next input. This keeps the recency of every resident prospect
in one ordered dict (least recently seen first, O(1) per sighting) and says which have been idle
for `idle_ms`. Time is passed in, so the choice is testable and free of clocks.
"""

from collections import OrderedDict
from collections.abc import Iterable


class Residency:
    """Least recently seen first; `idle` pops those not seen for `idle_ms` (0: never)."""

    __slots__ = ("_idle_ms", "_seen", "most")

    def __init__(self, idle_ms: int, most: int = 20_000) -> None:
        self._idle_ms = idle_ms
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.most = most  # evictions per call, so one call never stalls the worker long

    def __len__(self) -> int:
        return len(self._seen)

    def saw(self, prospects: Iterable[str], now_ms: int) -> None:
        if not self._idle_ms:
            return
        seen = self._seen
        move = seen.move_to_end
        for prospect in prospects:
            if prospect in seen:
                move(prospect)
            seen[prospect] = now_ms

    def idle(self, now_ms: int) -> list[str]:
        """Prospects not seen for `idle_ms`, forgotten here (they are to leave the worker)."""
        out: list[str] = []
        if not self._idle_ms:
            return out
        seen = self._seen
        cutoff = now_ms - self._idle_ms
        while seen and len(out) < self.most:
            prospect, at = next(iter(seen.items()))
            if at > cutoff:
                break
            del seen[prospect]
            out.append(prospect)
        return out
