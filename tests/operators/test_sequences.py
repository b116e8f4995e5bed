"""Sequences and their branches: steps on schedule, conditions, exits, pause, cooldowns."""

from operators.records import Command, Decision
from tests.harness import T0, D, H, Prospect, request

# T0 is Monday 10:00 in New York: every step of the built-ins lands in daytime there.


def _sequence_commands(p: Prospect) -> list[tuple[str, str, str | None]]:
    return [(c.reason, c.channel, c.topic) for c in p.commands if c.reason.startswith("sequence:")]


def _decisions(p: Prospect, reason_prefix: str) -> list[Decision]:
    return [d for d in p.decisions if d.reason.startswith(reason_prefix)]


def test_basic_runs_day_1_3_5_7_10_12_then_cools_down() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="basic")
    p.fire(T0 + 20 * D)
    assert _sequence_commands(p) == [
        ("sequence:basic:1", "email", "intro"),
        ("sequence:basic:2", "email", "value"),
        ("sequence:basic:3", "sms", "check_in"),
        ("sequence:basic:4", "email", "case_study"),
        ("sequence:basic:5", "phone", "call"),
        ("sequence:basic:6", "email", "breakup"),
    ]
    days = [(c.ts[:10]) for c in p.commands]
    assert days == [
        "2026-03-02",
        "2026-03-04",
        "2026-03-06",
        "2026-03-08",
        "2026-03-11",
        "2026-03-13",
    ]
    assert p.state.sequences is None
    # Run to its end: 30 days of cooldown for campaign and sequence touches, not for triggers.
    assert request(p, T0 + 20 * D, "email").rule == "cooldown.sequence"
    assert p.send("page_view", T0 + 21 * D, url="/pricing")[-1].verdict == "sent"
    assert request(p, T0 + 11 * D + 30 * D + 1, "email").verdict == "sent"


def test_a_reply_ends_every_sequence_and_hands_off() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="basic")
    p.send("enroll", T0 + H, sequence="surround")
    p.fire(T0 + 2 * D + H)
    out = p.send("replied", T0 + 3 * D, channel="email", sentiment="positive", text="let's talk")
    assert [c.channel for c in out if isinstance(c, Command)][-1] == "rep"
    p.fire(T0 + 30 * D)
    late = [
        c for c in p.commands if c.reason.startswith("sequence:") and c.ts > "2026-03-05T15:00:00Z"
    ]
    assert late == []
    assert p.state.sequences is None
    assert p.state.pending is None


def test_out_of_office_pauses_and_resumes_after_the_configured_delay() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("replied", T0 + D, channel="email", sentiment="out_of_office")
    p.fire(T0 + 8 * D)
    assert [c.reason for c in p.commands] == ["sequence:basic:1"]  # step 2 (day 3) is paused
    p.fire(T0 + 9 * D)
    # Rule 14: step 2 was due a day after the reply; it moves by the pause (7 days), so it goes a
    # day after the pause ends (before rule 14: at the pause's end, 2026-03-10).
    assert [(c.reason, c.ts) for c in p.commands][1] == ("sequence:basic:2", "2026-03-11T15:00:00Z")


def test_meeting_booked_exits() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("meeting_booked", T0 + D)
    p.fire(T0 + 30 * D)
    assert [c.reason for c in p.commands] == ["sequence:basic:1"]
    assert p.state.sequence_until == 0  # an exit is not a run to the end: no cooldown


def test_deal_won_exits_and_refuses_further_marketing_sequences() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("deal_closed", T0 + D, won=True)
    [refused] = p.send("enroll", T0 + 2 * D, sequence="surround")
    assert (refused.verdict, refused.rule, refused.reason) == (
        "blocked",
        "sequence.customer",
        "sequence:surround:1",
    )
    p.fire(T0 + 30 * D)
    assert [c.reason for c in p.commands] == ["sequence:basic:1"]


def test_deal_lost_starts_a_configurable_cooldown() -> None:
    p = Prospect()
    p.ready()
    p.send("deal_closed", T0, won=False)
    assert request(p, T0 + 89 * D, "email").rule == "cooldown.deal_lost"
    assert request(p, T0 + 90 * D, "email").verdict == "sent"


def test_escalation_stops_escalating_after_a_response() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="escalation")
    p.send("clicked", T0 + H, channel="email", url="https://x.example/a")
    p.fire(T0 + 20 * D)
    assert [c.reason for c in p.commands] == ["sequence:escalation:1"]
    skipped = [(d.reason, d.rule) for d in _decisions(p, "sequence:") if d.verdict == "blocked"]
    assert skipped[0] == ("sequence:escalation:2", "sequence.when.no_response")
    assert p.state.sequences is None


def test_escalation_without_response_goes_email_email_sms_phone_breakup() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="escalation")
    p.fire(T0 + 20 * D)
    assert [c.channel for c in p.commands] == ["email", "email", "sms", "phone", "email"]


def test_email_first_branches_on_engagement() -> None:
    engaged = Prospect()
    engaged.ready("sms")
    engaged.send("enroll", T0, sequence="email_first")
    engaged.send("opened", T0 + 2 * H, channel="email")
    engaged.fire(T0 + 5 * D)
    assert _sequence_commands(engaged) == [
        ("sequence:email_first:1", "email", "intro"),
        ("sequence:email_first:2", "email", "follow_up"),
    ]
    silent = Prospect()
    silent.ready("sms")
    silent.send("enroll", T0, sequence="email_first")
    silent.fire(T0 + 5 * D)
    assert _sequence_commands(silent) == [
        ("sequence:email_first:1", "email", "intro"),
        ("sequence:email_first:3", "sms", "short_note"),
    ]
    assert silent.commands[1].ts == "2026-03-04T15:00:00Z"  # 48 h after the start


def test_sms_first_sends_the_detailed_email_only_without_response() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("enroll", T0, sequence="sms_first")
    p.fire(T0 + 5 * D)
    assert [c.channel for c in p.commands] == ["sms", "email"]  # no engagement: no 3rd step
    engaged = Prospect()
    engaged.ready("sms")
    engaged.send("enroll", T0, sequence="sms_first")
    engaged.fire(T0 + 25 * H)
    engaged.send("opened", T0 + 30 * H, channel="email")
    engaged.fire(T0 + 5 * D)
    assert [c.channel for c in engaged.commands] == ["sms", "email", "sms"]


def test_surround_sends_the_sms_only_if_still_unresponsive() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="surround")
    p.send("clicked", T0 + 3 * D, channel="linkedin", url="https://x.example")
    p.fire(T0 + 20 * D)
    assert [c.channel for c in p.commands] == ["email", "linkedin", "email", "phone"]


def test_a_step_stopped_by_a_rule_is_skipped_with_a_record_and_the_sequence_goes_on() -> None:
    p = Prospect()
    p.ready("phone")  # no sms consent
    p.send("enroll", T0, sequence="basic")
    p.fire(T0 + 20 * D)
    sms = [d for d in p.decisions if d.reason == "sequence:basic:3"]
    assert [(d.verdict, d.rule) for d in sms] == [("blocked", "consent.sms")]
    assert [c.reason for c in p.commands][-1] == "sequence:basic:6"


def test_a_step_in_quiet_hours_waits_for_the_window() -> None:
    p = Prospect()
    p.ready("sms")
    night = T0 + 12 * H  # 22:00 in New York
    p.send("enroll", night, sequence="sms_first")
    [deferred] = [d for d in p.decisions if d.verdict == "deferred"]
    assert (deferred.rule, deferred.until) == ("quiet_hours", "2026-03-03T13:00:00Z")
    p.fire(night + D)
    assert p.commands[0].ts == "2026-03-03T13:00:00Z"


def test_unenroll_stops_one_sequence_and_enroll_twice_is_one_run() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("enroll", T0 + H, sequence="basic")
    p.send("enroll", T0 + H, sequence="email_first")
    p.send("unenroll", T0 + 2 * H, sequence="basic")
    p.fire(T0 + 20 * D)
    assert [c.reason for c in p.commands if c.reason.startswith("sequence:basic")] == [
        "sequence:basic:1"
    ]


def test_the_same_trigger_fires_once_per_window() -> None:
    p = Prospect()
    p.ready()
    p.send("page_view", T0, url="/pricing")
    [again] = p.send("page_view", T0 + H, url="/pricing?plan=pro")
    assert (again.verdict, again.rule) == ("blocked", "throttle.trigger")
    assert p.send("page_view", T0 + 24 * H, url="/pricing")[-1].verdict == "sent"


def test_commands_carry_recent_pages() -> None:
    p = Prospect()
    p.ready()
    for path in ("/a", "/b", "/c", "/pricing"):
        p.send("page_view", T0, url=path)
    assert p.commands[-1].context.pages == ["/b", "/c", "/pricing"]


def test_an_answered_call_ends_every_sequence() -> None:
    p = Prospect()
    p.ready("sms", "phone")
    p.send("enroll", T0, sequence="basic")
    p.send("call_outcome", T0 + D, outcome="answered")
    p.fire(T0 + 30 * D)
    assert [c.reason for c in p.commands] == ["sequence:basic:1"]
