"""The calibrated simulation of issue 15 (`benchmarks/sim/`): the model does what it says.

These tests check the simulator, not the engine's figures (those are reported, with their
intervals, by `benchmarks/sim_adaptive.py` and in the README): `basic` is answered at the rate
it was calibrated to, deviators deviate in the share asked, answers elsewhere come only from a
touch on another channel than the prospect's own, and the flags change what they name only.
"""

import math
from collections import Counter

import pytest

from benchmarks.sim import (
    ADAPTIVE,
    BASIC,
    PRIORS_ONLY,
    SEGMENTS,
    SimConfig,
    arms,
    basic_path,
    calibrate,
    make_prospects,
    paired,
    parse_mix,
    relative,
    simulate,
    summary,
)
from benchmarks.sim.model import behaviour, silent_probability
from benchmarks.sim.run import COMPLAINT, LETTER, OPT_OUT

N = 1500


def _binomial_tolerance(p: float, n: int) -> float:
    """Four standard errors of a share p over n draws: a seeded run outside it is a defect."""
    return 4 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("target", [0.2, 0.31])
@pytest.mark.parametrize("mix", ["", "digital_native=3,traditional=1"])
def test_basic_is_answered_at_the_calibrated_rate(target: float, mix: str) -> None:
    """The calibration is exact in expectation over the population; the run differs by its
    sampling noise and by the opt-outs and complaints that end some sequences early (at most
    basic's ~6 touches x 1.2 %, i.e. a few points of the prospects, and only downwards)."""
    segment_mix = parse_mix(mix) if mix else SimConfig().segment_mix
    cfg = SimConfig(prospects=N, seed=3, base_response=target, segment_mix=segment_mix)
    chosen = arms(names=(BASIC,))
    prospects = make_prospects(cfg)
    scale = calibrate(prospects, cfg, basic_path(chosen))
    expected = 1 - sum(silent_probability(p, scale, cfg, basic_path(chosen)) for p in prospects) / N
    assert expected == pytest.approx(target, abs=1e-9)
    measured = summary(simulate(cfg, chosen)[BASIC])["response_rate"]
    assert target - 0.04 - _binomial_tolerance(target, N) <= measured
    assert measured <= target + _binomial_tolerance(target, N)


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5])
def test_deviators_come_in_the_share_asked_and_only_they_change(share: float) -> None:
    base = make_prospects(SimConfig(prospects=N, seed=5, deviate_share=0.0))
    cfg = SimConfig(prospects=N, seed=5, deviate_share=share)
    found = make_prospects(cfg)
    deviators = [p for p in found if p.hidden != p.segment]
    assert abs(len(deviators) / N - share) <= _binomial_tolerance(share, N)
    for p, q in zip(found, base, strict=True):
        assert (p.segment, p.timezone, p.enroll_ms, p.propensity) == (
            q.segment,
            q.timezone,
            q.enroll_ms,
            q.propensity,
        )
        if p.hidden == p.segment:
            assert p.affinity == q.affinity


def test_the_segment_mix_is_apportioned_exactly() -> None:
    mix = parse_mix("digital_native=2,digital_adopter=1,traditional=1")
    found = Counter(p.segment for p in make_prospects(SimConfig(prospects=400, segment_mix=mix)))
    total = sum(mix.values())
    assert {s: found[s] for s in SEGMENTS} == {s: round(400 * mix[s] / total) for s in SEGMENTS}
    with pytest.raises(ValueError, match="unknown segment"):
        parse_mix("millennial=1")


def test_answers_elsewhere_need_a_touch_off_the_prospects_own_channel() -> None:
    cfg = SimConfig(prospects=600, seed=2, cross_share=0.0)
    run = simulate(cfg, arms(names=(BASIC,)))[BASIC]
    assert all(o.elsewhere == 0 for o in run.outcomes)
    cfg = SimConfig(prospects=600, seed=2, cross_share=0.5)
    run = simulate(cfg, arms(names=(BASIC,)))[BASIC]
    assert sum(o.elsewhere for o in run.outcomes) > 0
    for p, o in zip(make_prospects(cfg), run.outcomes, strict=True):
        b = behaviour(p, 1.0, cfg)
        assert b.cross == pytest.approx(min(0.95, 0.5 * b.answer[p.top]))
        if set(o.path) == {p.top[0]} and p.top != "chat":  # only ever touched on their own
            assert o.elsewhere == 0


def test_opt_outs_and_complaints_follow_only_the_touches() -> None:
    """The adverse draws depend on the channel alone, in every arm: an arm gets more only by
    touching more or more intrusively. Each arm's count of prospects who opted out (complained)
    is within noise of what its own touches predict: 1 - prod(1 - rate(channel)) per prospect."""
    cfg = SimConfig(prospects=N, seed=4)
    channel = {letter: ch for ch, letter in LETTER.items()}
    for r in simulate(cfg, arms(names=(BASIC, ADAPTIVE))).values():
        for rates, flag in ((OPT_OUT, "opted_out"), (COMPLAINT, "complained")):
            chances = [1 - math.prod(1 - rates[channel[c]] for c in o.path) for o in r.outcomes]
            expected = sum(chances)
            sd = math.sqrt(sum(q * (1 - q) for q in chances))
            measured = sum(getattr(o, flag) for o in r.outcomes)
            assert abs(measured - expected) <= 4 * sd, (r.arm, flag, measured, expected)


def test_paired_ratio_and_difference_agree() -> None:
    cfg = SimConfig(prospects=600, seed=6)
    runs = [simulate(cfg, arms(names=(BASIC, ADAPTIVE, PRIORS_ONLY)))]
    diff = paired(runs[0][ADAPTIVE], runs[0][BASIC], "response_rate")
    base = summary(runs[0][BASIC])["response_rate"]
    ratio = relative(runs, ADAPTIVE, BASIC, "response_rate")
    assert ratio.ratio == pytest.approx(1 + diff.diff / base)
    assert ratio.low <= ratio.ratio <= ratio.high


def test_a_second_campaign_meets_what_the_first_taught() -> None:
    """With two campaigns the learning arm's second campaign differs from the priors-only
    arm's for some prospects (the engine uses what it learned); with one it cannot."""
    one = simulate(SimConfig(prospects=300, seed=1), arms(names=(ADAPTIVE, PRIORS_ONLY)))
    two = simulate(
        SimConfig(prospects=300, seed=1, campaigns=2), arms(names=(ADAPTIVE, PRIORS_ONLY))
    )
    changed = [
        a.path != b.path
        for a, b in zip(two[ADAPTIVE].outcomes, two[PRIORS_ONLY].outcomes, strict=True)
    ]
    assert any(changed)
    assert all(not o.later for o in one[ADAPTIVE].outcomes)
    assert any(o.later for o in two[ADAPTIVE].outcomes)
