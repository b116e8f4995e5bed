"""Triggers (rule 12), `auto` requests and explicit preferences."""

from operators.engine import command_id
from operators.records import Command
from tests.harness import T0, D, H, Prospect, request


def _commands(out: list[object]) -> list[Command]:
    return [r for r in out if isinstance(r, Command)]


def test_pricing_page_sends_one_chat_invite_other_pages_nothing() -> None:
    p = Prospect()
    p.ready()
    assert p.send("page_view", T0, url="https://x.example/blog/pricing-tips") != []
    [invite] = p.commands
    assert (invite.channel, invite.action, invite.reason) == (
        "chat",
        "chat_invite",
        "trigger:pricing_page",
    )
    assert p.send("page_view", T0 + H, url="https://x.example/about") == []


def test_proposal_view_sends_sms_when_allowed() -> None:
    p = Prospect()
    p.ready("sms")
    [sms] = _commands(p.send("proposal_view", T0, document="q3-proposal"))
    assert (sms.channel, sms.action, sms.reason, sms.topic) == (
        "sms",
        "send",
        "trigger:proposal_view",
        "q3-proposal",
    )


def test_proposal_view_without_sms_consent_says_why() -> None:
    p = Prospect()
    p.ready()
    [decision] = p.send("proposal_view", T0)
    assert (decision.channel, decision.verdict, decision.rule) == ("sms", "blocked", "consent.sms")


def test_form_submit_sends_email_and_call_with_cause_derived_ids() -> None:
    p = Prospect(prospect="acme-42")
    p.ready("phone")
    out = p.send("form_submit", T0, id="form-7", form="contact")
    email, call = _commands(out)
    assert (email.channel, email.action, call.channel, call.action) == (
        "email",
        "send",
        "phone",
        "call",
    )
    assert email.id == command_id("acme-42", "form-7", "email", "trigger:form_submit")
    assert call.id == command_id("acme-42", "form-7", "phone", "trigger:form_submit")
    assert call.context.touches[-1].channel == "email"  # the call knows the email went out


def test_auto_request_picks_the_best_allowed_channel_with_backup() -> None:
    # No segment: the default prior ranks email, sms, chat, linkedin, phone.
    p = Prospect()
    p.ready("sms")
    p.send("opt_out", T0 - D, channel="email")
    request(p, T0, "auto")
    [cmd] = p.commands
    assert (cmd.channel, cmd.backup) == ("sms", "chat")


def test_auto_request_follows_the_segment_prior() -> None:
    native = Prospect()
    native.ready("sms", "phone")
    native.send("profile", T0 - D, segment="digital_native")
    request(native, T0, "auto")
    assert (native.commands[0].channel, native.commands[0].backup) == ("sms", "linkedin")
    traditional = Prospect()
    traditional.ready("sms", "phone")
    traditional.send("profile", T0 - D, segment="traditional")
    request(traditional, T0, "auto")
    assert (traditional.commands[0].channel, traditional.commands[0].backup) == ("email", "phone")


def test_answers_teach_the_channel_choice() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("profile", T0 - D, segment="traditional")  # prior: email first
    for week in range(4):  # emails go unanswered, texts get replies
        start = T0 + week * 7 * D
        request(p, start, "email")
        request(p, start + 2 * D, "sms")
        p.send("replied", start + 2 * D + H, channel="sms", text="sure", sentiment="neutral")
    request(p, T0 + 28 * D + H, "auto")
    assert p.commands[-1].channel == "sms"


def test_auto_request_follows_an_explicit_preference() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("preference", T0 - D, channel="sms", stance="prefer")
    request(p, T0, "auto")
    assert (p.commands[0].channel, p.commands[0].backup) == ("sms", "email")


def test_no_calls_means_no_calls_even_on_a_form() -> None:
    p = Prospect()
    p.ready("phone")
    p.send("preference", T0 - D, channel="phone", stance="avoid")
    out = p.send("form_submit", T0)
    assert [c.channel for c in _commands(out)] == ["email"]
    blocked = [r for r in out if not isinstance(r, Command) and r.verdict == "blocked"]
    assert [(b.channel, b.rule) for b in blocked] == [("phone", "preference.avoid.phone")]


def test_call_me_means_phone_only() -> None:
    p = Prospect()
    p.ready("phone")
    p.send("preference", T0 - D, channel="phone", stance="only")
    assert request(p, T0, "email").rule == "preference.only.phone"
    request(p, T0 + H, "auto")
    assert [c.channel for c in p.commands] == ["phone"]


def test_auto_request_deferred_when_every_channel_waits() -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email")
    held = request(p, T0 + H, "auto")
    assert (held.verdict, held.rule, held.until) == (
        "deferred",
        "cap.total.day",
        "2026-03-03T15:00:00Z",
    )
    fired = _commands(p.fire(T0 + 2 * D))
    assert [(c.channel, c.ts) for c in fired] == [("email", "2026-03-03T15:00:00Z")]


def test_context_carries_recent_touches_clicks_and_topics() -> None:
    p = Prospect()
    p.ready()
    request(p, T0, "email", topic="onboarding")
    p.send("clicked", T0 + H, channel="email", url="https://x.example/a")
    request(p, T0 + 2 * D, "linkedin", topic="onboarding")
    ctx = p.commands[-1].context
    assert [(t.channel, t.topic) for t in ctx.touches] == [("email", "onboarding")]
    assert ctx.clicks == ["https://x.example/a"]


def test_a_waiting_auto_request_names_the_preferred_channel() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("preference", T0 - D, channel="sms", stance="prefer")
    request(p, T0, "email")
    held = request(p, T0 + H, "auto")  # every channel waits for the same day cap
    assert (held.channel, held.rule) == ("sms", "cap.total.day")
