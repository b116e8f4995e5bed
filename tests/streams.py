"""Hypothesis strategies for contract event streams that exercise every rule.

Per prospect, event times strictly increase (whole seconds: an event may fall on the due time of
a timer, which then fires first, as it does on exact window edges), and redeliveries repeat one
of the last few events verbatim. Touch callbacks (and deliveries) name real command ids: ids
derive from their cause, so the generator can compute them.

Bursts put several candidates (requests of different priorities, triggers, an enrollment) within
minutes of each other: they share an arbitration window, and when held they come due together at
the same quiet-hours opening or cap expiry, the instants rule 13 orders. Nights are the issue's
case: a call or text request and a proposal view late in the prospect's evening, both held for
the same opening at 08:00.
"""

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from operators.engine import command_id
from operators.timeutil import format_ts, parse_ts

START = parse_ts("2026-03-06T12:00:07Z")  # spans the US DST change on March 8
CHANNELS = ["email", "sms", "phone", "chat", "linkedin"]
ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata"]
PHONES = ["+13055550123", "+14155550123", "+447700900123", "+18005550123", "+12125550199"]
SMS_TEXTS = ["STOP", " stop ", "START", "yes", "Unsubscribe", "sounds good", "UNSTOP"]
GAPS = st.one_of(
    st.integers(1, 59).map(lambda m: m * 60_000),
    st.integers(1, 30).map(lambda h: h * 3_600_000),
    st.integers(1, 4).map(lambda d: d * 86_400_000),
    st.sampled_from([86_400_000, 7 * 86_400_000]),  # exact window edges
)
KINDS = (
    ["touch_request"] * 6
    + ["form_submit", "proposal_view", "chat_started", "content_download"]
    + ["page_view"] * 3
    + ["consent"] * 3
    + ["profile"] * 2
    + ["replied"] * 3
    + ["touch_sent"] * 3
    + ["touch_failed"] * 2
    + ["clicked", "opened", "delivered", "bounce", "complaint", "opt_out", "preference"]
    + ["do_not_contact", "call_outcome", "meeting_booked", "deal_closed", "duplicate"]
    + ["enroll", "enroll", "enroll", "unenroll"]
    + ["burst"] * 3
    + ["night"]
)
SEQUENCES = ["basic", "surround", "escalation", "sms_first", "email_first"]
# Each campaign's priority (None: the field left out, so 0); tests.reference reads them back.
CAMPAIGNS = {"spring": None, "webinar": 5, "renewal": 9, "txn-receipt": None}
PAGES = [
    "/pricing",
    "/blog",
    "/en/pricing?x=1",
    "/",
    "/blog?ref=/pricing",  # rule 12: the path only, so no trigger
    "https://x.example/pricing/enterprise?a=1#f",
]
BURST_KINDS = ["touch_request"] * 4 + ["proposal_view", "form_submit", "page_view", "enroll"]


def _fields(draw: st.DrawFn, kind: str, causes: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    ch = draw(st.sampled_from(CHANNELS))
    if kind == "touch_request":
        campaign = draw(st.sampled_from(list(CAMPAIGNS)))
        fields: dict[str, Any] = {
            "channel": draw(st.sampled_from([*CHANNELS, "auto", "auto"])),
            "campaign": campaign,
            "topic": draw(st.sampled_from([None, "pricing", "onboarding"])),
        }
        if campaign.startswith("txn"):
            fields["transactional"] = True
        if CAMPAIGNS[campaign] is not None:
            fields["priority"] = CAMPAIGNS[campaign]
        return fields
    if kind == "page_view":
        return {"url": draw(st.sampled_from(PAGES))}
    if kind == "consent":
        return {
            "channel": draw(st.sampled_from(["sms", "phone", "sms", "email"])),
            "granted": draw(st.booleans() | st.just(True)),
        }
    if kind == "profile":
        return draw(
            st.sampled_from(
                [
                    {"timezone": draw(st.sampled_from(ZONES))},
                    {"phone": draw(st.sampled_from(PHONES))},
                    {"region": draw(st.sampled_from(["US-FL", "us-md", "US-CA"]))},
                ]
            )
        )
    if kind == "replied":
        if ch == "sms" and draw(st.booleans()):
            return {"channel": "sms", "text": draw(st.sampled_from(SMS_TEXTS))}
        return {
            "channel": ch,
            "sentiment": draw(
                st.sampled_from([None, "positive", "neutral", "negative", "out_of_office"])
            ),
        }
    if kind in ("touch_sent", "touch_failed", "delivered"):
        command = None
        if causes and draw(st.integers(0, 3)) > 0:
            cause_id, reason, chans = draw(st.sampled_from(causes))
            ch = draw(st.sampled_from(chans))
            command = command_id(draw_prospect(causes), cause_id, ch, reason)
        if kind == "touch_failed":
            return {"channel": ch, "command": command or "unknown-command"}
        return {"channel": ch, "command": command}
    if kind == "opt_out":
        return {"channel": draw(st.sampled_from([*CHANNELS, "all"]))}
    if kind == "bounce":
        return {"channel": ch, "hard": draw(st.booleans())}
    if kind == "complaint":
        return {"channel": ch}
    if kind in ("opened", "clicked"):
        fields = {"channel": "email"}
        naming = bool(causes) and draw(st.booleans())  # a command starts response branching
        if naming:
            cause_id, reason, chans = draw(st.sampled_from(causes))
            fields["command"] = command_id(draw_prospect(causes), cause_id, "email", reason)
        if kind == "clicked":
            fields["url"] = "https://x.example/case-study"
        return fields
    if kind == "preference":
        return {"channel": ch, "stance": draw(st.sampled_from(["only", "prefer", "avoid"]))}
    if kind == "call_outcome":
        return {"outcome": draw(st.sampled_from(["voicemail", "answered", "no_answer"]))}
    if kind == "deal_closed":
        return {"won": draw(st.booleans())}
    if kind == "enroll":
        return {"sequence": draw(st.sampled_from(SEQUENCES))}
    if kind == "unenroll":
        return {"sequence": draw(st.sampled_from([None, *SEQUENCES]))}
    return {}


def draw_prospect(causes: list[tuple[str, str, list[str]]]) -> str:
    """Cause ids are `<prospect>-<n>`: recover the prospect."""
    return causes[0][0].rsplit("-", 1)[0]


def _cause(kind: str, fields: dict[str, Any]) -> tuple[str, list[str]] | None:
    if kind == "touch_request":
        chans = CHANNELS if fields["channel"] == "auto" else [fields["channel"]]
        return f"request:{fields['campaign']}", chans
    if kind == "form_submit":
        return "trigger:form_submit", ["email", "phone"]
    if kind == "proposal_view":
        return "trigger:proposal_view", ["sms"]
    if kind == "page_view" and "/pricing" in urlsplit(fields["url"]).path:
        return "trigger:pricing_page", ["chat"]
    if kind == "enroll":
        return f"sequence:{fields['sequence']}:1", ["email", "sms"]
    return None


@st.composite
def prospect_stream(draw: st.DrawFn, prospect: str, max_events: int = 40) -> list[dict[str, Any]]:
    """One prospect's events in time order, with occasional verbatim redeliveries."""
    n = draw(st.integers(1, max_events))
    t = START + draw(st.integers(0, 86_400)) * 1000
    out: list[dict[str, Any]] = []
    causes: list[tuple[str, str, list[str]]] = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS))
        if kind == "duplicate":
            if out:
                out.append(dict(draw(st.sampled_from(out[-4:]))))
            continue
        t += draw(GAPS)
        if kind == "night":
            t = _night(draw, prospect, i, t, causes, out)
            continue
        if kind != "burst":
            out.append(_event(draw, prospect, f"{prospect}-{i}", kind, t, causes))
            continue
        # Seconds apart (inside one arbitration window) or just after the window closed.
        for j in range(draw(st.integers(2, 4))):
            kind = draw(st.sampled_from(BURST_KINDS))
            out.append(_event(draw, prospect, f"{prospect}-{i}{'abcd'[j]}", kind, t, causes))
            t += draw(st.sampled_from([10_000, 20_000, 90_000]))
    return out


def _night(
    draw: st.DrawFn,
    prospect: str,
    i: int,
    t: int,
    causes: list[tuple[str, str, list[str]]],
    out: list[dict[str, Any]],
) -> int:
    """A day later at 23:00 in a zone the profile names: consent for sms and phone, a call or
    text request, then (after its arbitration window) a proposal view. The time after."""
    zone = draw(st.sampled_from(ZONES))
    local = datetime.fromtimestamp(t / 1000 + 86_400, ZoneInfo(zone))
    night = local.replace(hour=23, minute=0, second=7, microsecond=0)
    if night <= local:
        night += timedelta(days=1)
    t = int(night.timestamp()) * 1000
    docs: list[tuple[str, dict[str, Any]]] = [
        ("profile", {"timezone": zone}),
        ("consent", {"channel": "sms", "granted": True}),
        ("consent", {"channel": "phone", "granted": True}),
        ("touch_request", {**_fields(draw, "touch_request", causes), "channel": "phone"}),
        ("proposal_view", {}),
    ]
    if draw(st.booleans()):
        docs[3][1]["channel"] = "sms"
    for j, (kind, fields) in enumerate(docs):
        ident = f"{prospect}-{i}{'abcde'[j]}"
        event = {"id": ident, "type": kind, "prospect": prospect, "ts": format_ts(t), **fields}
        out.append(event)
        cause = _cause(kind, fields)
        if cause is not None:
            causes.append((ident, *cause))
        t += 90_000 if kind == "touch_request" else 1000
    return t


def _event(
    draw: st.DrawFn,
    prospect: str,
    ident: str,
    kind: str,
    t: int,
    causes: list[tuple[str, str, list[str]]],
) -> dict[str, Any]:
    fields = _fields(draw, kind, causes)
    event = {"id": ident, "type": kind, "prospect": prospect, "ts": format_ts(t)}
    event.update(fields)
    cause = _cause(kind, fields)
    if cause is not None:
        causes.append((ident, *cause))
    return event


@st.composite
def event_streams(
    draw: st.DrawFn, prospects: int = 3, max_events: int = 40
) -> list[dict[str, Any]]:
    """Several prospects' streams interleaved in a random order that keeps each one's order."""
    streams = [draw(prospect_stream(f"p{k}", max_events)) for k in range(prospects)]
    merged: list[dict[str, Any]] = []
    cursors = [0] * len(streams)
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        live = [k for k, s in enumerate(streams) if cursors[k] < len(s)]
        k = draw(st.sampled_from(live))
        merged.append(streams[k][cursors[k]])
        cursors[k] += 1
    return merged
