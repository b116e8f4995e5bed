"""Caps, the 24-hour rule, the gap, the own-action exemption and reservations (rules 1-5)."""

import pytest

from operators.records import Command
from tests.harness import T0, D, H, Prospect, request


def test_email_week_cap_is_three_and_frees_exactly_seven_days_after_the_first() -> None:
    p = Prospect()
    p.ready()
    for day in range(3):
        assert request(p, T0 + day * D, "email").verdict == "sent"
    # Within max_defer_hours (72) of the edge, so it waits for capacity.
    assert request(p, T0 + 3 * D, "email").verdict == "blocked"  # 96 h away: too long
    fourth = request(p, T0 + 4 * D + H, "email")
    assert (fourth.verdict, fourth.rule) == ("deferred", "cap.email.week")
    assert fourth.until == "2026-03-09T15:00:00Z"  # the first touch leaves the window then
    # One millisecond before that edge the window still holds three emails.
    assert not p.fire(T0 + 7 * D - 1)
    fired = p.fire(T0 + 7 * D)
    assert [r.verdict for r in fired if not isinstance(r, Command)] == ["sent"]


def test_a_touch_exactly_seven_days_old_is_outside_the_window() -> None:
    p = Prospect()
    p.ready("phone")
    assert request(p, T0, "phone").verdict == "sent"
    assert request(p, T0 + 7 * D - 1, "phone").rule == "cap.phone.week"
    p2 = Prospect()
    p2.ready("phone")
    request(p2, T0, "phone")
    assert request(p2, T0 + 7 * D, "phone").verdict == "sent"


def test_total_week_cap_counts_all_channels() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    channels = ["email", "sms", "phone", "linkedin", "chat"]
    for day, ch in enumerate(channels):
        assert request(p, T0 + day * D, ch).verdict == "sent", ch
    sixth = request(p, T0 + 5 * D, "email")
    assert sixth.rule == "cap.total.week"


def test_one_touch_per_24_hours_with_exact_edge() -> None:
    p = Prospect()
    p.ready()
    assert request(p, T0, "email").verdict == "sent"
    second = request(p, T0 + 24 * H - 1, "linkedin")
    assert (second.verdict, second.rule) == ("deferred", "cap.total.day")
    assert second.until == "2026-03-03T15:00:00Z"
    fired = p.fire(T0 + 24 * H)  # exactly 24 h after the first touch, it goes
    assert [(r.channel, r.ts) for r in fired if isinstance(r, Command)] == [
        ("linkedin", "2026-03-03T15:00:00Z")
    ]


def test_gap_applies_when_the_day_cap_is_looser() -> None:
    policy_text = """
[[caps]]
name = "day"
hours = 24
total = 3
[gap]
hours = 24
"""
    from operators.policy import parse_policy
    from tests.harness import immediate

    p = Prospect(immediate(parse_policy(policy_text)))
    p.ready()
    request(p, T0, "email")
    held = request(p, T0 + 23 * H, "email")
    assert (held.rule, held.until) == ("gap", "2026-03-03T15:00:00Z")


def test_triggered_touches_are_exempt_from_rule_3_but_count_toward_caps() -> None:
    p = Prospect()
    p.ready("phone")
    request(p, T0, "email")  # a campaign email this morning
    out = p.send("form_submit", T0 + H, form="demo")
    sent = sorted(c.channel for c in out if isinstance(c, Command))
    assert sent == ["email", "phone"]  # answers the form at once, despite rule 3
    assert request(p, T0 + 25 * H, "email").verdict == "sent"
    # The week now holds 4 touches: email x3 is full for the next request.
    assert request(p, T0 + 3 * D, "email").rule == "cap.email.week"


def test_trigger_blocked_by_a_week_cap_is_blocked_not_deferred() -> None:
    p = Prospect()
    p.ready()
    for day in range(3):
        request(p, T0 + day * D, "chat" if day < 2 else "email")
    out = p.send("page_view", T0 + 2 * D + 2 * H, url="https://x.example/pricing?plan=pro")
    [decision] = out
    assert (decision.verdict, decision.rule) == ("blocked", "cap.chat.week")


def test_reservation_confirmed_by_touch_sent_is_not_counted_twice() -> None:
    p = Prospect()
    p.ready("phone")
    request(p, T0, "phone")
    cmd = p.commands[-1]
    p.send("touch_sent", T0 + 1000, channel="phone", command=cmd.id)
    # Only one phone touch counted: the week cap (1) is full, but the total week has room.
    assert request(p, T0 + 2 * D, "email").verdict == "sent"
    assert len(p.state.touches or []) == 2


def test_touch_failed_releases_the_reservation() -> None:
    p = Prospect()
    p.ready("phone")
    request(p, T0, "phone")
    cmd = p.commands[-1]
    p.send("touch_failed", T0 + 1000, channel="phone", command=cmd.id)
    assert request(p, T0 + 2 * H, "phone").verdict == "sent"


def test_touch_sent_without_command_counts_as_a_new_touch() -> None:
    p = Prospect()
    p.ready()
    p.send("touch_sent", T0, channel="email", by="rep")
    held = request(p, T0 + H, "linkedin")
    assert held.rule == "cap.total.day"


def test_late_touch_sent_counts_at_its_own_time() -> None:
    p = Prospect()
    p.ready()
    p.send("page_view", T0 + 10 * H, url="/blog")  # the clock is at T0+10h
    p.send("touch_sent", T0, channel="email")  # reported late, happened at T0
    held = request(p, T0 + 11 * H, "email")
    assert held.until == "2026-03-03T15:00:00Z"


def test_transactional_requests_skip_caps_but_still_count() -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email")
    receipt = request(p, T0 + H, "email", transactional=True)
    assert receipt.verdict == "sent"
    assert len(p.state.touches or []) == 2


def test_request_deferral_beyond_max_defer_is_blocked() -> None:
    p = Prospect()
    p.ready("phone")
    request(p, T0, "phone")
    held = request(p, T0 + H, "phone")  # frees only after 7 days; max_defer_hours is 72
    assert (held.verdict, held.rule, held.until) == ("blocked", "cap.phone.week", None)


@pytest.mark.parametrize("channel", ["email", "linkedin", "chat"])
def test_every_deferred_request_is_decided_again_at_its_until(channel: str) -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email")
    held = request(p, T0 + H, channel)
    assert held.verdict == "deferred"
    fired = p.fire(T0 + 10 * D)
    decisions = [r for r in fired if not isinstance(r, Command)]
    assert decisions
    assert decisions[0].ts == held.until
    assert decisions[0].reason == held.reason


def test_one_command_id_is_at_most_one_touch_even_if_we_never_issued_it() -> None:
    p = Prospect()
    p.ready()
    p.send("touch_sent", T0, channel="email", command="other-tool-42")
    p.send("touch_sent", T0 + H, channel="email", command="other-tool-42")  # reported again
    assert len(p.state.touches or []) == 1
    assert request(p, T0 + 24 * H, "email").verdict == "sent"
