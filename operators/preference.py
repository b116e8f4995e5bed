"""Learned channel preference: a Beta posterior per channel from what the prospect did.

A prospect's answers are the best signal of where to reach them, but a new prospect has none, so
each channel starts from its segment's observed response rate, weighted as `prior_strength`
pseudo-observations, and the prospect's own evidence takes over as it accumulates. Evidence is
the hit or miss of each of our touches, and behaviour (issue 15): a fast answer counts
`fast_answer_weight` hits, and a channel the prospect chooses by themselves (a reply on a channel
we did not touch, an inbound text, a chat they open) counts `chosen_weight` hits for it, since
"respond where they respond" is the strongest signal there is. Per-prospect memory is two
tuples of small ints (`Stats`, `Track`), never a dict; everything is pure.
"""

from collections.abc import Sequence
from typing import Annotated, Final, NamedTuple

from msgspec import Meta, Struct, field

from operators import events as ev
from operators.events import CHANNEL_INDEX, CHANNELS, Channel
from operators.timeutil import HOUR_MS, MINUTE_MS

NONE: Final = -1  # no channel (as `operators.state.AUTO`), or no open touch on a channel
MAX_COUNT: Final = 255  # a count past this halves the channel's counts: old evidence fades
DEFAULT_SEGMENT: Final = "default"

Rate = Annotated[float, Meta(ge=0, le=1)]
# (hits, misses) per channel index: hits of channel c at 2c, misses at 2c + 1; then, since issue
# 15, per channel index the weight of behavioural evidence in tenths of a hit (`WEIGHT_UNIT`), at
# `_WEIGHTS + c`. Stats written before have no such tail: it reads as 0, so they keep their
# meaning (the state field `answers` is checkpointed as is).
Stats = tuple[int, ...]
# The open (not yet settled) touch time per channel index, NONE if none; then a bitmask of the
# channels whose last settled touch was answered (to tell a declining prospect).
Track = tuple[int, ...]
# A touch settled unanswered: (channel index, ms its window closed, declining).
Miss = tuple[int, int, bool]

WEIGHT_UNIT: Final = 10  # behavioural evidence is kept in tenths of a hit: integers, exact
MAX_WEIGHT: Final = MAX_COUNT * WEIGHT_UNIT  # past this, the channel's evidence halves
_WEIGHTS: Final = 2 * len(CHANNELS)  # where the behavioural weights start in `Stats`
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


Weight = Annotated[float, Meta(ge=0, le=100)]


class PreferenceConfig(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Cold-start priors by segment, the response window, the weights of behavioural evidence
    and when to wait for the best channel (policy section `[preference]`).

    A segment may name only some channels; the others take the rate of the `default` segment,
    which must name them all (it also serves prospects of unknown segment).
    """

    # pseudo-observations behind a prior
    prior_strength: Annotated[float, Meta(gt=0, le=1e12)] = 10.0
    priors: dict[str, dict[Channel, Rate]] = field(default_factory=_default_priors)
    # unanswered this long: a miss
    response_window_hours: Annotated[int, Meta(ge=1, le=87_600)] = 72
    # A channel the prospect chose by themselves (a reply where we did not touch them, an inbound
    # text, a chat they opened): worth this many hits for that channel. 0: no such evidence.
    chosen_weight: Weight = 5.0
    # A touch answered within this many minutes counts `fast_answer_weight` hits (0: never).
    fast_answer_minutes: Annotated[int, Meta(ge=0, le=10_080)] = 60
    fast_answer_weight: Annotated[float, Meta(ge=1, le=100)] = 2.0
    # What one unanswered touch weighs, in misses. The priors are observed response rates; where
    # a single touch is answered far less often than that, a miss says less than the prior
    # assumes, and a weight below 1 keeps misses from rotating prospects off their best channel.
    miss_weight: Annotated[float, Meta(ge=0, le=100)] = 1.0
    # An `auto` request or `preferred` step whose best channel is held by quiet hours or its own
    # cap waits for it (rule `preference.wait`) when it opens within `wait_hours` of the touch's
    # first consideration and its estimate beats the best channel allowed now by the relative
    # margin `wait_min_gain` (a stated `prefer` always waits). 0 hours: never wait.
    wait_hours: Annotated[int, Meta(ge=0, le=168)] = 12
    wait_min_gain: Annotated[float, Meta(ge=0, le=100)] = 0.10

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
    """Count a hit or a miss on `ch`. A count past `MAX_COUNT` halves the channel's evidence
    (half up): state stays small, the ratio holds, and old evidence weighs less."""
    s = list(stats or _EMPTY_STATS)
    at = 2 * ch + (0 if hit else 1)
    s[at] += 1
    if s[at] > MAX_COUNT:
        _halve(s, ch)
    return tuple(s)


def credit(stats: Stats | None, ch: int, tenths: int) -> Stats:
    """Add `tenths` of a hit of behavioural evidence to `ch` (a chosen channel, a fast answer).

    Kept apart from the hit count, so one touch still settles as exactly one hit or miss; the
    tail is added on first use, so stats without behaviour keep their old, shorter form.
    """
    if tenths <= 0:
        return stats or _EMPTY_STATS
    s = list(stats or _EMPTY_STATS)
    if len(s) < _WEIGHTS + len(CHANNELS):
        s.extend((0,) * (_WEIGHTS + len(CHANNELS) - len(s)))
    s[_WEIGHTS + ch] += tenths
    if s[_WEIGHTS + ch] > MAX_WEIGHT:
        _halve(s, ch)
    return tuple(s)


def _halve(s: list[int], ch: int) -> None:
    s[2 * ch] = (s[2 * ch] + 1) // 2
    s[2 * ch + 1] = (s[2 * ch + 1] + 1) // 2
    if len(s) > _WEIGHTS + ch:
        s[_WEIGHTS + ch] = (s[_WEIGHTS + ch] + 1) // 2


class Evidence(NamedTuple):
    """What one channel's estimate rests on: hits, misses, behavioural weight (in hits)."""

    hits: int
    misses: int
    weight: float


def evidence(stats: Stats | None, ch: int) -> Evidence:
    """The evidence kept for `ch` (stats of any age: a missing weight tail is 0)."""
    s = stats or _EMPTY_STATS
    tenths = s[_WEIGHTS + ch] if len(s) > _WEIGHTS + ch else 0
    return Evidence(s[2 * ch], s[2 * ch + 1], tenths / WEIGHT_UNIT)


def _mean(prior: float, e: Evidence, cfg: PreferenceConfig) -> float:
    a = prior * cfg.prior_strength + e.hits + e.weight
    return a / (cfg.prior_strength + e.hits + e.misses * cfg.miss_weight + e.weight)


def estimate(stats: Stats | None, ch: int, segment: str | None, cfg: PreferenceConfig) -> float:
    """Posterior mean response rate of channel `ch`: Beta(p*n + hits + w, (1-p)*n + m*misses),
    w the behavioural weight, m the `miss_weight`.

    Strictly inside (0, 1) when the prior is; a prior of exactly 0 or 1 holds until evidence.
    """
    return _mean(priors_for(segment, cfg)[ch], evidence(stats, ch), cfg)


def estimates(stats: Stats | None, segment: str | None, cfg: PreferenceConfig) -> tuple[float, ...]:
    """`estimate` of every channel, by channel index."""
    priors = priors_for(segment, cfg)
    return tuple(_mean(priors[c], evidence(stats, c), cfg) for c in range(len(CHANNELS)))


def ranked(
    stats: Stats | None, segment: str | None, cfg: PreferenceConfig, order: Sequence[int]
) -> tuple[int, ...]:
    """The channels of `order` (the candidates, e.g. `auto_order`) by estimate, best first;
    equal estimates keep `order`'s order, so ties break the same way on every run and worker."""
    est = estimates(stats, segment, cfg)
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
    """The result of a tracking step: new state, touches settled unanswered, any hit, and
    whether the response counted as the prospect's own choice of channel."""

    track: Track
    stats: Stats
    misses: tuple[Miss, ...]
    hit: bool = False
    chosen: bool = False


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
    track: Track | None,
    stats: Stats | None,
    ch: int,
    now: int,
    cfg: PreferenceConfig,
    *,
    chosen: bool = False,
) -> Attribution:
    """Credit a response on `ch` at `now` to the channel's open touch, if any (`hit`).

    One touch yields at most one hit or one miss; a hit within `fast_answer_minutes` of the
    touch adds `fast_answer_weight - 1` hits of weight (a prospect who answers at once lives on
    that channel). A response with no open touch (already answered, window closed, never
    touched) says nothing about a touch of ours; when the prospect `chosen` the channel
    themselves (a reply, an inbound text, a chat they opened: not an open or a click, which
    only follow our message) it adds `chosen_weight` hits of weight to it (`chosen`).
    """
    track, s, misses = settle(track, stats, now, cfg)[:3]
    t = list(track)
    if t[ch] != NONE and attribute(t[ch], now, now, cfg):
        fast = now - t[ch] < cfg.fast_answer_minutes * MINUTE_MS
        t[ch] = NONE
        t[-1] |= 1 << ch
        s = record(s, ch, True)
        if fast:
            s = credit(s, ch, _tenths(cfg.fast_answer_weight - 1))
        return Attribution(tuple(t), s, misses, hit=True)
    if chosen and cfg.chosen_weight > 0:
        return Attribution(track, credit(s, ch, _tenths(cfg.chosen_weight)), misses, chosen=True)
    return Attribution(track, s, misses)


def _tenths(weight: float) -> int:
    """A configured weight in `WEIGHT_UNIT`s, rounded: integer state, the same on every run."""
    return round(weight * WEIGHT_UNIT)


# -- choosing: wait for the best channel, and say why -------------------------------------------

WAIT: Final = "preference.wait"  # the decision rule of a touch that waits for its best channel


def worth_waiting(
    est: Sequence[float], best: int, now_best: int, cfg: PreferenceConfig, *, stated: bool
) -> bool:
    """Whether the best channel (held now) is worth waiting for rather than `now_best`: its
    estimate beats `now_best`'s by the relative margin `wait_min_gain`, or the prospect said
    they prefer it (`stated`). Whether it opens soon enough is the caller's (`wait_hours`)."""
    return stated or est[best] >= est[now_best] * (1 + cfg.wait_min_gain)
