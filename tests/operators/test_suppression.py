"""Consent, suppression, STOP/START keywords, cooldowns, replies and dedupe (rules 7-10)."""

import pytest

from operators.records import Command
from tests.harness import T0, D, H, Prospect, event, only_decision, request


def test_no_sms_or_phone_without_consent_and_withdrawal_blocks_again() -> None:
    p = Prospect()
    p.ready()
    assert request(p, T0, "sms").rule == "consent.sms"
    assert request(p, T0, "phone").rule == "consent.phone"
    p.send("consent", T0 + H, channel="sms", granted=True)
    assert request(p, T0 + 2 * H, "sms").verdict == "sent"
    p.send("consent", T0 + 3 * D, channel="sms", granted=False)
    assert request(p, T0 + 4 * D, "sms").rule == "consent.sms"


def test_transactional_still_needs_consent_and_respects_opt_out() -> None:
    p = Prospect()
    p.ready()
    assert request(p, T0, "sms", transactional=True).rule == "consent.sms"
    p.send("opt_out", T0, channel="email")
    assert request(p, T0 + H, "email", transactional=True).rule == "suppressed.opt_out.email"


@pytest.mark.parametrize(
    ("kind", "fields", "rule"),
    [
        ("opt_out", {"channel": "email"}, "suppressed.opt_out.email"),
        ("opt_out", {"channel": "all"}, "suppressed.opt_out.all"),
        ("do_not_contact", {"reason": "asked"}, "suppressed.do_not_contact"),
        ("bounce", {"channel": "email", "hard": True}, "suppressed.bounce.email"),
        ("complaint", {"channel": "email"}, "suppressed.complaint.email"),
    ],
)
def test_suppression_blocks_email(kind: str, fields: dict[str, object], rule: str) -> None:
    p = Prospect()
    p.ready()
    p.send(kind, T0, **fields)
    decision = request(p, T0 + 200 * D, "email")
    assert (decision.verdict, decision.rule) == ("blocked", rule)


def test_soft_bounce_does_not_suppress() -> None:
    p = Prospect()
    p.ready()
    p.send("bounce", T0, channel="email", hard=False)
    assert request(p, T0 + H, "email").verdict == "sent"


def test_opt_out_of_one_channel_leaves_the_others() -> None:
    p = Prospect()
    p.ready()
    p.send("opt_out", T0, channel="email")
    assert request(p, T0 + H, "linkedin").verdict == "sent"


@pytest.mark.parametrize("text", ["STOP", " stop ", "Unsubscribe", "quit", "OPTOUT", "end"])
def test_sms_stop_keywords_opt_out_of_sms(text: str) -> None:
    p = Prospect()
    p.ready("sms")
    out = p.send("replied", T0, channel="sms", text=text)
    assert out == []  # a keyword is not a conversation: no hand-off
    assert request(p, T0 + H, "sms").rule == "suppressed.opt_out.sms"
    assert request(p, T0 + 2 * H, "email").verdict == "sent"


def test_stop_inside_a_sentence_is_not_a_keyword() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("replied", T0, channel="sms", text="please stop calling me so late")
    assert request(p, T0 + D, "sms").verdict == "sent"


def test_stop_by_email_is_not_an_sms_opt_out() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("replied", T0, channel="email", text="STOP")
    assert request(p, T0 + D, "sms").verdict == "sent"


@pytest.mark.parametrize("resume", ["START", "unstop", " Yes "])
def test_start_words_lift_an_sms_opt_out(resume: str) -> None:
    p = Prospect()
    p.ready("sms")
    p.send("replied", T0, channel="sms", text="STOP")
    p.send("replied", T0 + H, channel="sms", text=resume)
    assert request(p, T0 + 2 * H, "sms").verdict == "sent"


def test_start_never_lifts_opt_out_all_or_do_not_contact() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("opt_out", T0, channel="all")
    p.send("replied", T0 + H, channel="sms", text="START")
    assert request(p, T0 + 2 * H, "sms").rule == "suppressed.opt_out.all"


def test_complaint_starts_a_90_day_cooldown_on_all_channels() -> None:
    p = Prospect()
    p.ready()
    p.send("complaint", T0, channel="email")
    assert request(p, T0 + 89 * D, "linkedin").rule == "cooldown.complaint"
    assert request(p, T0 + 90 * D, "linkedin").verdict == "sent"


def test_negative_reply_starts_a_90_day_cooldown_without_hand_off() -> None:
    p = Prospect()
    p.ready()
    out = p.send("replied", T0, channel="email", sentiment="negative", text="not interested")
    assert out == []
    assert request(p, T0 + 90 * D - 1, "email").rule == "cooldown.negative"
    assert request(p, T0 + 90 * D, "email").verdict == "sent"


def test_transactional_skips_cooldowns() -> None:
    p = Prospect()
    p.ready()
    p.send("replied", T0, channel="email", sentiment="negative")
    assert request(p, T0 + D, "email", transactional=True).verdict == "sent"


@pytest.mark.parametrize("sentiment", ["positive", "neutral", None])
def test_reply_hands_off_to_a_rep_with_context(sentiment: str | None) -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email", topic="pricing")
    p.send("clicked", T0 + H, channel="email", url="https://x.example/case")
    out = p.send("replied", T0 + 2 * H, channel="email", sentiment=sentiment, text="tell me more")
    [handoff] = [r for r in out if isinstance(r, Command)]
    assert (handoff.channel, handoff.action, handoff.reason) == ("rep", "handoff", "reply")
    assert handoff.topic == "pricing"
    assert handoff.context.clicks == ["https://x.example/case"]
    assert handoff.context.last_reply is not None
    assert handoff.context.last_reply.text == "tell me more"
    assert [t.topic for t in handoff.context.touches] == ["pricing"]
    assert only_decision(out).verdict == "sent"


def test_hand_off_counts_against_no_cap() -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email")
    p.send("replied", T0 + H, channel="email", sentiment="positive")
    assert len(p.state.touches or []) == 1


def test_out_of_office_reply_neither_hands_off_nor_cools_down() -> None:
    p = Prospect()
    p.ready()
    assert p.send("replied", T0, channel="email", sentiment="out_of_office") == []
    assert request(p, T0 + D, "email").verdict == "sent"


def test_hand_off_blocked_after_do_not_contact() -> None:
    p = Prospect()
    p.ready()
    p.send("do_not_contact", T0)
    decision = only_decision(p.send("replied", T0 + H, channel="email", sentiment="positive"))
    assert (decision.channel, decision.rule) == ("rep", "suppressed.do_not_contact")


def test_redelivered_event_has_no_second_effect() -> None:
    p = Prospect()
    p.ready()
    first = p.send("touch_request", T0, id="req-1", channel="email", campaign="c")
    again = p.send("touch_request", T0, id="req-1", channel="email", campaign="c")
    assert len(first) == 2
    assert again == []
    assert len(p.state.touches or []) == 1


def test_dedupe_remembers_exactly_the_last_32_ids() -> None:
    p = Prospect()
    p.send("page_view", T0, id="old", url="/a")
    for i in range(31):
        p.send("page_view", T0 + i, id=f"v{i}", url="/a")
    repeat = event("touch_request", T0 + D, id="old", channel="email", campaign="c")
    assert p.engine.apply(p.state, repeat) == []  # "old" is the 32nd most recent id
    p.send("page_view", T0 + 40, id="v31", url="/a")  # pushes "old" out
    assert len(p.engine.apply(p.state, repeat)) == 2  # now it is news: command + decision
