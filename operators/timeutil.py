"""Event time as integer milliseconds since the Unix epoch (UTC).

Integers keep prospect state small and comparisons cheap, and integer arithmetic makes window
edges exact (a touch exactly 7 days old is out of a 7-day window, never "almost" out).
"""

from datetime import UTC, datetime, timedelta

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


def format_ts(ms: int) -> str:
    """RFC 3339 in UTC with `Z`; milliseconds only when non-zero, so output stays short."""
    dt = EPOCH + timedelta(milliseconds=ms)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ms % 1000
    return f"{base}.{frac:03d}Z" if frac else f"{base}Z"


def parse_ts(text: str) -> int:
    """Parse an RFC 3339 timestamp with offset or `Z` (as the CLI's `--until`) to milliseconds."""
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        msg = f"timestamp {text!r} has no offset; RFC 3339 needs one (e.g. Z or +02:00)"
        raise ValueError(msg)
    return to_ms(dt)
