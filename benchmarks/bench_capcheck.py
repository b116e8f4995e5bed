"""Cap check: `Rules.verdict` for one candidate touch vs a Redis moving-window limiter.

What is measured
    ns per call of `rules.verdict(state, ch, now, flags)`: the full verdict for one candidate
    sms touch (suppression, consent, preference, cooldowns, the week and day cap windows, the
    24 h gap and quiet hours in the prospect's zone), against a realistic 7-day history. The
    state is built by applying real events through `Engine.apply` (a profile in
    America/New_York, sms and phone consent, four touches over the past six days on email,
    linkedin, sms and email, the latest 30 h ago), so it has exactly the shape production
    state has. `now` is a Wednesday 14:00 in New York.

    Headline case: the touch is ALLOWED. That is the most expensive path: no rule stops it
    early, so every check runs, quiet hours included (a `zoneinfo` conversion). A BLOCKED case
    (the same history with the last touch 20 h ago, stopped by `cap.total.day`) is reported too.

Baseline (same run)
    What a user would otherwise reach for: the `limits` package, `MovingWindowRateLimiter` on
    `RedisStorage`, against a redis-server this script starts itself (`EmbeddedRedis`; never a
    developer's 127.0.0.1:6379). Per candidate it checks the same three windows the policy
    has, `test()` (check without consuming) for each: sms per week (2 per 168 h), all channels
    per week (5 per 168 h) and all channels per day (1 per 24 h) - three round trips. The
    windows are pre-filled with the same history through `hit()` at back-dated times, so the
    moving windows hold real entries and the limiter's Lua scripts do their real work; the
    baseline's verdict is asserted to agree with ours. The baseline does strictly less than the
    subject (no consent, gap, quiet hours or suppression), so the comparison favours it.

Method
    timeit-style autorange (as msgspec's benchmarks): each measurement loops long enough to
    last >= 0.2 s; subject and baseline are measured alternately `--repeat` times after a
    warm-up, and medians are reported. speedup = baseline median / subject median.

Usage: bench_capcheck.py [--json] [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from typing import Any, Final
from unittest import mock
from zoneinfo import ZoneInfo

import _common
import limits.storage.redis as limits_redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from connectors.redis_server import EmbeddedRedis
from operators import events as ev
from operators.engine import Engine
from operators.events import CHANNEL_INDEX, Channel
from operators.policy import load_policy
from operators.rules import Rules
from operators.state import ProspectState
from operators.timeutil import to_ms

NEW_YORK: Final = ZoneInfo("America/New_York")
NOW: Final = datetime(2024, 5, 8, 14, 0, tzinfo=NEW_YORK)  # a Wednesday afternoon
PROSPECT: Final = "p-bench-000001"
CANDIDATE: Final[Channel] = "sms"
# The 7-day history: (age, channel). Oldest first; the last touch is 30 h old (allowed case).
History = tuple[tuple[timedelta, Channel], ...]
HISTORY: Final[History] = (
    (timedelta(days=6), "email"),
    (timedelta(days=4), "linkedin"),
    (timedelta(days=2, hours=5), "sms"),
    (timedelta(hours=30), "email"),
)
BLOCKED_LAST_AGE: Final = timedelta(hours=20)  # blocked case: last touch 20 h ago


def build_state(engine: Engine, history: History) -> ProspectState:
    """A prospect's state made the way production makes it: by applying events."""
    state = ProspectState()
    state.prospect = PROSPECT
    start = NOW - timedelta(days=7)
    apply = engine.apply
    apply(
        state,
        ev.Profile(
            id="e-profile",
            prospect=PROSPECT,
            ts=start,
            timezone="America/New_York",
            phone="+12125550123",
            email="pat@example.com",
        ),
    )
    consents: tuple[Channel, ...] = ("sms", "phone")
    for i, channel in enumerate(consents):
        consent = ev.Consent(
            id=f"e-consent-{i}", prospect=PROSPECT, ts=start, channel=channel, granted=True
        )
        apply(state, consent)
    for i, (age, channel) in enumerate(history):
        sent = ev.TouchSent(
            id=f"e-sent-{i}", prospect=PROSPECT, ts=NOW - age, channel=channel, by="rep"
        )
        apply(state, sent)
    return state


def _item(count: int, hours: int) -> RateLimitItem:
    return parse(f"{count}/{hours} hours")


class LimitsBaseline:
    """The per-candidate check a `limits` user would write: three moving-window `test()`s."""

    def __init__(self, url: str, rules: Rules) -> None:
        policy = rules.policy
        week = next(w for w in policy.caps if w.name == "week")
        day = next(w for w in policy.caps if w.name == "day")
        if week.total is None or day.total is None:
            msg = "bench_capcheck: the policy's week and day windows need a total cap"
            raise ValueError(msg)
        self.per_channel = {c: _item(n, week.hours) for c, n in week.per_channel.items()}
        self.total_week = _item(week.total, week.hours)
        self.total_day = _item(day.total, day.hours)
        self.storage = RedisStorage(url)
        self.limiter = MovingWindowRateLimiter(self.storage)

    def prefill(self, history: History) -> None:
        """`hit()` every window for every past touch, at its real (back-dated) time."""
        self.storage.reset()
        wall = time.time()
        for age, channel in history:
            at = wall - age.total_seconds()
            clock = mock.Mock(time=lambda at=at: at)
            with mock.patch.object(limits_redis, "time", clock):  # only limits' own clock
                self.limiter.hit(self.per_channel[channel], PROSPECT, channel)
                self.limiter.hit(self.total_week, PROSPECT)
                self.limiter.hit(self.total_day, PROSPECT)

    def check(self, channel: Channel) -> bool:
        """True if the touch may go: all three windows have room (three round trips)."""
        test = self.limiter.test
        channel_ok = test(self.per_channel[channel], PROSPECT, channel)
        week_ok = test(self.total_week, PROSPECT)
        day_ok = test(self.total_day, PROSPECT)
        return channel_ok and week_ok and day_ok

    def close(self) -> None:
        self.storage.storage.close()


def measure(repeat: int) -> dict[str, Any]:
    """Run both sides, alternating, and return the medians and raw samples."""
    engine = Engine(load_policy())
    rules = engine.rules
    ch = CHANNEL_INDEX[CANDIDATE]
    now = to_ms(NOW)
    allowed = build_state(engine, HISTORY)
    blocked = build_state(engine, (*HISTORY[:-1], (BLOCKED_LAST_AGE, HISTORY[-1][1])))
    verdict_allowed = rules.verdict(allowed, ch, now, 0)
    verdict_blocked = rules.verdict(blocked, ch, now, 0)
    if verdict_allowed != (None, None) or verdict_blocked[0] != "cap.total.day":
        msg = f"scenario drifted: allowed={verdict_allowed}, blocked={verdict_blocked}"
        raise RuntimeError(msg)
    bound: dict[str, Any] = {"verdict": rules.verdict, "ch": ch, "now": now, "flags": 0}
    subject = {"state": allowed, **bound}
    subject_blocked = {"state": blocked, **bound}
    stmt = "verdict(state, ch, now, flags)"

    with EmbeddedRedis() as server:
        baseline = LimitsBaseline(server.url, rules)
        try:
            baseline.prefill(HISTORY)
            if not baseline.check(CANDIDATE):
                msg = "limits baseline disagrees: it blocks the allowed touch"
                raise RuntimeError(msg)
            check = baseline.check
            base_stmt = {"check": check, "channel": CANDIDATE}
            for _ in range(200):  # warm-up: connection pool, script cache, branch predictors
                check(CANDIDATE)
                rules.verdict(allowed, ch, now, 0)
            _common.autorange_ns(stmt, subject)
            samples: dict[str, list[float]] = {"subject": [], "blocked": [], "baseline": []}
            for _ in range(repeat):
                samples["subject"].append(_common.autorange_ns(stmt, subject))
                samples["baseline"].append(_common.autorange_ns("check(channel)", base_stmt))
                samples["blocked"].append(_common.autorange_ns(stmt, subject_blocked))
            windows = {
                name: baseline.limiter.get_window_stats(item, *keys).remaining
                for name, item, keys in (
                    ("sms_week", baseline.per_channel[CANDIDATE], (PROSPECT, CANDIDATE)),
                    ("total_week", baseline.total_week, (PROSPECT,)),
                    ("total_day", baseline.total_day, (PROSPECT,)),
                )
            }
        finally:
            baseline.close()

    ns = _common.median(samples["subject"])
    base_ns = _common.median(samples["baseline"])
    return {
        "ns_per_check": round(ns, 1),
        "baseline_ns_per_check": round(base_ns, 1),
        "speedup": round(base_ns / ns, 1),
        "case": f"{CANDIDATE} touch allowed (full path: every rule checked)",
        "blocked_ns_per_check": round(_common.median(samples["blocked"]), 1),
        "blocked_rule": verdict_blocked[0],
        "baseline_round_trips": 3,
        "baseline_remaining": windows,
        "repeat": repeat,
        "samples_ns": {k: [round(v, 1) for v in vs] for k, vs in samples.items()},
        "machine": _common.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=7, help="measurements per side (median)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    result = measure(args.repeat)
    if args.json:
        _common.print_json(result)
        return
    samples = result["samples_ns"]
    _common.print_table(
        f"Cap check, one candidate {CANDIDATE} touch, 7-day history (median of {args.repeat})",
        ("check", "ns/check", "min", "max", "vs baseline"),
        [
            (
                "Rules.verdict, allowed (full path)",
                f"{result['ns_per_check']:,.0f}",
                f"{min(samples['subject']):,.0f}",
                f"{max(samples['subject']):,.0f}",
                f"{result['speedup']:.1f}x faster",
            ),
            (
                f"Rules.verdict, blocked ({result['blocked_rule']})",
                f"{result['blocked_ns_per_check']:,.0f}",
                f"{min(samples['blocked']):,.0f}",
                f"{max(samples['blocked']):,.0f}",
                f"{result['baseline_ns_per_check'] / result['blocked_ns_per_check']:.1f}x faster",
            ),
            (
                "limits MovingWindow on Redis, 3x test()",
                f"{result['baseline_ns_per_check']:,.0f}",
                f"{min(samples['baseline']):,.0f}",
                f"{max(samples['baseline']):,.0f}",
                "1.0x",
            ),
        ],
    )
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}")


if __name__ == "__main__":
    main()
