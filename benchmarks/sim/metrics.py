"""What an arm did to each prospect, and paired comparisons between arms (and over seeds)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from operators.events import CHANNELS


class Outcome(NamedTuple):
    """What happened to one prospect in one arm."""

    segment: str
    touches: int
    responses: int  # touches answered (open, reply, answered call, an answer elsewhere)
    responded: bool  # answered at least one touch
    conversed: bool  # replied (not STOP) or answered a call: a conversation for a person
    opted_out: bool
    complained: bool
    after_conversation: int  # touches sent after the prospect replied or answered a call
    path: str  # the channels touched, in order, one letter each (`LETTER`)
    deviator: bool = False  # hidden preferences of another segment than the declared one
    elsewhere: int = 0  # answers on the prospect's own top channel to a touch on another
    later: bool = False  # answered a touch of the last campaign (`SimConfig.campaigns` > 1)


@dataclass
class ArmResult:
    arm: str
    label: str
    outcomes: list[Outcome] = field(default_factory=list)
    channels: Counter[str] = field(default_factory=Counter)  # touches by channel
    segment_channels: dict[str, Counter[str]] = field(default_factory=dict)
    step_blocked: Counter[str] = field(default_factory=Counter)  # by rule (+ " (follow-up)")
    step_deferred: Counter[str] = field(default_factory=Counter)  # by rule (+ " (follow-up)")
    kinds: Counter[str] = field(default_factory=Counter)  # touches: sequence, escalation:sms, ...
    auto_touches: int = 0  # touches whose channel the engine chose (`preferred` or `auto`)
    quiet_diverted: int = 0  # ... not on the segment's top channel, as quiet hours held it
    scale: float | None = None  # the calibrated per-touch scale (None: uncalibrated)


Metric = Callable[[Outcome], float]
METRICS: Final[dict[str, Metric]] = {
    "response_rate": lambda o: float(o.responded),
    "conversation_rate": lambda o: float(o.conversed),
    "opt_out_rate": lambda o: float(o.opted_out),
    "complaint_rate": lambda o: float(o.complained),
    "touches_per_prospect": lambda o: float(o.touches),
    "last_campaign_response_rate": lambda o: float(o.later),
}


def _rows(result: ArmResult, segment: str | None, deviator: bool | None) -> list[Outcome]:
    return [
        o
        for o in result.outcomes
        if (segment is None or o.segment == segment)
        and (deviator is None or o.deviator == deviator)
    ]


def summary(
    result: ArmResult, segment: str | None = None, deviator: bool | None = None
) -> dict[str, float]:
    """Rates over prospects (a prospect counts once), per-touch ratios."""
    rows = _rows(result, segment, deviator)
    n = len(rows)
    touches = sum(o.touches for o in rows)
    responses = sum(o.responses for o in rows)
    opt_outs = sum(o.opted_out for o in rows)
    complaints = sum(o.complained for o in rows)
    out: dict[str, float] = {
        name: sum(f(o) for o in rows) / n if n else 0.0 for name, f in METRICS.items()
    }
    out["prospects"] = n
    out["touches"] = touches
    out["responses_per_touch"] = responses / touches if touches else 0.0
    out["opt_outs_per_1000_touches"] = 1000 * opt_outs / touches if touches else 0.0
    out["complaints_per_1000_touches"] = 1000 * complaints / touches if touches else 0.0
    out["touches_after_conversation"] = sum(o.after_conversation for o in rows) / n if n else 0.0
    out["answered_elsewhere"] = sum(o.elsewhere for o in rows) / n if n else 0.0
    return out


def path_changes(a: ArmResult, b: ArmResult) -> float:
    """The share of prospects whose channels (in order) differ between two arms."""
    pairs = list(zip(a.outcomes, b.outcomes, strict=True))
    return sum(x.path != y.path for x, y in pairs) / len(pairs)


def channel_mix(result: ArmResult, segment: str | None = None) -> dict[str, float]:
    counts = result.channels if segment is None else result.segment_channels[segment]
    total = sum(counts.values()) or 1
    return {ch: counts[ch] / total for ch in CHANNELS}


class Paired(NamedTuple):
    """Arm a minus arm b on one metric, over the same prospects: mean and its standard error."""

    diff: float
    se: float

    @property
    def low(self) -> float:  # a 95 % interval
        return self.diff - 1.96 * self.se

    @property
    def high(self) -> float:
        return self.diff + 1.96 * self.se


def _diffs(
    a: ArmResult, b: ArmResult, metric: str, segment: str | None, deviator: bool | None
) -> list[float]:
    f = METRICS[metric]
    return [
        f(x) - f(y)
        for x, y in zip(a.outcomes, b.outcomes, strict=True)
        if (segment is None or x.segment == segment)
        and (deviator is None or x.deviator == deviator)
    ]


def _paired(diffs: Sequence[float]) -> Paired:
    if not diffs:
        return Paired(0.0, 0.0)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return Paired(statistics.fmean(diffs), se)


def paired(
    a: ArmResult,
    b: ArmResult,
    metric: str,
    segment: str | None = None,
    deviator: bool | None = None,
) -> Paired:
    """Per-prospect differences (common random numbers), so the noise is that of the pairs."""
    return _paired(_diffs(a, b, metric, segment, deviator))


def paired_seeds(
    runs: Sequence[dict[str, ArmResult]],
    a: str,
    b: str,
    metric: str,
    deviator: bool | None = None,
) -> Paired:
    """Arm `a` minus arm `b` pooled over several seeds' populations: every prospect of every
    seed is one independent pair (the seeds draw disjoint populations)."""
    diffs: list[float] = []
    for run in runs:
        diffs.extend(_diffs(run[a], run[b], metric, None, deviator))
    return _paired(diffs)


class Relative(NamedTuple):
    """Arm a's rate over arm b's, pooled over seeds, with its 95 % interval."""

    ratio: float
    low: float
    high: float


def relative(runs: Sequence[dict[str, ArmResult]], a: str, b: str, metric: str) -> Relative:
    """The ratio of means R = mean(a) / mean(b) over paired prospects; its standard error by
    the delta method on the pairs, z_i = (a_i - R b_i) / mean(b), which keeps the pairing."""
    f = METRICS[metric]
    pairs = [
        (f(x), f(y)) for run in runs for x, y in zip(run[a].outcomes, run[b].outcomes, strict=True)
    ]
    mean_a = statistics.fmean(x for x, _ in pairs)
    mean_b = statistics.fmean(y for _, y in pairs)
    if mean_b == 0:
        return Relative(math.inf, math.inf, math.inf)
    r = mean_a / mean_b
    z = [(x - r * y) / mean_b for x, y in pairs]
    se = statistics.stdev(z) / math.sqrt(len(z)) if len(z) > 1 else 0.0
    return Relative(r, r - 1.96 * se, r + 1.96 * se)
