"""Every number in the policy is bounded, so no valid config can overflow later (issue 10).

Before the bounds, `caps hours = 100000000` with `requests.max_defer_hours = 1000000000` passed
validation and a replay then died on an OverflowError formatting the deferral's `until`.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflows.replay import replay
from operators.engine import Engine
from operators.errors import ConfigError
from operators.events import decode_event
from operators.policy import (
    MAX_DAYS,
    MAX_HOURS,
    TS_MAX,
    TS_MIN,
    Policy,
    load_policy,
    parse_policy,
)
from operators.state import ProspectState
from operators.timeutil import DAY_MS, HOUR_MS, format_ts, parse_ts, to_ms
from tests.streams import START, event_streams

inspect = msgspec.inspect


def _unbounded(t: inspect.Type, path: str, skip: tuple[type, ...] = ()) -> list[str]:
    """Paths of the numbers under `t` without an upper bound (structs in `skip` not entered)."""
    if isinstance(t, inspect.IntType | inspect.FloatType):
        return [path] if t.le is None and t.lt is None else []
    if isinstance(t, inspect.StructType):
        if issubclass(t.cls, skip):
            return []
        return [p for f in t.fields for p in _unbounded(f.type, f"{path}.{f.name}", skip)]
    if isinstance(t, inspect.DictType):
        return _unbounded(t.value_type, f"{path}[*]", skip)
    if isinstance(t, inspect.ListType):
        return _unbounded(t.item_type, f"{path}[*]", skip)
    if isinstance(t, inspect.UnionType):
        return [p for member in t.types for p in _unbounded(member, path, skip)]
    return []


def test_every_number_of_the_policy_module_has_an_upper_bound() -> None:
    from operators.fatigue import FatigueConfig
    from operators.preference import PreferenceConfig

    skip = (FatigueConfig, PreferenceConfig)  # not defined here: see the next test
    assert _unbounded(inspect.type_info(Policy), "$", skip) == []


def test_every_number_of_the_fatigue_and_preference_sections_has_an_upper_bound() -> None:
    assert _unbounded(inspect.type_info(Policy), "$") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[caps]]\nname = "week"\nhours = 100000000\n[requests]\nmax_defer_hours = 1000000000',
            "Expected `int` <= 87600 - at `$.caps[0].hours`",
        ),
        ("[requests]\nmax_defer_hours = 1000000000", "<= 87600 - at `$.requests.max_defer_hours`"),
        ("[gap]\nhours = 87601", "<= 87600 - at `$.gap.hours`"),
        ("[cooldowns]\ncomplaint_days = 3651", "<= 3650 - at `$.cooldowns.complaint_days`"),
        (
            "[orchestration]\nout_of_office_pause_days = 100000000",
            "<= 3650 - at `$.orchestration.out_of_office_pause_days`",
        ),
        (
            "[orchestration]\nstep_max_defer_hours = 87601",
            "<= 87600 - at `$.orchestration.step_max_defer_hours`",
        ),
        (
            '[[caps]]\nname = "week"\nhours = 1\nper_channel = { sms = 10001 }',
            "<= 10000 - at `$.caps[0].per_channel.sms`",
        ),
        (
            '[sequences.slow]\nsteps = [{ after_hours = 87601, channel = "sms", topic = "t" }]',
            "<= 87600 - at `$.sequences.slow.steps[0].after_hours`",
        ),
        ("[limits]\ndedupe_ids = 10001", "<= 10000 - at `$.limits.dedupe_ids`"),
        ("[streams]\nclaim_idle_ms = 86400001", "<= 86400000 - at `$.streams.claim_idle_ms`"),
        (
            "[limits]\nlatest_ts = 9999-12-31T00:00:00Z",
            "must lie in 1970-01-01..9900-01-01 - at `$.limits.latest_ts`",
        ),
        (
            "[limits]\nearliest_ts = 1969-12-31T23:59:59Z",
            "must lie in 1970-01-01..9900-01-01 - at `$.limits.earliest_ts`",
        ),
        (
            "[limits]\nearliest_ts = 2100-01-01T00:00:00Z",
            "must be before latest_ts 2100-01-01T00:00:00+00:00 - at `$.limits.earliest_ts`",
        ),
        (
            "[limits]\nlatest_ts = 2100-01-01T00:00:00",
            "timezone component - at `$.limits.latest_ts`",
        ),
    ],
)
def test_overflow_prone_values_are_rejected_at_load(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "big.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(config)
    assert str(info.value).startswith(f"invalid config {config}: ")
    assert str(info.value).endswith(message)


def test_sequences_are_bounded_in_length() -> None:
    steps = ", ".join(['{ channel = "email", topic = "t" }'] * 101)
    with pytest.raises(ConfigError, match=r"length <= 100 - at `\$\.sequences\.long\.steps`$"):
        parse_policy(f"[sequences.long]\nsteps = [{steps}]")


def _maximal() -> dict[str, Any]:
    """A policy file with every bounded int of every section at its maximum, the widest event
    time range, and a sequence whose later steps each wait the longest after the previous."""
    doc: dict[str, Any] = {}
    for section in inspect.type_info(Policy).fields:
        if isinstance(section.type, inspect.StructType):
            doc[section.name] = {
                f.name: f.type.le
                for f in section.type.fields
                if isinstance(f.type, inspect.IntType) and f.type.le is not None
            }
    doc["caps"] = [
        {"name": "week", "hours": MAX_HOURS, "total": 5, "per_channel": {"email": 3}},
        {"name": "day", "hours": MAX_HOURS, "total": 1},
    ]
    doc["limits"] |= {"earliest_ts": TS_MIN, "latest_ts": TS_MAX}
    first = {"after_hours": 0, "channel": "email", "topic": "t"}
    doc["sequences"] = {"slow": {"steps": [first, *[{**first, "after_hours": MAX_HOURS}] * 2]}}
    return doc


MAXIMAL = parse_policy(tomli_w.dumps(_maximal()), "maximal.toml")
LAST = to_ms(TS_MAX) - 3 * DAY_MS  # the events: in the last days the policy accepts


def test_the_maximal_policy_is_at_the_bounds() -> None:
    assert (MAXIMAL.requests.max_defer_hours, MAXIMAL.gap.hours) == (MAX_HOURS, MAX_HOURS)
    assert MAXIMAL.cooldowns.complaint_days == MAX_DAYS
    assert MAXIMAL.orchestration.out_of_office_pause_days == MAX_DAYS
    assert (MAXIMAL.limits.earliest_ts, MAXIMAL.limits.latest_ts) == (TS_MIN, TS_MAX)


def _event(n: int, prospect: str, at: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "type": kind, "prospect": prospect, "ts": format_ts(at), **fields}


def test_replay_at_the_maximum_values_does_not_crash(tmp_path: Path) -> None:
    """The issue's case at the bounds: requests deferred by a ten-year cap, next to the other
    ten-year horizons (a cooldown, an out-of-office pause, sequence waits), on the last days
    the policy accepts, with every timer due by then fired."""
    h, d = HOUR_MS, DAY_MS  # requests wait a day (arbitration_seconds at its maximum)
    events = [
        _event(1, "p", LAST, "profile", timezone="Pacific/Kiritimati"),
        _event(2, "p", LAST + h, "touch_request", channel="email", campaign="c"),
        _event(3, "p", LAST + 2 * h, "touch_request", channel="email", campaign="c"),
        _event(4, "q", LAST, "touch_request", channel="email", campaign="c"),
        _event(5, "q", LAST + d + h, "enroll", sequence="slow"),
        _event(6, "q", LAST + d + 2 * h, "replied", channel="email", sentiment="out_of_office"),
        _event(7, "r", LAST, "touch_request", channel="email", campaign="c"),
        _event(8, "r", LAST + d + h, "complaint", channel="email"),
        _event(9, "r", LAST + d + 2 * h, "touch_request", channel="linkedin", campaign="c"),
        _event(10, "s", LAST, "replied", channel="email", sentiment="negative"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(msgspec.json.encode(e) for e in events) + b"\n")
    result = replay(path, Engine(MAXIMAL), until=to_ms(TS_MAX))
    assert result.dead_letters == []
    rules = {(x.prospect, x.verdict, x.rule): x.until for x in result.decisions}
    later = format_ts(LAST + MAX_HOURS * HOUR_MS)[:4]  # ten years on
    assert (rules[("p", "deferred", "cap.total.day")] or "")[:4] == later
    assert (rules[("q", "deferred", "cap.total.day")] or "")[:4] == later  # the sequence step
    # Rule 14: the pause moves the deferred step by its length (ten more years), not to its end.
    twice_later = format_ts(LAST + 2 * MAX_HOURS * HOUR_MS)[:4]
    assert (rules[("q", "deferred", "paused.out_of_office")] or "")[:4] == twice_later
    assert ("r", "blocked", "cooldown.complaint") in rules
    assert len(result.commands) == 3  # the first request of p, q and r


@st.composite
def _late_or_early_streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Generated streams moved to the first or the last year the maximal policy accepts."""
    events = draw(event_streams(prospects=2, max_events=25))
    target = draw(st.sampled_from([to_ms(TS_MIN), to_ms(TS_MAX - timedelta(days=365))]))
    shift = target - START
    return [{**e, "ts": format_ts(parse_ts(e["ts"]) + shift)} for e in events]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_late_or_early_streams())
def test_no_event_stream_overflows_at_the_maximum_values(events: list[dict[str, Any]]) -> None:
    engine = Engine(MAXIMAL)
    states: dict[str, ProspectState] = {}
    for doc in events:
        event = decode_event(msgspec.json.encode(doc))
        state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        engine.apply(state, event)
    for state in states.values():
        outs: list[Any] = []
        engine.fire_due(state, to_ms(TS_MAX), outs)  # every timer due by the last time accepted
