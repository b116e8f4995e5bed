"""The events that may contact the prospect: triggers, requests, replies, enrollments, watches.

Each handler is a function of (parts, state, event, ts, out), as in `operators.facts`; "now" is
`s.clock`. A handler turns its event into `Candidate`s for the `Decider`, or into work for the
`Sequencer`; it decides nothing itself.
"""

from sys import intern
from typing import Final
from urllib.parse import urlsplit

from operators import events as ev
from operators import facts
from operators.compiled import FORM, PRICING, PROPOSAL, TRIGGER_REASONS
from operators.emit import Out
from operators.events import CHANNEL_INDEX, CHANNELS
from operators.history import answered
from operators.parts import Parts
from operators.sequences import ESCALATE_PHONE, ESCALATE_SMS
from operators.state import ProspectState, add_pending
from operators.state_records import (
    ARBITRATING,
    AUTO,
    Candidate,
    Kind,
    Pending,
    Props,
    Reply,
    with_props,
)

REASON_REPLY: Final = "reply"
THROTTLE: Final = "throttle.trigger"
_SMS: Final = CHANNEL_INDEX["sms"]

# -- triggers (rule 12) -------------------------------------------------------------------------


def page_view(p: Parts, s: ProspectState, e: ev.PageView, ts: int, out: list[Out]) -> None:
    limit = p.k.ctx_pages
    if limit:
        pages = s.pages or []
        pages.append(e.url)
        s.pages = pages[-limit:]
    if p.k.pricing_path in url_path(e.url):  # rule 12: the path, not query or fragment
        trigger(p, s, PRICING, "pricing", e.id, out)


def form_submit(p: Parts, s: ProspectState, e: ev.FormSubmit, ts: int, out: list[Out]) -> None:
    trigger(p, s, FORM, e.form, e.id, out)


def proposal_view(p: Parts, s: ProspectState, e: ev.ProposalView, ts: int, out: list[Out]) -> None:
    trigger(p, s, PROPOSAL, e.document, e.id, out)


def trigger(
    p: Parts, s: ProspectState, kind: int, topic: str | None, cause: str, out: list[Out]
) -> None:
    """Answer the prospect's own action, at most once per trigger kind per throttle window."""
    now = s.clock
    reason = TRIGGER_REASONS[kind]
    channels = p.k.triggers[kind]
    fired = s.triggered or (0, 0, 0)
    if fired[kind] and now - fired[kind] < p.k.throttle_ms:
        for ch in channels:
            p.decider.records.decision(s, now, out, CHANNELS[ch], reason, "blocked", rule=THROTTLE)
        return
    verdicts = [
        p.decider.decide(s, _trigger(ch, reason, topic, cause, now), now, out) for ch in channels
    ]
    if "sent" in verdicts or "deferred" in verdicts:
        at = list(fired)
        at[kind] = now
        s.triggered = (at[0], at[1], at[2])


def _trigger(ch: int, reason: str, topic: str | None, cause: str, now: int) -> Candidate:
    """A trigger's touch on channel `ch`: first considered now, no priority of its own."""
    return Candidate(
        channel=ch, kind=Kind.TRIGGER, reason=reason, topic=topic, cause=cause, first=now,
        priority=0, props=Props.NONE, sequence=None, step=0,
    )  # fmt: skip


# -- requests -----------------------------------------------------------------------------------


def touch_request(p: Parts, s: ProspectState, e: ev.TouchRequest, ts: int, out: list[Out]) -> None:
    """Decide a campaign's request now (transactional, or no arbitration window), or queue it
    for the arbitration window: its priority stays with it through every deferral (rule 13)."""
    now = s.clock
    ch = AUTO if e.channel == "auto" else CHANNEL_INDEX[e.channel]
    props = Props.TRANSACTIONAL if e.transactional else Props.NONE
    reason = intern(f"request:{e.campaign}")
    topic = intern(e.topic) if e.topic is not None else None
    window = p.k.arbitration_ms
    if e.transactional or not window:
        c = Candidate(
            channel=ch, kind=Kind.REQUEST, reason=reason, topic=topic, cause=e.id, first=now,
            priority=e.priority, props=props, sequence=None, step=0,
        )  # fmt: skip
        p.decider.decide(s, c, now, out)
        return
    # Wait for the arbitration window (the one already open, or a new one from now).
    closes = next(
        (q.due for q in s.pending or () if int(q.props) & ARBITRATING and q.due >= now),
        now + window,
    )
    item = Pending(
        channel=ch, kind=Kind.REQUEST, reason=reason, topic=topic, cause=e.id, first=closes,
        priority=e.priority, props=with_props(props, ARBITRATING), sequence=None, step=0,
        due=closes,
    )  # fmt: skip
    add_pending(s, item)


# -- replies (rules 8 and 10) -------------------------------------------------------------------


def replied(p: Parts, s: ProspectState, e: ev.Replied, ts: int, out: list[Out]) -> None:
    now = s.clock
    ch = CHANNEL_INDEX[e.channel]
    text = e.text[: p.k.reply_chars] if e.text is not None else None
    s.last_reply = Reply(ch, ts, e.sentiment, text)
    if ch == _SMS and e.text is not None:
        word = e.text.strip().upper()
        sms_bit = 1 << _SMS
        if word in p.k.stop:
            s.opted_out |= sms_bit
            p.sequencer.exit_all(s, now, out)
            return
        if word in p.k.start or (word in p.k.resume and s.opted_out & sms_bit):
            s.opted_out &= ~sms_bit
            return
    if e.sentiment == "out_of_office":
        p.sequencer.pause(s, now, out)
        return
    s.engaged_at = max(s.engaged_at, ts)
    s.responded_at = max(s.responded_at, ts)
    # Where they answer is where they want to be reached (issue 15), unless it is to object.
    answered(p.k, s, ch, ts, chosen=e.sentiment != "negative")
    p.sequencer.exit_all(s, now, out)  # any real reply ends every sequence
    if e.sentiment == "negative":
        s.negative_until = max(s.negative_until, now + p.k.rules.negative_ms)
    else:
        handoff(p, s, e.id, out)


def handoff(p: Parts, s: ProspectState, cause: str, out: list[Out]) -> None:
    """Hand the conversation to a person: not a touch, so no cap; only a full stop blocks it."""
    now = s.clock
    rule = None
    if s.do_not_contact:
        rule = "suppressed.do_not_contact"
    elif s.opted_out_all:
        rule = "suppressed.opt_out.all"
    records = p.decider.records
    if rule is not None:
        records.decision(s, now, out, "rep", REASON_REPLY, "blocked", rule=rule)
        return
    topic = s.touches[-1].topic if s.touches else None
    records.command(s, now, out, channel="rep", reason=REASON_REPLY, topic=topic, cause=cause)


# -- sequences and response branching ----------------------------------------------------------


def enroll(p: Parts, s: ProspectState, e: ev.Enroll, ts: int, out: list[Out]) -> None:
    p.sequencer.enroll(s, e.sequence, e.id, s.clock, out)


def opened(p: Parts, s: ProspectState, e: ev.Opened, ts: int, out: list[Out]) -> None:
    """An open; an opened sequence email with no click by the watch's end gets an sms."""
    facts.opened(p, s, e, ts, out)
    if e.channel == "email" and e.command and s.sequences:
        p.sequencer.watch(s, e.command, ESCALATE_SMS, ts)


def clicked(p: Parts, s: ProspectState, e: ev.Clicked, ts: int, out: list[Out]) -> None:
    """A click; a clicked sequence email with no reply by the watch's end gets a call."""
    facts.clicked(p, s, e, ts, out)
    if e.channel == "email" and e.command and s.sequences:
        p.sequencer.watch(s, e.command, ESCALATE_PHONE, ts)


def url_path(url: str) -> str:
    """The path of `url` (absolute, scheme-relative or relative), without query or fragment."""
    try:
        return urlsplit(url).path
    except ValueError:  # a malformed IPv6 host: read past it by hand, never stop the flow
        rest = url.partition("#")[0].partition("?")[0].partition("//")[2]
        return "/" + rest.partition("/")[2]
