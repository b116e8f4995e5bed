"""Rule 14: an out-of-office reply pauses every automated follow-up (issue 12, item 2).

Sequence steps and response-branch follow-ups alike move by the length of the pause
(`out_of_office_pause_days`, 7), so the remaining steps keep their spacing.
"""

from operators.records import Command
from operators.timeutil import format_ts
from tests.harness import T0, D, H, Prospect, request


def _days(p: Prospect, prefix: str = "") -> list[tuple[str, str]]:
    return [(c.reason, c.ts[:10]) for c in p.commands if c.reason.startswith(prefix)]


def _enrolled(*consents: str) -> tuple[Prospect, Command]:
    p = Prospect()
    p.ready(*consents)
    p.send("enroll", T0, sequence="basic")
    [intro] = p.commands
    return p, intro


def test_steps_counted_from_the_enrollment_keep_their_spacing() -> None:
    """The issue's case: after the pause, basic's steps anchored to the enrollment all came
    due together and went out on five consecutive days (03-10 ... 03-14)."""
    p, _intro = _enrolled("sms", "phone")
    p.send("replied", T0 + D, channel="email", sentiment="out_of_office")
    p.fire(T0 + 30 * D)
    assert _days(p) == [
        ("sequence:basic:1", "2026-03-02"),
        ("sequence:basic:2", "2026-03-11"),  # day 3, seven days later
        ("sequence:basic:3", "2026-03-13"),  # day 5 ...
        ("sequence:basic:4", "2026-03-15"),
        ("sequence:basic:5", "2026-03-18"),
        ("sequence:basic:6", "2026-03-20"),
    ]
    assert p.state.shifted is None  # the sequence ran to its end: its shift went with it


def test_the_sms_follow_up_of_an_opened_email_is_paused_too() -> None:
    """The issue's case: an opened-no-click sms went out two days into the pause."""
    p, intro = _enrolled("sms")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.send("replied", T0 + 2 * H, channel="email", sentiment="out_of_office")
    p.fire(T0 + 9 * D)
    assert _days(p, "escalation:") == []  # was due at T0 + 49 h, inside the pause
    p.fire(T0 + 12 * D)
    # Moved by 7 days to T0 + 9 days 1 hour; the day's cap (step 2 went at T0 + 9 days) holds it
    # a day: its deferral budget moved with it, so it waits rather than being dropped.
    [follow] = [c for c in p.commands if c.reason == "escalation:sms"]
    assert (follow.channel, follow.topic, follow.ts) == ("sms", "intro", format_ts(T0 + 10 * D))


def test_a_click_during_the_pause_answers_the_paused_follow_up() -> None:
    p, intro = _enrolled("sms", "phone")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.send("replied", T0 + 2 * H, channel="email", sentiment="out_of_office")
    p.send("clicked", T0 + 3 * D, channel="email", url="https://x.example/case")
    p.fire(T0 + 20 * D)
    assert "escalation:sms" not in [c.reason for c in p.commands]


def test_a_click_before_the_pause_still_answers_it() -> None:
    p, intro = _enrolled("sms")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.send("clicked", T0 + 2 * H, channel="sms", url="https://x.example/case")  # no new watch
    p.send("replied", T0 + 3 * H, channel="email", sentiment="out_of_office")
    p.fire(T0 + 20 * D)
    assert "escalation:sms" not in [c.reason for c in p.commands]


def test_a_deferred_step_keeps_its_deferral_budget_across_the_pause() -> None:
    """Held by the day's cap, paused, held again: still within `step_max_defer_hours` (48) of
    its moved first due time, so it waits instead of being skipped."""
    p, _intro = _enrolled()
    p.send("touch_sent", T0 + 2 * D - H, channel="linkedin")  # step 2 (T0 + 2 days) is held
    p.send("replied", T0 + 2 * D + H, channel="email", sentiment="out_of_office")
    [paused] = [d for d in p.decisions if d.rule == "paused.out_of_office"]
    assert (paused.reason, paused.verdict, paused.until) == (
        "sequence:basic:2",
        "deferred",
        format_ts(T0 + 10 * D - H),  # its deferral's until, moved by the pause
    )
    p.send("touch_sent", T0 + 10 * D - 2 * H, channel="linkedin")  # holds it once more
    p.fire(T0 + 12 * D)
    # 46 h after its moved first due time (T0 + 9 days); before rule 14, `first` stayed at
    # T0 + 2 days and the step was skipped as held too long.
    [step] = [c for c in p.commands if c.reason == "sequence:basic:2"]
    assert step.ts == format_ts(T0 + 11 * D - 2 * H)


def test_a_second_reply_inside_the_pause_extends_it_and_does_not_move_things_twice() -> None:
    p, _intro = _enrolled()
    p.send("replied", T0 + D, channel="email", sentiment="out_of_office")
    p.send("replied", T0 + 2 * D, channel="email", sentiment="out_of_office")  # a day later
    p.fire(T0 + 30 * D)
    # Step 2 was due at T0 + 2 days: moved by the pause (7 days) and by its extension (1 day).
    assert _days(p, "sequence:basic:2") == [("sequence:basic:2", "2026-03-12")]


def test_requests_and_triggers_are_not_follow_ups() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("replied", T0 + D, channel="email", sentiment="out_of_office")
    assert request(p, T0 + 2 * D, "linkedin").verdict == "sent"
    assert [c.reason for c in p.send("page_view", T0 + 3 * D, url="/pricing")] == [
        "trigger:pricing_page",  # the command, then its decision
        "trigger:pricing_page",
    ]
    assert p.decisions[-1].verdict == "sent"


def test_a_sequence_that_ends_forgets_its_shift() -> None:
    p, _intro = _enrolled()
    p.send("replied", T0 + D, channel="email", sentiment="out_of_office")
    assert p.state.shifted == {"basic": 7 * D}
    p.send("unenroll", T0 + 2 * D, sequence="basic")
    assert p.state.shifted is None
    p.send("enroll", T0 + 3 * D, sequence="basic")
    p.fire(T0 + 6 * D)
    assert _days(p)[-2:] == [("sequence:basic:1", "2026-03-05"), ("sequence:basic:2", "2026-03-07")]
