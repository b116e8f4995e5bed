"""Hypothesis strategies for contract event streams that exercise every rule.

Per prospect, event times strictly increase (a few ms past whole seconds, so never exactly on a
quiet-hours opening), and redeliveries repeat one of the last few events verbatim. Touch
callbacks name real command ids: ids derive from their cause, so the generator can compute them.
"""

from typing import Any

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
)
SEQUENCES = ["basic", "surround", "escalation", "sms_first", "email_first"]


def _fields(draw: st.DrawFn, kind: str, causes: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
    ch = draw(st.sampled_from(CHANNELS))
    if kind == "touch_request":
        campaign = draw(st.sampled_from(["spring", "webinar", "txn-receipt"]))
        fields: dict[str, Any] = {
            "channel": draw(st.sampled_from([*CHANNELS, "auto", "auto"])),
            "campaign": campaign,
            "topic": draw(st.sampled_from([None, "pricing", "onboarding"])),
        }
        if campaign.startswith("txn"):
            fields["transactional"] = True
        return fields
    if kind == "page_view":
        return {"url": draw(st.sampled_from(["/pricing", "/blog", "/en/pricing?x=1", "/"]))}
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
    if kind in ("touch_sent", "touch_failed"):
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
    if kind in ("complaint", "delivered"):
        return {"channel": ch}
    if kind in ("opened", "clicked"):
        fields = {"channel": "email"}
        if causes and draw(st.booleans()):  # naming a command starts response branching
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
    if kind == "page_view" and "/pricing" in fields["url"]:
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
        fields = _fields(draw, kind, causes)
        event = {"id": f"{prospect}-{i}", "type": kind, "prospect": prospect, "ts": format_ts(t)}
        event.update(fields)
        out.append(event)
        cause = _cause(kind, fields)
        if cause is not None:
            causes.append((event["id"], *cause))
    return out


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
