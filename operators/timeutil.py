"""Event time as integer milliseconds since the Unix epoch (UTC).

Integers keep prospect state small and comparisons cheap, and integer arithmetic makes window
edges exact (a touch exactly 7 days old is out of a 7-day window, never "almost" out).
"""

from datetime import UTC, datetime, timedelta
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def to_ms(dt: datetime) -> int:
    """Milliseconds since the epoch for an aware datetime, floored (exact, no float rounding)."""
    return (dt - EPOCH) // MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime for `ms`."""
    return EPOCH + timedelta(milliseconds=ms)


@lru_cache(maxsize=8192)
def format_ts(ms: int) -> str:
    """RFC 3339 in UTC with `Z`; milliseconds only when non-zero, so output stays short.

    Cached: the same instants recur (a decision and its command, the touches in every context),
    and formatting is the single most frequent operation of the engine.
    """
    day, rest = divmod(ms, DAY_MS)
    seconds, frac = divmod(rest, SECOND_MS)
    clock = f"{_day_prefix(day)}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{clock}.{frac:03d}Z" if frac else f"{clock}Z"


@lru_cache(maxsize=1024)
def _day_prefix(day: int) -> str:
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


def parse_ts(text: str) -> int:
    """Parse an RFC 3339 timestamp with offset or `Z` (as the CLI's `--until`) to milliseconds."""
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        msg = f"timestamp {text!r} has no offset; RFC 3339 needs one (e.g. Z or +02:00)"
        raise ValueError(msg)
    return to_ms(dt)
