"""Quiet hours in the prospect's local time, across every zone the prospect may be in.

A US number can span several zones; the touch must be inside the allowed hours in all of them
(contract rule 6). Local times go through `zoneinfo`, so daylight-saving changes are handled by
the tz database rather than by fixed offsets.
"""

from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_timezone

from operators.timeutil import DAY_MS, SECOND_MS

_SEARCH_LIMIT_MS: Final = 3 * DAY_MS  # no common window within 3 days: the zones never overlap


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def phone_zones(number: str) -> tuple[str, ...]:
    """Every IANA zone an E.164 number may be in; empty when phonenumbers does not know."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    names = phone_timezone.time_zones_for_number(parsed)
    return tuple(sorted(n for n in names if n != "Etc/Unknown"))


def seconds_of_day(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def next_allowed(t_ms: int, zone_names: tuple[str, ...], start_s: int, end_s: int) -> int | None:
    """The earliest time >= t_ms inside [start, end) local time in every zone, or None.

    Returns `t_ms` itself when it is already allowed. None means no common window exists within
    the search limit (zones too far apart for the window), so the touch cannot go at all.
    """
    if all(start_s <= _local_seconds(t_ms, name) < end_s for name in zone_names):
        return t_ms  # the common case, without building datetimes
    candidate = t_ms
    limit = t_ms + _SEARCH_LIMIT_MS
    while candidate <= limit:
        moved = False
        for name in zone_names:
            tz = zone(name)
            local = datetime.fromtimestamp(candidate / SECOND_MS, tz)
            s = local.hour * 3600 + local.minute * 60 + local.second
            if start_s <= s < end_s:
                continue
            day = local.date() if s < start_s else local.date() + timedelta(days=1)
            opening = datetime.combine(day, _clock(start_s), tzinfo=tz)
            candidate = max(candidate + 1, int(opening.timestamp()) * SECOND_MS)
            moved = True
            break
        if not moved:
            return candidate
    return None


_SLOT_MS: Final = 15 * 60 * SECOND_MS
_offsets: dict[tuple[str, int], int] = {}


def _local_seconds(t_ms: int, name: str) -> int:
    """Seconds since local midnight in zone `name` at `t_ms`.

    The zone's UTC offset is cached per 15-minute UTC slot, and only for slots with one offset
    at both ends (zone transitions fall on such boundaries today; any slot that straddles one is
    computed exactly every time).
    """
    slot = t_ms // _SLOT_MS
    offset = _offsets.get((name, slot))
    if offset is None:
        first = _offset_s(slot * _SLOT_MS, name)
        if first != _offset_s((slot + 1) * _SLOT_MS - 1, name):
            return (t_ms // SECOND_MS + _offset_s(t_ms, name)) % 86_400
        if len(_offsets) > 100_000:
            _offsets.clear()
        offset = _offsets[(name, slot)] = first
    return (t_ms // SECOND_MS + offset) % 86_400


def _offset_s(t_ms: int, name: str) -> int:
    offset = datetime.fromtimestamp(t_ms / SECOND_MS, zone(name)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


@lru_cache(maxsize=64)
def _clock(seconds: int) -> time:
    return time(seconds // 3600, seconds // 60 % 60, seconds % 60)
