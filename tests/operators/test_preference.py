"""Learned channel preference: priors, Beta estimates, stances, picks and attribution."""

from itertools import pairwise
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.events import CHANNEL_INDEX, CHANNELS, decode_event
from operators.preference import (
    MAX_COUNT,
    MAX_WEIGHT,
    NONE,
    WEIGHT_UNIT,
    PreferenceConfig,
    Stats,
    apply_stances,
    attribute,
    credit,
    default_preference_config,
    estimate,
    evidence,
    pick,
    priors_for,
    ranked,
    record,
    response_channel,
    settle,
    track_response,
    track_touch,
    worth_waiting,
)
from operators.timeutil import HOUR_MS

CFG = default_preference_config()
EMAIL, SMS, PHONE, CHAT, LINKEDIN = (CHANNEL_INDEX[c] for c in CHANNELS)
ALL = tuple(range(len(CHANNELS)))
AUTO_ORDER = (EMAIL, LINKEDIN, CHAT, SMS, PHONE)  # the policy's least intrusive first
SEGMENTS = ("digital_native", "digital_adopter", "traditional", "default", "unknown", None)
T = 1_772_463_600_000  # 2026-03-02T15:00:00Z
WINDOW = CFG.response_window_hours * HOUR_MS

channels = st.integers(0, len(CHANNELS) - 1)
counts = st.integers(0, MAX_COUNT)
stats_st = st.tuples(*[counts] * (2 * len(CHANNELS)))
segments = st.sampled_from(SEGMENTS)
orders = st.permutations(ALL)
masks = st.integers(0, (1 << len(CHANNELS)) - 1)
stances = st.sampled_from((NONE, *ALL))


def names(ranking: tuple[int, ...]) -> list[str]:
    return [CHANNELS[c] for c in ranking]


# -- config --------------------------------------------------------------------------------------


def test_default_config_holds_the_observed_rates_with_social_as_linkedin() -> None:
    assert PreferenceConfig() == CFG
    assert CFG.prior_strength == 10.0
    assert CFG.response_window_hours == 72
    assert priors_for("digital_native", CFG) == (0.23, 0.47, 0.12, 0.25, 0.34)
    assert priors_for("digital_adopter", CFG) == (0.41, 0.28, 0.18, 0.25, 0.19)
    assert priors_for("traditional", CFG) == (0.52, 0.19, 0.31, 0.25, 0.08)


def test_unknown_or_missing_segment_uses_default() -> None:
    assert priors_for(None, CFG) == priors_for("default", CFG) == priors_for("martian", CFG)


def test_config_decodes_from_toml_and_partial_segments_fall_back_to_default() -> None:
    text = """
    prior_strength = 4
    response_window_hours = 48
    [priors.default]
    email = 0.3
    sms = 0.2
    phone = 0.1
    chat = 0.1
    linkedin = 0.1
    [priors.vip]
    phone = 0.9
    """
    cfg = msgspec.toml.decode(text, type=PreferenceConfig)
    assert (cfg.prior_strength, cfg.response_window_hours) == (4.0, 48)
    assert priors_for("vip", cfg) == (0.3, 0.2, 0.9, 0.1, 0.1)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[priors.default]\nemail = 1.5", r"<= 1"),
        ("[priors.default]\nfax = 0.5", "fax"),
        ("[priors.default]\nemail = 0.5", r"\['sms', 'phone', 'chat', 'linkedin'\]"),
        ("prior_strength = 0", r"> 0"),
        ("response_window = 3", "unknown field"),
    ],
)
def test_bad_config_fails_with_the_key(text: str, match: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=match):
        msgspec.toml.decode(text, type=PreferenceConfig)


# -- estimates and ranking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ("digital_native", ["sms", "linkedin", "email", "phone"]),
        ("digital_adopter", ["email", "sms", "linkedin", "phone"]),
        ("traditional", ["email", "phone", "sms", "linkedin"]),
    ],
)
def test_without_evidence_the_ranking_is_the_segments_observed_order(
    segment: str, expected: list[str]
) -> None:
    assert names(ranked(None, segment, CFG, (EMAIL, SMS, PHONE, LINKEDIN))) == expected


def test_unmeasured_chat_ranks_third_in_every_cold_start() -> None:
    for segment in SEGMENTS:
        ranking = ranked(None, segment, CFG, ALL)
        assert ranking.index(CHAT) == 2, (segment, names(ranking))


def test_equal_estimates_keep_the_given_order() -> None:
    # default: linkedin and phone share 0.203.
    assert names(ranked(None, None, CFG, AUTO_ORDER))[3:] == ["linkedin", "phone"]
    assert names(ranked(None, None, CFG, ALL))[3:] == ["phone", "linkedin"]


def test_posterior_mean_is_the_beta_mean() -> None:
    stats = record(record(record(None, SMS, True), SMS, True), SMS, False)
    assert estimate(stats, SMS, "digital_native", CFG) == pytest.approx((4.7 + 2) / (10 + 3))
    assert estimate(None, PHONE, "traditional", CFG) == pytest.approx(0.31)


def test_hits_move_a_channel_up_and_misses_move_it_down() -> None:
    stats: Stats | None = None
    for _ in range(8):  # (1.2 + 8) / 18 = 0.51 > sms 0.47
        stats = record(stats, PHONE, True)
    assert ranked(stats, "digital_native", CFG, ALL)[0] == PHONE
    stats = None
    for _ in range(6):  # 4.7 / 16 = 0.29 < linkedin 0.34
        stats = record(stats, SMS, False)
    assert ranked(stats, "digital_native", CFG, ALL)[0] == LINKEDIN


@given(stats_st, channels, segments)
def test_a_hit_never_lowers_and_a_miss_never_raises_the_estimate(
    stats: Stats, ch: int, segment: str | None
) -> None:
    # Below the saturation point: halving moves an estimate back toward its prior by design.
    if max(stats[2 * ch : 2 * ch + 2]) >= MAX_COUNT:
        return
    before = estimate(stats, ch, segment, CFG)
    assert estimate(record(stats, ch, True), ch, segment, CFG) > before
    assert estimate(record(stats, ch, False), ch, segment, CFG) < before


@given(stats_st, channels, segments)
def test_estimates_stay_strictly_between_zero_and_one(
    stats: Stats, ch: int, segment: str | None
) -> None:
    assert 0.0 < estimate(stats, ch, segment, CFG) < 1.0


@given(stats_st, segments, orders)
def test_ranking_is_a_deterministic_descending_permutation_of_the_order(
    stats: Stats, segment: str | None, order: tuple[int, ...]
) -> None:
    ranking = ranked(stats, segment, CFG, order)
    assert ranking == ranked(tuple(stats), segment, CFG, list(order))
    assert sorted(ranking) == sorted(order)
    for a, b in pairwise(ranking):
        ea, eb = estimate(stats, a, segment, CFG), estimate(stats, b, segment, CFG)
        assert ea > eb or (ea == eb and order.index(a) < order.index(b))


def test_counts_saturate_halving_both_and_keeping_the_ratio() -> None:
    stats: Stats | None = None
    for i in range(4000):  # three hits to one miss, far past the cap
        stats = record(stats, EMAIL, i % 4 != 3)
        assert stats is not None
        assert max(stats) <= MAX_COUNT
    assert stats is not None
    hits, misses = stats[0], stats[1]
    assert hits + misses > 100
    assert hits / (hits + misses) == pytest.approx(0.75, abs=0.03)
    assert stats[2:] == (0,) * 8  # other channels untouched


def test_record_halves_with_rounding_half_up() -> None:
    stats = (MAX_COUNT, 3) + (0,) * 8
    assert record(stats, EMAIL, True)[:2] == (128, 2)


# -- stances and picks ---------------------------------------------------------------------------


def test_stances_override_the_learned_ranking() -> None:
    ranking = (SMS, LINKEDIN, EMAIL, CHAT, PHONE)
    assert apply_stances(ranking, NONE, NONE, 0) == ranking
    assert apply_stances(ranking, PHONE, NONE, 0) == (PHONE,)
    assert apply_stances(ranking, NONE, PHONE, 0) == (PHONE, SMS, LINKEDIN, EMAIL, CHAT)
    assert apply_stances(ranking, NONE, NONE, 1 << SMS | 1 << CHAT) == (LINKEDIN, EMAIL, PHONE)
    assert apply_stances(ranking, NONE, SMS, 1 << SMS) == (LINKEDIN, EMAIL, CHAT, PHONE)
    assert apply_stances(ranking, SMS, NONE, 1 << SMS) == ()
    assert apply_stances((EMAIL,), SMS, NONE, 0) == ()


@given(orders, stances, stances, masks)
def test_stances_only_remove_or_reorder(
    ranking: tuple[int, ...], only: int, prefer: int, avoid: int
) -> None:
    out = apply_stances(ranking, only, prefer, avoid)
    assert set(out) <= set(ranking)
    assert not any(avoid >> c & 1 for c in out)
    if only != NONE:
        assert out in ((only,), ())
    elif prefer != NONE and not avoid >> prefer & 1:
        assert out[0] == prefer
        assert list(out[1:]) == [c for c in ranking if c != prefer and not avoid >> c & 1]


def test_pick_takes_the_best_allowed_and_names_a_backup() -> None:
    ranking = (SMS, LINKEDIN, EMAIL, PHONE)
    assert pick(ranking, 1 << LINKEDIN | 1 << PHONE) == (LINKEDIN, PHONE)
    assert pick(ranking, 1 << EMAIL) == (EMAIL, NONE)
    assert pick(ranking, 0) == (NONE, NONE)
    wider = 1 << SMS | 1 << LINKEDIN | 1 << EMAIL
    assert pick(ranking, 1 << LINKEDIN, wider) == (LINKEDIN, EMAIL)  # backup after best


# -- attribution ---------------------------------------------------------------------------------


def ev(kind: str, **fields: Any) -> Any:
    doc = {"id": "e1", "prospect": "p", "ts": "2026-03-02T15:00:00Z", "type": kind, **fields}
    return decode_event(msgspec.json.encode(doc))


@pytest.mark.parametrize(
    ("kind", "fields", "channel"),
    [
        ("opened", {"channel": "email"}, "email"),
        ("clicked", {"channel": "email"}, "email"),
        ("replied", {"channel": "email"}, "email"),
        ("clicked", {"channel": "sms"}, "sms"),
        ("replied", {"channel": "sms", "sentiment": "negative"}, "sms"),
        ("call_outcome", {"outcome": "answered"}, "phone"),
        ("replied", {"channel": "chat"}, "chat"),
        ("chat_started", {}, "chat"),
        ("replied", {"channel": "linkedin"}, "linkedin"),
        ("opened", {"channel": "sms"}, None),
        ("clicked", {"channel": "linkedin"}, None),
        ("call_outcome", {"outcome": "voicemail"}, None),
        ("replied", {"channel": "email", "sentiment": "out_of_office"}, None),
        ("delivered", {"channel": "email"}, None),
        ("delivered", {"channel": "email", "command": "c1"}, None),
        ("content_download", {"asset": "guide"}, None),
        ("page_view", {"url": "/pricing"}, None),
    ],
)
def test_response_channel(kind: str, fields: dict[str, Any], channel: str | None) -> None:
    expected = NONE if channel is None else CHANNEL_INDEX[channel]
    assert response_channel(ev(kind, **fields)) == expected


def test_attribute_window_edges() -> None:
    assert attribute(T, T, T, CFG) is True
    assert attribute(T, T + WINDOW - 1, T + WINDOW - 1, CFG) is True
    assert attribute(T, T + WINDOW, T + WINDOW, CFG) is False
    assert attribute(T, None, T + WINDOW - 1, CFG) is None
    assert attribute(T, None, T + WINDOW, CFG) is False
    assert attribute(T, T - 1, T, CFG) is None  # before the touch: not an answer to it


def test_an_answered_touch_is_a_hit_once() -> None:
    a = track_touch(None, None, EMAIL, T, CFG)
    a = track_response(a.track, a.stats, EMAIL, T + HOUR_MS, CFG)
    assert a.hit
    assert a.stats[:2] == (1, 0)
    again = track_response(a.track, a.stats, EMAIL, T + 2 * HOUR_MS, CFG)  # a click after the open
    assert not again.hit
    assert again.stats == a.stats
    assert settle(again.track, again.stats, T + 10 * WINDOW, CFG).misses == ()


def test_an_unanswered_touch_is_a_miss_dated_when_its_window_closed() -> None:
    a = track_touch(None, None, SMS, T, CFG)
    assert settle(a.track, a.stats, T + WINDOW - 1, CFG).misses == ()
    late = settle(a.track, a.stats, T + 5 * WINDOW, CFG)
    assert late.misses == ((SMS, T + WINDOW, False),)
    assert late.stats[2 * SMS : 2 * SMS + 2] == (0, 1)
    reply = track_response(a.track, a.stats, SMS, T + WINDOW, CFG)  # too late to count
    assert (reply.hit, reply.misses) == (False, ((SMS, T + WINDOW, False),))


def test_misses_settle_oldest_first_and_a_miss_after_a_hit_is_declining() -> None:
    a = track_touch(None, None, EMAIL, T, CFG)
    a = track_response(a.track, a.stats, EMAIL, T + 1, CFG)
    a = track_touch(a.track, a.stats, PHONE, T + 2, CFG)
    a = track_touch(a.track, a.stats, EMAIL, T + 3, CFG)
    a = settle(a.track, a.stats, T + 2 * WINDOW, CFG)
    assert a.misses == ((PHONE, T + 2 + WINDOW, False), (EMAIL, T + 3 + WINDOW, True))
    a = track_touch(a.track, a.stats, EMAIL, T + 3 * WINDOW, CFG)
    assert settle(a.track, a.stats, T + 4 * WINDOW, CFG).misses[0][2] is False


def test_a_newer_touch_supersedes_an_open_one_which_counts_as_a_miss() -> None:
    a = track_touch(None, None, EMAIL, T, CFG)
    a = track_touch(a.track, a.stats, EMAIL, T + HOUR_MS, CFG)
    assert a.misses == ((EMAIL, T + HOUR_MS, False),)
    a = track_response(a.track, a.stats, EMAIL, T + 2 * HOUR_MS, CFG)
    assert a.hit
    assert a.stats[:2] == (1, 1)


def test_a_response_without_an_open_touch_is_no_evidence() -> None:
    a = track_response(None, None, LINKEDIN, T, CFG)
    assert not a.hit
    assert sum(a.stats) == 0


@settings(deadline=None)
@given(st.lists(st.tuples(st.booleans(), channels, st.integers(0, 2 * WINDOW)), max_size=40))
def test_every_touch_settles_as_exactly_one_hit_or_miss(
    steps: list[tuple[bool, int, int]],
) -> None:
    now, touches = T, 0
    a = settle(None, None, now, CFG)
    for is_touch, ch, gap in steps:
        now += gap
        step = track_touch if is_touch else track_response
        a = step(a.track, a.stats, ch, now, CFG)
        touches += is_touch
    a = settle(a.track, a.stats, now + WINDOW, CFG)
    # hits and misses (a fast answer's extra weight is kept apart, after them: issue 15)
    assert sum(a.stats[: 2 * len(CHANNELS)]) == touches
    assert a.track[: len(CHANNELS)] == (NONE,) * len(CHANNELS)


# -- behavioural evidence (issue 15) -------------------------------------------------------------


def _beta_mean(prior: float, hits: float, misses: float, strength: float) -> float:
    """The reference: Beta(prior * n + hits, (1 - prior) * n + misses), weights as hits."""
    return (prior * strength + hits) / (strength + hits + misses)


def _cfg(**fields: Any) -> PreferenceConfig:
    return msgspec.structs.replace(CFG, **fields)


def test_behaviour_weights_are_in_the_config_with_documented_defaults() -> None:
    assert (CFG.chosen_weight, CFG.fast_answer_minutes, CFG.fast_answer_weight) == (5.0, 60, 2.0)
    assert (CFG.wait_hours, CFG.wait_min_gain) == (12, 0.10)
    policy = msgspec.convert(
        {"chosen_weight": 2.5, "fast_answer_minutes": 5, "wait_hours": 0}, PreferenceConfig
    )
    assert (policy.chosen_weight, policy.fast_answer_minutes, policy.wait_hours) == (2.5, 5, 0)
    with pytest.raises(msgspec.ValidationError, match="fast_answer_weight"):
        msgspec.convert({"fast_answer_weight": 0.5}, PreferenceConfig)  # slower never counts less


@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5, 5.0, 12.0])
@pytest.mark.parametrize("segment", ["traditional", "digital_native", None])
def test_a_channel_the_prospect_chose_counts_chosen_weight_hits(
    weight: float, segment: str | None
) -> None:
    """An inbound text while our email waits for an answer: evidence for sms, worth
    `chosen_weight` hits, while the email stays open (it is settled on its own)."""
    cfg = _cfg(chosen_weight=weight)
    a = track_touch(None, None, EMAIL, T, cfg)
    b = track_response(a.track, a.stats, SMS, T + HOUR_MS, cfg, chosen=True)
    assert (b.hit, b.chosen) == (False, weight > 0)
    assert b.track == a.track  # the email is still awaiting its answer
    prior = priors_for(segment, cfg)[SMS]
    expected = _beta_mean(prior, weight, 0, cfg.prior_strength)
    assert estimate(b.stats, SMS, segment, cfg) == pytest.approx(expected)
    assert estimate(b.stats, EMAIL, segment, cfg) == estimate(a.stats, EMAIL, segment, cfg)
    assert evidence(b.stats, SMS) == (0, 0, weight)


def test_enough_choices_move_a_channel_above_the_segments_top() -> None:
    """A traditional prospect (email 0.52, sms 0.19) who keeps texting back ranks sms first."""
    a = settle(None, None, T, CFG)
    texts = 0
    while ranked(a.stats, "traditional", CFG, AUTO_ORDER)[0] != SMS:
        a = track_response(a.track, a.stats, SMS, T + texts * HOUR_MS, CFG, chosen=True)
        texts += 1
        assert texts < 10
    prior = priors_for("traditional", CFG)
    # the reference: the first count of choices whose Beta mean passes email's prior
    needed = next(
        k
        for k in range(10)
        if _beta_mean(prior[SMS], k * CFG.chosen_weight, 0, CFG.prior_strength) > prior[EMAIL]
    )
    assert texts == needed


def test_a_response_only_following_our_message_is_no_choice() -> None:
    """Without `chosen` (an open, a click), a response with no open touch stays no evidence."""
    a = track_response(None, None, SMS, T, CFG)
    assert (a.hit, a.chosen, sum(a.stats)) == (False, False, 0)


@pytest.mark.parametrize("minutes", [0, 1, 30, 59, 60, 61, 24 * 60])
def test_a_fast_answer_counts_fast_answer_weight_hits(minutes: int) -> None:
    a = track_touch(None, None, SMS, T, CFG)
    b = track_response(a.track, a.stats, SMS, T + minutes * 60_000, CFG)
    fast = minutes < CFG.fast_answer_minutes
    weight = CFG.fast_answer_weight - 1 if fast else 0.0
    assert b.hit
    assert evidence(b.stats, SMS) == (1, 0, weight)
    prior = priors_for(None, CFG)[SMS]
    expected = _beta_mean(prior, 1 + weight, 0, CFG.prior_strength)
    assert estimate(b.stats, SMS, None, CFG) == pytest.approx(expected)


def test_fast_answers_off_count_one_hit() -> None:
    for cfg in (_cfg(fast_answer_minutes=0), _cfg(fast_answer_weight=1.0)):
        a = track_touch(None, None, SMS, T, cfg)
        b = track_response(a.track, a.stats, SMS, T + 1, cfg)
        assert evidence(b.stats, SMS) == (1, 0, 0.0)


def test_a_fast_answer_ranks_above_a_slow_one() -> None:
    """Two channels of equal prior, each answered once: the faster answer ranks first."""
    cfg = _cfg(priors={"default": dict.fromkeys(CHANNELS, 0.3)})
    a = track_touch(None, None, EMAIL, T, cfg)
    a = track_touch(a.track, a.stats, SMS, T, cfg)
    a = track_response(a.track, a.stats, EMAIL, T + 10 * HOUR_MS, cfg)  # slow
    a = track_response(a.track, a.stats, SMS, T + 10 * HOUR_MS + 1, cfg, chosen=True)
    assert a.hit  # the open sms touch: a hit, not a choice
    assert ranked(a.stats, None, cfg, (EMAIL, SMS)) == (EMAIL, SMS)  # both slow: order
    b = track_touch(None, None, EMAIL, T, cfg)
    b = track_touch(b.track, b.stats, SMS, T, cfg)
    b = track_response(b.track, b.stats, EMAIL, T + 10 * HOUR_MS, cfg)  # slow
    b = track_response(b.track, b.stats, SMS, T + 5 * 60_000, cfg)  # within minutes
    assert ranked(b.stats, None, cfg, (EMAIL, SMS)) == (SMS, EMAIL)


def test_stats_written_before_behaviour_keep_their_meaning() -> None:
    """A checkpoint's `answers` without the weight tail reads as it did: the old Beta mean."""
    old: Stats = (3, 1, 0, 4, 1, 1, 0, 0, 2, 2)
    for ch in ALL:
        hits, misses = old[2 * ch], old[2 * ch + 1]
        for segment in SEGMENTS:
            prior = priors_for(segment, CFG)[ch]
            expected = _beta_mean(prior, hits, misses, CFG.prior_strength)
            assert estimate(old, ch, segment, CFG) == pytest.approx(expected)
    assert record(old, EMAIL, True) == (4, *old[1:])  # stays short until behaviour is credited
    grown = credit(old, CHAT, 30)
    assert grown[: len(old)] == old
    assert evidence(grown, CHAT) == (0, 0, 3.0)


def test_behavioural_weight_saturates_by_halving_with_the_counts() -> None:
    s = credit((0,) * 10, SMS, 0)
    s = record(record(s, SMS, True), SMS, False)
    s = credit(s, SMS, MAX_WEIGHT)
    assert evidence(s, SMS) == (1, 1, MAX_WEIGHT / WEIGHT_UNIT)
    s = credit(s, SMS, 1)  # past the bound: hits, misses and weight halve (half up)
    assert evidence(s, SMS) == (1, 1, (MAX_WEIGHT + 2) // 2 / WEIGHT_UNIT)


@settings(deadline=None)
@given(stats_st, channels, st.integers(1, 200), segments)
def test_a_choice_never_lowers_its_channel_nor_moves_another(
    stats: Stats, ch: int, tenths: int, segment: str | None
) -> None:
    after = credit(stats, ch, tenths)
    for c in ALL:
        before_c, after_c = estimate(stats, c, segment, CFG), estimate(after, c, segment, CFG)
        if c == ch:
            assert after_c >= before_c
            assert 0 < after_c < 1
        else:
            assert after_c == before_c


def test_stated_preferences_beat_any_evidence() -> None:
    """However strongly the prospect chose sms, "no texts" removes it and "email only" wins."""
    s: Stats | None = None
    for i in range(20):
        s = track_response(None, s, SMS, T + i, CFG, chosen=True).stats
    learned = ranked(s, "traditional", CFG, AUTO_ORDER)
    assert learned[0] == SMS
    assert SMS not in apply_stances(learned, NONE, NONE, 1 << SMS)
    assert apply_stances(learned, EMAIL, NONE, 0) == (EMAIL,)
    assert apply_stances(learned, NONE, PHONE, 0)[0] == PHONE


@pytest.mark.parametrize(("best", "now", "waits"), [(0.47, 0.34, True), (0.40, 0.38, False)])
def test_waiting_needs_a_clear_margin_or_a_stated_preference(
    best: float, now: float, waits: bool
) -> None:
    est = (now, best, 0.1, 0.1, 0.1)  # email now, sms held
    margin = best >= now * (1 + CFG.wait_min_gain)
    assert margin == waits
    assert worth_waiting(est, SMS, EMAIL, CFG, stated=False) is waits
    assert worth_waiting(est, SMS, EMAIL, CFG, stated=True) is True
    assert worth_waiting(est, SMS, EMAIL, _cfg(wait_min_gain=0.0), stated=False) is True


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0, 3.0])
def test_a_miss_weighs_miss_weight_misses(weight: float) -> None:
    cfg = _cfg(miss_weight=weight)
    a = track_touch(None, None, SMS, T, cfg)
    a = settle(a.track, a.stats, T + WINDOW, cfg)
    assert evidence(a.stats, SMS) == (0, 1, 0.0)  # the count itself is one miss whatever its weight
    prior = priors_for("digital_native", cfg)[SMS]
    expected = _beta_mean(prior, 0, weight, cfg.prior_strength)
    assert estimate(a.stats, SMS, "digital_native", cfg) == pytest.approx(expected)
    if weight == 0:
        assert estimate(a.stats, SMS, "digital_native", cfg) == pytest.approx(prior)
