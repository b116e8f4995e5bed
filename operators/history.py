"""The touch history and what it teaches: reservations counted once, answers credited.

Pure functions over the prospect's state and the compiled policy, shared by the fact handlers
(a `touch_sent`, an open) and the decider (a command reserves its touch at once, rule 5): the
history and the learned preference change in one place whoever changes them.
"""

import bisect

from operators import fatigue, preference
from operators.compiled import Compiled
from operators.state import ProspectState
from operators.state_records import Touch
from operators.timeutil import HOUR_MS


def count_touch(k: Compiled, s: ProspectState, touch: Touch, now: int) -> None:
    """A touch reported at `touch.ts`: counted once per command key (0: no command, always new)."""
    touches = s.touches or []
    key = touch.command
    if key and any(t.command == key for t in touches):
        return  # confirms our own reservation: already counted
    bisect.insort(touches, touch, key=_touch_ts)
    s.touches = touches
    prune(k, s, now)


def reserve(k: Compiled, s: ProspectState, touch: Touch) -> None:
    """A command we emit now is counted at once (rule 5), and awaits an answer (issue 15)."""
    touches = s.touches or []
    touches.append(touch)
    s.touches = touches
    prune(k, s, touch.ts)
    tracked = preference.track_touch(
        s.open_touches, s.answers, touch.channel, touch.ts, k.preference
    )
    learned(k, s, tracked)


def release(s: ProspectState, key: int) -> None:
    """A `touch_failed`: the reservation of that command no longer counts."""
    if s.touches:
        s.touches = [t for t in s.touches if t.command != key] or None


def prune(k: Compiled, s: ProspectState, now: int) -> None:
    """Forget touches older than the longest window: they can stop nothing any more."""
    touches = s.touches
    horizon = k.rules.horizon_ms
    if touches and touches[0].ts <= now - horizon:
        since = now - horizon
        s.touches = [t for t in touches if t.ts > since] or None


def answered(k: Compiled, s: ProspectState, ch: int, ts: int, *, chosen: bool = False) -> None:
    """An open, click, reply or answered call: credit the open touch, relieve fatigue.

    `chosen`: the prospect picked the channel themselves (a reply, a chat they opened), so
    with no touch of ours open there it is still evidence for it (issue 15).
    """
    tracked = preference.track_response(
        s.open_touches, s.answers, ch, ts, k.preference, chosen=chosen
    )
    learned(k, s, tracked)
    s.fatigue = fatigue.on_engagement(s.fatigue, ts, k.fatigue)


def settle(k: Compiled, s: ProspectState, now: int) -> None:
    """Touches whose answer window closed unanswered become misses (and raise fatigue)."""
    track = s.open_touches
    if track is None:
        return
    cutoff = now - k.preference.response_window_hours * HOUR_MS
    if all(t == preference.NONE or t > cutoff for t in track[:-1]):
        return  # no window has closed: the common case, without rebuilding the tuples
    learned(k, s, preference.settle(track, s.answers, now, k.preference))


def learned(k: Compiled, s: ProspectState, tracked: preference.Attribution) -> None:
    """Keep what an attribution taught; each unanswered touch adds to fatigue."""
    s.open_touches, s.answers = tracked.track, tracked.stats
    for ch, at, declining in tracked.misses:
        s.fatigue = fatigue.on_unanswered_touch(s.fatigue, ch, at, k.fatigue, declining=declining)


def _touch_ts(t: Touch) -> int:
    return t.ts
