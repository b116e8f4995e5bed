"""Learned channel preference: a Beta posterior per channel from hits and misses on recent touches.

A prospect's answers are the best signal of where to reach them, but a new prospect has none, so
each channel starts from its segment's observed response rate, weighted as `prior_strength`
pseudo-observations, and the prospect's own evidence takes over as it accumulates. Per-prospect
memory is two tuples of small ints (`Stats`, `Track`), never a dict; everything is pure.
"""

from collections.abc import Sequence
from typing import Annotated, Final, NamedTuple

from msgspec import Meta, Struct, field

from operators import events as ev
from operators.events import CHANNEL_INDEX, CHANNELS, Channel
from operators.timeutil import HOUR_MS

NONE: Final = -1  # no channel (as `operators.state.AUTO`), or no open touch on a channel
MAX_COUNT: Final = 255  # a count past this halves the channel's counts: old evidence fades
DEFAULT_SEGMENT: Final = "default"

Rate = Annotated[float, Meta(ge=0, le=1)]
# (hits, misses) per channel index: hits of channel c at 2c, misses at 2c + 1.
Stats = tuple[int, ...]
# The open (not yet settled) touch time per channel index, NONE if none; then a bitmask of the
# channels whose last settled touch was answered (to tell a declining prospect).
Track = tuple[int, ...]
# A touch settled unanswered: (channel index, ms its window closed, declining).
Miss = tuple[int, int, bool]

_EMPTY_STATS: Final[Stats] = (0,) * (2 * len(CHANNELS))
_EMPTY_TRACK: Final[Track] = (NONE,) * len(CHANNELS) + (0,)


def _default_priors() -> dict[str, dict[Channel, float]]:
    """Observed response rates by segment ("social" is LinkedIn).

    Chat was not measured: 0.25 in `default`, which every segment falls back to, a quarter, just
    under the mean of all measured rates (0.28): it ranks third of five in every cold start, so
    an unmeasured channel never leads, nor trails. `default` (unknown or missing segment) is
    otherwise the mean of the three segments.
    """
    return {
        "digital_native": {"sms": 0.47, "email": 0.23, "linkedin": 0.34, "phone": 0.12},
        "digital_adopter": {"sms": 0.28, "email": 0.41, "linkedin": 0.19, "phone": 0.18},
        "traditional": {"sms": 0.19, "email": 0.52, "linkedin": 0.08, "phone": 0.31},
        DEFAULT_SEGMENT: {
            "sms": 0.313,
            "email": 0.387,
            "linkedin": 0.203,
            "phone": 0.203,
            "chat": 0.25,
        },
    }


class PreferenceConfig(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Cold-start priors by segment and the response window (policy section `[preference]`).

    A segment may name only some channels; the others take the rate of the `default` segment,
    which must name them all (it also serves prospects of unknown segment).
    """

    # pseudo-observations behind a prior
    prior_strength: Annotated[float, Meta(gt=0, le=1e12)] = 10.0
    priors: dict[str, dict[Channel, Rate]] = field(default_factory=_default_priors)
    # unanswered this long: a miss
    response_window_hours: Annotated[int, Meta(ge=1, le=87_600)] = 72

    def __post_init__(self) -> None:
        missing = [c for c in CHANNELS if c not in self.priors.get(DEFAULT_SEGMENT, {})]
        if missing:
            msg = f"priors.{DEFAULT_SEGMENT} must give a rate for {missing} - at `$.priors`"
            raise ValueError(msg)


def default_preference_config() -> PreferenceConfig:
    """The rates of the observed segments (the struct's defaults)."""
    return PreferenceConfig()


def priors_for(segment: str | None, cfg: PreferenceConfig) -> tuple[float, ...]:
    """The prior rate per channel index for `segment` (unknown or None: `default`)."""
    own = cfg.priors.get(segment or DEFAULT_SEGMENT) or {}
    base = cfg.priors[DEFAULT_SEGMENT]
    return tuple(own.get(c, base[c]) for c in CHANNELS)


def record(stats: Stats | None, ch: int, hit: bool) -> Stats:
    """Count a hit or a miss on `ch`. A count past `MAX_COUNT` halves both of the channel's
    counts (half up): state stays small, the ratio holds, and old evidence weighs less."""
    s = list(stats or _EMPTY_STATS)
    at = 2 * ch + (0 if hit else 1)
    s[at] += 1
    if s[at] > MAX_COUNT:
        s[2 * ch] = (s[2 * ch] + 1) // 2
        s[2 * ch + 1] = (s[2 * ch + 1] + 1) // 2
    return tuple(s)


def _mean(prior: float, hits: int, misses: int, strength: float) -> float:
    a = prior * strength + hits
    return a / (strength + hits + misses)


def estimate(stats: Stats | None, ch: int, segment: str | None, cfg: PreferenceConfig) -> float:
    """Posterior mean response rate of channel `ch`: Beta(p*n + hits, (1-p)*n + misses).

    Strictly inside (0, 1) when the prior is; a prior of exactly 0 or 1 holds until evidence.
    """
    s = stats or _EMPTY_STATS
    return _mean(priors_for(segment, cfg)[ch], s[2 * ch], s[2 * ch + 1], cfg.prior_strength)


def ranked(
    stats: Stats | None, segment: str | None, cfg: PreferenceConfig, order: Sequence[int]
) -> tuple[int, ...]:
    """The channels of `order` (the candidates, e.g. `auto_order`) by estimate, best first;
    equal estimates keep `order`'s order, so ties break the same way on every run and worker."""
    s = stats or _EMPTY_STATS
    priors = priors_for(segment, cfg)
    n = cfg.prior_strength
    est = [_mean(priors[c], s[2 * c], s[2 * c + 1], n) for c in range(len(CHANNELS))]
    return tuple(sorted(dict.fromkeys(order), key=lambda c: -est[c]))  # sort is stable


def apply_stances(
    ranking: Sequence[int], only: int, prefer: int, avoid_mask: int
) -> tuple[int, ...]:
    """The ranking after the prospect's own words, which beat anything learned: avoided
    channels go; `only` leaves just that channel (nothing if avoided or not ranked); else
    `prefer` moves to the front. NONE (-1) means no such stance."""
    kept = tuple(c for c in ranking if not avoid_mask >> c & 1)
    if only != NONE:
        return (only,) if only in kept else ()
    if prefer != NONE and prefer in kept:
        return (prefer, *(c for c in kept if c != prefer))
    return kept


def pick(
    ranking: Sequence[int], allowed: int, backup_allowed: int | None = None
) -> tuple[int, int]:
    """(best, backup): the first channel of `ranking` in bitmask `allowed`, and the next one in
    `backup_allowed` (default `allowed`: a backup may be wider than "allowed now"); NONE if none.
    """
    mask = allowed if backup_allowed is None else backup_allowed
    best = backup = NONE
    for c in ranking:
        if best == NONE:
            if allowed >> c & 1:
                best = c
        elif c != best and mask >> c & 1:
            backup = c
            break
    return best, backup


# -- attribution ---------------------------------------------------------------------------------

# What counts as the prospect answering a touch, per channel. An email open is a signal; an SMS
# "open" is not one (delivery receipts are not reads); a call counts only when answered; the
# prospect opening a chat answers on chat. A `delivered` answers nothing (it is the provider's),
# nor does a `content_download` (engagement on no channel).
RESPONSE_EVENTS: Final[dict[Channel, frozenset[str]]] = {
    "email": frozenset({"opened", "clicked", "replied"}),
    "sms": frozenset({"replied", "clicked"}),
    "phone": frozenset({"call_outcome"}),
    "chat": frozenset({"replied", "chat_started"}),
    "linkedin": frozenset({"replied"}),
}
_PHONE: Final = CHANNEL_INDEX["phone"]
_CHAT: Final = CHANNEL_INDEX["chat"]


def response_channel(event: ev.Event) -> int:
    """The channel `event` answers (`RESPONSE_EVENTS`), or NONE; out-of-office is no answer."""
    if isinstance(event, ev.CallOutcome):
        return _PHONE if event.outcome == "answered" else NONE
    if isinstance(event, ev.ChatStarted):
        return _CHAT
    if isinstance(event, ev.Replied) and event.sentiment == "out_of_office":
        return NONE
    if isinstance(event, ev.Opened | ev.Clicked | ev.Replied):
        answers = ev.event_type(event) in RESPONSE_EVENTS[event.channel]
        return CHANNEL_INDEX[event.channel] if answers else NONE
    return NONE


def attribute(
    touch_ms: int, response_ms: int | None, now: int, cfg: PreferenceConfig
) -> bool | None:
    """Hit (True) if the response came in [touch, touch + window); miss (False) if the window
    has closed by `now` without one; None while it is still open."""
    end = touch_ms + cfg.response_window_hours * HOUR_MS
    if response_ms is not None and touch_ms <= response_ms < end:
        return True
    return False if now >= end else None


class Attribution(NamedTuple):
    """The result of a tracking step: new state, touches settled unanswered, and any hit."""

    track: Track
    stats: Stats
    misses: tuple[Miss, ...]
    hit: bool = False


def settle(
    track: Track | None, stats: Stats | None, now: int, cfg: PreferenceConfig
) -> Attribution:
    """Settle every open touch whose window closed by `now` as a miss, oldest first.

    Lazy settling is exact: a miss is dated when its window closed, not when it was noticed.
    A miss is `declining` when the channel's previous touch was answered.
    """
    t = list(track or _EMPTY_TRACK)
    s = stats or _EMPTY_STATS
    window = cfg.response_window_hours * HOUR_MS
    closed = sorted((t[c] + window, c) for c in range(len(CHANNELS)) if t[c] != NONE)
    misses: list[Miss] = []
    for end, c in closed:
        if attribute(t[c], None, now, cfg) is False:
            misses.append((c, end, bool(t[-1] >> c & 1)))
            s = record(s, c, False)
            t[c] = NONE
            t[-1] &= ~(1 << c)
    return Attribution(tuple(t), s, tuple(misses))


def track_touch(
    track: Track | None, stats: Stats | None, ch: int, now: int, cfg: PreferenceConfig
) -> Attribution:
    """Open a touch on `ch` at `now`. A still-open earlier touch on `ch` is settled as a miss:
    a later answer is credited to the most recent touch (last-touch attribution)."""
    track, s, misses = settle(track, stats, now, cfg)[:3]
    t = list(track)
    if t[ch] != NONE:
        misses = (*misses, (ch, now, bool(t[-1] >> ch & 1)))
        s = record(s, ch, False)
        t[-1] &= ~(1 << ch)
    t[ch] = now
    return Attribution(tuple(t), s, misses)


def track_response(
    track: Track | None, stats: Stats | None, ch: int, now: int, cfg: PreferenceConfig
) -> Attribution:
    """Credit a response on `ch` at `now` to the channel's open touch, if any (`hit`).

    A response with no open touch (already answered, window closed, or never touched) is no
    evidence about the channel: one touch yields at most one hit or one miss.
    """
    track, s, misses = settle(track, stats, now, cfg)[:3]
    t = list(track)
    if t[ch] == NONE or not attribute(t[ch], now, now, cfg):
        return Attribution(track, s, misses)
    t[ch] = NONE
    t[-1] |= 1 << ch
    return Attribution(tuple(t), record(s, ch, True), misses, hit=True)
