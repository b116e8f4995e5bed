"""Response branching inside sequences: opened-no-click, clicked-no-reply, unopened resubject."""

from operators.records import Command
from tests.harness import T0, D, H, Prospect


def _enrolled(*consents: str) -> tuple[Prospect, Command]:
    p = Prospect()
    p.ready(*consents)
    p.send("enroll", T0, sequence="basic")
    [intro] = p.commands
    return p, intro


def test_opened_without_a_click_gets_an_sms_follow_up_on_the_same_topic() -> None:
    p, intro = _enrolled("sms")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.fire(T0 + 4 * D)
    # Due 48 h after the open, it meets the day's cap (basic's day-3 email) and waits a day.
    [held] = [d for d in p.decisions if d.reason == "escalation:sms" and d.verdict == "deferred"]
    assert (held.ts, held.rule) == ("2026-03-04T16:00:00Z", "cap.total.day")
    follow = [c for c in p.commands if c.reason == "escalation:sms"]
    assert [(c.channel, c.topic, c.ts) for c in follow] == [
        ("sms", "intro", "2026-03-05T15:00:00Z")
    ]


def test_a_click_after_the_open_cancels_the_sms_and_brings_a_call_if_no_reply() -> None:
    p, intro = _enrolled("sms", "phone")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.send("clicked", T0 + 2 * H, channel="email", command=intro.id, url="https://x.example")
    p.fire(T0 + 4 * D)
    reasons = [c.reason for c in p.commands]
    assert "escalation:sms" not in reasons
    [call] = [c for c in p.commands if c.reason == "escalation:phone"]
    assert (call.channel, call.topic, call.ts) == ("phone", "intro", "2026-03-05T15:00:00Z")


def test_a_reply_ends_the_watch_too() -> None:
    p, intro = _enrolled("sms", "phone")
    p.send("clicked", T0 + H, channel="email", command=intro.id, url="https://x.example")
    p.send("replied", T0 + 3 * H, channel="email", sentiment="neutral", text="later")
    p.fire(T0 + 10 * D)
    assert [c.reason for c in p.commands] == ["sequence:basic:1", "reply"]


def test_the_next_email_after_an_unopened_one_gets_a_new_subject() -> None:
    p, _intro = _enrolled()
    p.fire(T0 + 2 * D)
    second = p.commands[-1]
    assert (second.reason, second.template) == ("sequence:basic:2", "new_subject")
    q, intro = _enrolled()
    q.send("opened", T0 + H, channel="email", command=intro.id)
    q.fire(T0 + 2 * D)
    assert (q.commands[-1].reason, q.commands[-1].template) == ("sequence:basic:2", None)


def test_opens_of_a_non_sequence_email_start_no_follow_up() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("touch_request", T0, channel="email", campaign="c")
    [email] = p.commands
    p.send("opened", T0 + H, channel="email", command=email.id)
    p.fire(T0 + 10 * D)
    assert [c.reason for c in p.commands] == ["request:c"]


def test_a_reply_cancels_a_pending_call_even_if_a_new_sequence_starts() -> None:
    p, intro = _enrolled("sms", "phone")
    p.send("clicked", T0 + H, channel="email", command=intro.id, url="https://x.example")
    p.send("replied", T0 + 2 * H, channel="email", sentiment="positive", text="yes")
    p.send("enroll", T0 + 3 * H, sequence="email_first")
    p.fire(T0 + 10 * D)
    assert "escalation:phone" not in [c.reason for c in p.commands]


def test_a_second_open_does_not_repeat_a_follow_up_already_sent() -> None:
    p, intro = _enrolled("sms")
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.fire(T0 + 4 * D)
    p.send("opened", T0 + 4 * D + H, channel="email", command=intro.id)
    p.fire(T0 + 12 * D)
    ids = [c.id for c in p.commands]
    assert len(ids) == len(set(ids))
    assert [c.reason for c in p.commands].count("escalation:sms") == 1
