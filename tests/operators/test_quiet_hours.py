"""Quiet hours in local time (rule 6): profile zone, phone zones, regions, DST, exact edges."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quiet_hours import _local_seconds, next_allowed, phone_zones
from operators.records import Command
from operators.timeutil import format_ts, parse_ts, to_ms
from tests.harness import D, Prospect, only_decision, request

NY = "America/New_York"


def local(text: str, tz: str = NY) -> int:
    return to_ms(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)))


def test_sms_at_night_is_deferred_to_eight_local_and_then_sent() -> None:
    p = Prospect()
    p.ready("sms")
    held = request(p, local("2026-03-03T22:30"), "sms")
    assert (held.verdict, held.rule) == ("deferred", "quiet_hours")
    assert held.until == format_ts(local("2026-03-04T08:00"))
    [command] = [r for r in p.fire(local("2026-03-05T00:00")) if isinstance(r, Command)]
    assert command.ts == held.until


@pytest.mark.parametrize(
    ("clock", "allowed"),
    [("07:59:59", False), ("08:00:00", True), ("20:59:59", True), ("21:00:00", False)],
)
def test_window_edges_are_start_inclusive_end_exclusive(clock: str, allowed: bool) -> None:
    p = Prospect()
    p.ready("phone")
    decision = request(p, local(f"2026-03-03T{clock}"), "phone")
    assert (decision.verdict == "sent") is allowed


def test_email_has_no_quiet_hours() -> None:
    p = Prospect()
    p.ready()
    assert request(p, local("2026-03-03T23:30"), "email").verdict == "sent"


def test_stricter_region_closes_at_eight_pm() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("profile", local("2026-03-01T12:00"), region="us-fl")
    held = request(p, local("2026-03-03T20:30"), "sms")
    assert (held.rule, held.until) == ("quiet_hours", format_ts(local("2026-03-04T08:00")))


def test_spring_forward_opening_is_eight_local_time_not_utc_shifted() -> None:
    # 2026-03-08: New York moves from EST (-5) to EDT (-4) at 02:00.
    p = Prospect()
    p.ready("sms")
    held = request(p, local("2026-03-07T23:00"), "sms")
    assert held.until == "2026-03-08T12:00:00Z"  # 08:00 EDT
    assert held.until == format_ts(local("2026-03-08T08:00"))


def test_fall_back_evening_edge_uses_the_new_offset() -> None:
    # 2026-11-01: New York moves from EDT (-4) to EST (-5) at 02:00.
    p = Prospect()
    p.ready("sms")
    at_2030_est = parse_ts("2026-11-02T01:30:00Z")  # 20:30 EST on Nov 1: still allowed
    assert request(p, at_2030_est, "sms").verdict == "sent"
    p2 = Prospect()
    p2.ready("sms")
    at_2100_est = parse_ts("2026-11-02T02:00:00Z")  # 21:00 EST: quiet
    assert request(p2, at_2100_est, "sms").rule == "quiet_hours"


def test_phone_number_zone_is_used_without_a_profile_zone() -> None:
    p = Prospect()
    p.send("profile", parse_ts("2026-03-01T00:00:00Z"), phone="+14155550123")  # San Francisco
    p.send("consent", parse_ts("2026-03-01T00:00:00Z"), channel="sms", granted=True)
    # 09:00 in New York is 06:00 in San Francisco: too early there.
    held = request(p, local("2026-03-03T09:00"), "sms")
    assert held.until == format_ts(local("2026-03-03T08:00", "America/Los_Angeles"))


def test_profile_zone_wins_over_the_phone_number() -> None:
    p = Prospect()
    p.send("profile", parse_ts("2026-03-01T00:00:00Z"), phone="+14155550123", timezone=NY)
    p.send("consent", parse_ts("2026-03-01T00:00:00Z"), channel="sms", granted=True)
    assert request(p, local("2026-03-03T09:00"), "sms").verdict == "sent"


def test_number_spanning_zones_must_be_allowed_in_all_of_them() -> None:
    zones = phone_zones("+18005550123")  # toll-free: many zones
    assert len(zones) > 1
    us = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
    t = local("2026-03-03T07:30", "America/Chicago")
    opens = next_allowed(t, us, 8 * 3600, 21 * 3600)
    assert opens == local("2026-03-03T08:00", "America/Los_Angeles")
    for tz in us:
        hour = datetime.fromtimestamp(opens / 1000, ZoneInfo(tz)).hour
        assert 8 <= hour < 21


def test_zones_with_no_common_window_block_the_touch() -> None:
    # Windows of 08:00-09:00 in zones 12 hours apart never overlap.
    t = local("2026-03-03T12:00")
    assert next_allowed(t, ("Asia/Tokyo", "America/Chicago"), 8 * 3600, 9 * 3600) is None


def test_a_deferred_touch_rechecks_every_rule_at_the_opening() -> None:
    p = Prospect()
    p.ready("sms")
    request(p, local("2026-03-03T22:00"), "sms")  # deferred to 08:00
    p.send("opt_out", local("2026-03-04T07:00"), channel="sms")
    [decision] = p.fire(local("2026-03-04T09:00"))
    assert (decision.verdict, decision.rule) == ("blocked", "suppressed.opt_out.sms")


def test_form_at_night_emails_at_once_and_calls_at_opening() -> None:
    p = Prospect()
    p.ready("phone")
    out = p.send("form_submit", local("2026-03-03T23:00"), form="demo")
    assert [type(r).__name__ for r in out] == ["Command", "Decision", "Decision"]
    assert out[2].rule == "quiet_hours"
    call = only_decision(p.fire(local("2026-03-04T08:00") + D))
    assert call.verdict == "sent"
    assert call.ts == format_ts(local("2026-03-04T08:00"))


ODD_ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Kolkata",
]


@settings(max_examples=3000, deadline=None)
@given(
    t=st.integers(parse_ts("2026-01-01T00:00:00Z"), parse_ts("2028-01-01T00:00:00Z")),
    name=st.sampled_from(ODD_ZONES),
)
def test_cached_local_clock_equals_zoneinfo(t: int, name: str) -> None:
    """The per-15-minute offset cache agrees with zoneinfo, DST changes and odd offsets included."""
    local = datetime.fromtimestamp(t / 1000, ZoneInfo(name))
    assert _local_seconds(t, name) == local.hour * 3600 + local.minute * 60 + local.second
