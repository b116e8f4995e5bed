"""What events tell about the prospect: facts, engagement, reservations.

Each handler is a function of (parts, state, event, ts, out) for one event type: it updates what
we know, not whom we contact (`operators.actions` has the handlers that decide touches). "Now"
is `s.clock`, which the engine has set before calling; `ts` is the event's own time, which
engagement and reservations are recorded at. The ones that end sequences call the sequencer;
learning from answers is `operators.history`.
"""

from sys import intern

from operators import events as ev
from operators import fatigue
from operators.emit import Out
from operators.events import CHANNEL_INDEX
from operators.history import answered, count_touch, release
from operators.parts import Parts
from operators.state import ProspectState, command_key
from operators.state_records import AUTO, Touch

_CHAT = CHANNEL_INDEX["chat"]
_PHONE = CHANNEL_INDEX["phone"]

# -- facts about the prospect -------------------------------------------------------------------


def profile(p: Parts, s: ProspectState, e: ev.Profile, ts: int, out: list[Out]) -> None:
    # Interned: the same few zones, regions and segments recur across millions of prospects.
    if e.timezone is not None:
        s.timezone = intern(e.timezone)
    if e.phone is not None:
        s.phone = e.phone
    if e.region is not None:
        s.region = intern(e.region.upper())
    if e.segment is not None:
        s.segment = intern(e.segment)


def consent(p: Parts, s: ProspectState, e: ev.Consent, ts: int, out: list[Out]) -> None:
    bit = 1 << CHANNEL_INDEX[e.channel]
    s.consent = s.consent | bit if e.granted else s.consent & ~bit


def opt_out(p: Parts, s: ProspectState, e: ev.OptOut, ts: int, out: list[Out]) -> None:
    now = s.clock
    s.fatigue = fatigue.on_opt_out(s.fatigue, now, p.k.fatigue)
    if e.channel == "all":
        s.opted_out_all = True
        p.sequencer.exit_all(s, now, out)
    else:
        s.opted_out |= 1 << CHANNEL_INDEX[e.channel]


def do_not_contact(p: Parts, s: ProspectState, e: ev.DoNotContact, ts: int, out: list[Out]) -> None:
    s.do_not_contact = True
    p.sequencer.exit_all(s, s.clock, out)


def bounce(p: Parts, s: ProspectState, e: ev.Bounce, ts: int, out: list[Out]) -> None:
    if e.hard:
        s.bounced |= 1 << CHANNEL_INDEX[e.channel]


def complaint(p: Parts, s: ProspectState, e: ev.Complaint, ts: int, out: list[Out]) -> None:
    now = s.clock
    s.complained |= 1 << CHANNEL_INDEX[e.channel]
    s.complaint_until = max(s.complaint_until, now + p.k.rules.complaint_ms)
    s.fatigue = fatigue.on_complaint(s.fatigue, now, p.k.fatigue)
    p.sequencer.exit_all(s, now, out)


def preference(p: Parts, s: ProspectState, e: ev.Preference, ts: int, out: list[Out]) -> None:
    ch = CHANNEL_INDEX[e.channel]
    if e.stance == "avoid":
        s.avoid |= 1 << ch
        s.only = AUTO if s.only == ch else s.only
        s.prefer = AUTO if s.prefer == ch else s.prefer
    else:
        s.avoid &= ~(1 << ch)
        if e.stance == "only":
            s.only = ch
        else:
            s.prefer = ch
            s.only = AUTO if s.only not in (AUTO, ch) else s.only


# -- engagement signals -------------------------------------------------------------------------


def clicked(p: Parts, s: ProspectState, e: ev.Clicked, ts: int, out: list[Out]) -> None:
    s.engaged_at = max(s.engaged_at, ts)
    s.responded_at = max(s.responded_at, ts)
    answered(p.k, s, CHANNEL_INDEX[e.channel], ts)
    p.sequencer.responded(s)
    limit = p.k.ctx_clicks
    if e.url is not None and limit:
        clicks = s.clicks or []
        clicks.append(e.url)
        s.clicks = clicks[-limit:]


def opened(p: Parts, s: ProspectState, e: ev.Opened, ts: int, out: list[Out]) -> None:
    s.engaged_at = max(s.engaged_at, ts)
    answered(p.k, s, CHANNEL_INDEX[e.channel], ts)


def chat_started(p: Parts, s: ProspectState, e: ev.ChatStarted, ts: int, out: list[Out]) -> None:
    """The prospect opened a chat: their own action, and an answer on chat.

    As a click is: engagement and response (step conditions, the sms follow-up of an opened
    email is not sent), a hit for chat in the learned preference (a chat touch awaiting an
    answer is credited; with none, the prospect chose chat: `chosen_weight`) and fatigue
    relief. It sends nothing: rule 12 names no trigger for
    it (rule 4 only makes a touch answering it exempt from rule 3), and it ends no
    sequence (rule 10: a reply does; the chat's first message arrives as `replied` chat).
    """
    s.engaged_at = max(s.engaged_at, ts)
    s.responded_at = max(s.responded_at, ts)
    answered(p.k, s, _CHAT, ts, chosen=True)
    p.sequencer.responded(s)


def content_download(
    p: Parts, s: ProspectState, e: ev.ContentDownload, ts: int, out: list[Out]
) -> None:
    """The prospect downloaded an asset: engagement on no channel.

    `engaged_at` (step conditions `engaged`, `no_engagement`; the next sequence email keeps
    its subject) and fatigue relief. Not a response (`no_response` steps still go) and no
    preference evidence: no touch of ours on any channel was answered.
    """
    s.engaged_at = max(s.engaged_at, ts)
    s.fatigue = fatigue.on_engagement(s.fatigue, ts, p.k.fatigue)


def delivered(p: Parts, s: ProspectState, e: ev.Delivered, ts: int, out: list[Out]) -> None:
    """A provider confirmed delivery: a fact about our touch, not an answer from the prospect.

    Naming a command, it confirms that command's touch as a `touch_sent` naming it does
    (rule 5): a held reservation is counted already and stays one touch; a reservation
    released by `touch_failed` (or one we never held) went out after all, so it counts as a
    touch at the delivery's time on its channel. A later `touch_sent` naming the same
    command then confirms it. Without a command it changes nothing: a message we did not
    command is counted from its own `touch_sent` (the gateway emits one beside the
    `delivered`), and counting the delivery too would count it twice. Never a reply, no
    preference evidence, no fatigue relief (a delivery says nothing of the prospect).
    """
    if e.command:
        touch = Touch(ts, CHANNEL_INDEX[e.channel], command_key(e.command), None)
        count_touch(p.k, s, touch, s.clock)


def call_outcome(p: Parts, s: ProspectState, e: ev.CallOutcome, ts: int, out: list[Out]) -> None:
    if e.outcome == "answered":
        s.engaged_at = max(s.engaged_at, ts)
        s.responded_at = max(s.responded_at, ts)
        answered(p.k, s, _PHONE, ts)
        p.sequencer.exit_all(s, s.clock, out)  # a conversation happened: sequences end


def meeting_booked(
    p: Parts, s: ProspectState, e: ev.MeetingBooked, ts: int, out: list[Out]
) -> None:
    s.booked_at = max(s.booked_at, ts)
    p.sequencer.exit_all(s, s.clock, out)


def deal_closed(p: Parts, s: ProspectState, e: ev.DealClosed, ts: int, out: list[Out]) -> None:
    now = s.clock
    p.sequencer.exit_all(s, now, out)
    if e.won:
        s.customer = True
    else:
        s.deal_lost_until = max(s.deal_lost_until, now + p.k.deal_lost_ms)


def unenroll(p: Parts, s: ProspectState, e: ev.Unenroll, ts: int, out: list[Out]) -> None:
    p.sequencer.unenroll(s, e.sequence, s.clock, out)


# -- reservations (rule 5) ----------------------------------------------------------------------


def touch_sent(p: Parts, s: ProspectState, e: ev.TouchSent, ts: int, out: list[Out]) -> None:
    key = command_key(e.command) if e.command else 0
    count_touch(p.k, s, Touch(ts, CHANNEL_INDEX[e.channel], key, e.topic), s.clock)


def touch_failed(p: Parts, s: ProspectState, e: ev.TouchFailed, ts: int, out: list[Out]) -> None:
    release(s, command_key(e.command))
