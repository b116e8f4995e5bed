"""Fatigue: integer decay, what raises and lowers the score, classes, cap factor and pause."""

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.events import CHANNEL_INDEX, CHANNELS
from operators.fatigue import (
    Fatigue,
    FatigueConfig,
    cap_factor,
    decay,
    fatigue_class,
    on_complaint,
    on_engagement,
    on_opt_out,
    on_unanswered_touch,
    paused,
    scaled_cap,
    score,
    weight,
)
from operators.timeutil import DAY_MS, HOUR_MS, MINUTE_MS

CFG = FatigueConfig()
HALF_LIFE = 7 * DAY_MS
EMAIL, SMS, PHONE, CHAT, LINKEDIN = (CHANNEL_INDEX[c] for c in CHANNELS)
T = 1_772_463_600_000  # 2026-03-02T15:00:00Z

scores = st.integers(0, 50_000_000)
times = st.integers(0, 4_000_000_000_000)
elapsed = st.integers(0, 400 * DAY_MS)
states = st.tuples(scores, times)
channels = st.integers(0, len(CHANNELS) - 1)


# -- config --------------------------------------------------------------------------------------


def test_defaults_and_intrusiveness_order() -> None:
    assert CFG.half_life_days == 7
    assert CFG.saturated_cap_factor == 0.5
    assert [weight(c, CFG) for c in range(len(CHANNELS))] == [1.0, 1.5, 2.0, 1.0, 1.2]


def test_config_decodes_from_toml_and_a_partial_weights_table_keeps_the_rest() -> None:
    cfg = msgspec.toml.decode("half_life_days = 3\n[weights]\nphone = 4", type=FatigueConfig)
    assert cfg.half_life_days == 3.0
    assert weight(PHONE, cfg) == 4.0
    assert weight(SMS, cfg) == 1.5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("on_target = 6", "thresholds must rise"),
        ("pause = 5", "thresholds must rise"),
        ("half_life_days = 0", r"> 0"),
        ("saturated_cap_factor = 1.5", r"<= 1"),
        ("complaint_penalty = -1", r">= 0"),
        ("[weights]\nfax = 1", "fax"),
        ("halflife_days = 3", "unknown field"),
    ],
)
def test_bad_config_fails_with_the_key(text: str, match: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=match):
        msgspec.toml.decode(text, type=FatigueConfig)


# -- decay ---------------------------------------------------------------------------------------


@given(scores, times)
def test_one_half_life_halves_the_score_within_rounding(milli: int, at: int) -> None:
    decayed = decay((milli, at), at + HALF_LIFE, CFG)[0]
    assert abs(decayed - milli / 2) <= 1


@given(states, elapsed, elapsed)
def test_decay_is_monotone_non_increasing_in_elapsed_time(f: Fatigue, a: int, b: int) -> None:
    short, long = sorted((a, b))
    assert decay(f, f[1] + short, CFG)[0] >= decay(f, f[1] + long, CFG)[0]
    assert decay(f, f[1] + long, CFG)[0] <= f[0]


@given(states, elapsed, elapsed)
def test_decaying_in_two_steps_is_decaying_once(f: Fatigue, a: int, b: int) -> None:
    once = decay(f, f[1] + a + b, CFG)
    twice = decay(decay(f, f[1] + a, CFG), f[1] + a + b, CFG)
    assert abs(once[0] - twice[0]) <= 1
    assert twice[1] <= f[1] + a + b


def test_frequent_small_decays_neither_stall_nor_speed_up() -> None:
    # A minute of decay is far under half a thousandth: rounding each step must not stall.
    f: Fatigue = (1000, T)
    for minute in range(1, 7 * 24 * 60 + 1):
        f = decay(f, T + minute * MINUTE_MS, CFG)
    assert abs(f[0] - 500) <= 1
    assert decay(f, T + HALF_LIFE, CFG)[0] == f[0]


def test_decay_never_goes_back_in_time_and_rests_at_zero() -> None:
    assert decay((4000, T), T - DAY_MS, CFG) == (4000, T)
    assert decay(None, T, CFG) == (0, T)
    assert decay((1, T), T + HALF_LIFE, CFG) == (1, T)  # exactly half a thousandth: kept
    assert decay((1, T), T + HALF_LIFE + 1, CFG) == (0, T + HALF_LIFE + 1)


# -- what raises and lowers it -------------------------------------------------------------------


def test_unanswered_touches_add_their_channels_weight() -> None:
    assert on_unanswered_touch(None, EMAIL, T, CFG) == (1000, T)
    assert on_unanswered_touch(None, LINKEDIN, T, CFG) == (1200, T)
    assert on_unanswered_touch(None, SMS, T, CFG) == (1500, T)
    assert on_unanswered_touch(None, PHONE, T, CFG) == (2000, T)
    assert on_unanswered_touch(None, EMAIL, T, CFG, declining=True) == (2000, T)


@given(st.none() | states, elapsed)
def test_an_unanswered_call_raises_more_than_an_unanswered_email(
    f: Fatigue | None, dt: int
) -> None:
    now = (f[1] if f else T) + dt
    phone = on_unanswered_touch(f, PHONE, now, CFG)
    email = on_unanswered_touch(f, EMAIL, now, CFG)
    assert phone[0] > email[0] > decay(f, now, CFG)[0] - 1
    assert on_unanswered_touch(f, PHONE, now, CFG, declining=True)[0] > phone[0]


@given(st.none() | states, elapsed)
def test_engagement_lowers_and_complaints_and_opt_outs_raise(f: Fatigue | None, dt: int) -> None:
    now = (f[1] if f else T) + dt
    before = decay(f, now, CFG)[0]  # thousandths, rounded up: updates round to nearest
    assert on_engagement(f, now, CFG)[0] <= max(0, before - 2000)
    assert on_complaint(f, now, CFG)[0] >= before + 5000 - 1
    assert on_opt_out(f, now, CFG)[0] >= before + 3000 - 1
    assert score(on_opt_out(f, now, CFG), now, CFG) == on_opt_out(f, now, CFG)[0] / 1000


def test_an_update_dated_before_the_stored_time_applies_at_the_stored_time() -> None:
    f = on_unanswered_touch(None, EMAIL, T, CFG)
    assert on_unanswered_touch(f, EMAIL, T - DAY_MS, CFG) == (2000, T)


def test_a_week_of_full_cadence_left_unanswered_saturates_and_two_weeks_pause() -> None:
    f: Fatigue | None = None
    week = ((3, EMAIL), (4, PHONE), (5, EMAIL), (6, SMS), (7, EMAIL))  # day the window closed
    for w in range(2):
        for day, ch in week:
            f = on_unanswered_touch(f, ch, T + (7 * w + day) * DAY_MS, CFG)
        end = T + 7 * (w + 1) * DAY_MS
        assert fatigue_class(f, end, CFG) == "saturated"
        assert paused(f, end, CFG) == (w == 1)


operations = st.lists(
    st.tuples(st.sampled_from(("miss", "engage", "complain", "opt_out")), channels, elapsed),
    max_size=30,
)


@settings(deadline=None)
@given(operations)
def test_score_is_never_negative(ops: list[tuple[str, int, int]]) -> None:
    f: Fatigue | None = None
    now = T
    for op, ch, dt in ops:
        now += dt // 10
        if op == "miss":
            f = on_unanswered_touch(f, ch, now, CFG)
        elif op == "engage":
            f = on_engagement(f, now, CFG)
        elif op == "complain":
            f = on_complaint(f, now, CFG)
        else:
            f = on_opt_out(f, now, CFG)
        assert f[0] >= 0
        assert f[1] == now
        assert score(f, now + dt, CFG) >= 0


# -- classes, caps, pause ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milli", "klass", "factor", "is_paused"),
    [
        (0, "undersaturated", 1.0, False),
        (1999, "undersaturated", 1.0, False),
        (2000, "on_target", 1.0, False),
        (4999, "on_target", 1.0, False),
        (5000, "saturated", 0.5, False),
        (7999, "saturated", 0.5, False),
        (8000, "saturated", 0.5, True),
    ],
)
def test_thresholds_at_their_exact_boundaries(
    milli: int, klass: str, factor: float, is_paused: bool
) -> None:
    f = (milli, T)
    assert fatigue_class(f, T, CFG) == klass
    assert cap_factor(f, T, CFG) == factor
    assert paused(f, T, CFG) is is_paused


def test_class_falls_as_the_score_decays() -> None:
    f = (8000, T)
    assert paused(f, T, CFG)
    assert not paused(f, T + HOUR_MS, CFG)
    assert fatigue_class(f, T + HALF_LIFE, CFG) == "on_target"  # 4.0
    assert fatigue_class(f, T + 3 * HALF_LIFE, CFG) == "undersaturated"  # 1.0


@pytest.mark.parametrize(
    ("cap", "factor", "expected"),
    [
        (3, 0.5, 1),
        (2, 0.5, 1),
        (1, 0.5, 1),
        (0, 0.5, 0),
        (10, 0.5, 5),
        (100, 0.29, 29),
        (5, 1.0, 5),
    ],
)
def test_scaled_caps_floor_but_keep_one(cap: int, factor: float, expected: int) -> None:
    assert scaled_cap(cap, factor) == expected


@given(st.integers(1, 1000), st.floats(0.01, 1.0))
def test_scaled_cap_is_between_one_and_the_cap(cap: int, factor: float) -> None:
    assert 1 <= scaled_cap(cap, factor) <= cap
