"""SendGrid Event Webhook (a JSON array of events, mixing types and recipients) to contract events.

Custom args arrive as top-level keys of each event: `touchflow_prospect` names the prospect,
`touchflow_command` the command the message fulfils. Without a prospect, the recipient `email`
is looked up in the identity index. Ids come from `sg_event_id` (the same on every retry of the
event), else from the event's canonical JSON. `category` may be a string or a list, `attempt`
a string: neither matters to the mapping, so neither can break it.
"""

from datetime import datetime
from typing import Any, Final

from operators.providers.common import (
    COMMAND_ARG,
    PROSPECT_ARG,
    Draft,
    EmailEvent,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    attached,
    dump,
    email_address,
    fingerprint,
    parse_json,
    string,
    ts_from_unix,
)

PROVIDER: Final = "sendgrid"
_HARD_DROPS: Final = frozenset({"Bounced Address", "Invalid"})
_OPT_OUT_DROPS: Final = frozenset({"Unsubscribed Address", "Spam Reporting Address"})
_SIMPLE: Final = {"delivered": "delivered", "open": "opened", "click": "clicked"}


def map_body(body: bytes, now: datetime) -> Mapped:
    """Map one webhook request; raises NotProviderFormatError unless the body is a JSON array
    (SendGrid always posts an array) or a single event object."""
    payload = parse_json(body)
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        msg = "not a SendGrid event batch: expected a JSON array of events"
        raise NotProviderFormatError(msg)
    out = Mapped()
    for item in payload:
        out.extend(map_event(item, now))
    return out


def map_event(item: Any, now: datetime) -> Mapped:
    """Map one SendGrid event object (see the contract's table for each `event`)."""
    if not isinstance(item, dict):
        return Mapped(unreadable=[Unreadable(dump(item), "SendGrid event is not a JSON object")])
    kind = item.get("event")
    if not isinstance(kind, str) or not kind:
        return Mapped(unreadable=[Unreadable(dump(item), "SendGrid event without `event`")])
    prospect = attached(item.get(PROSPECT_ARG))
    email = email_address(item.get("email"))
    if prospect is None and email is None:
        reason = "SendGrid event names no prospect: no touchflow_prospect and no valid `email`"
        return Mapped(unreadable=[Unreadable(dump(item), reason)])
    command = attached(item.get(COMMAND_ARG))
    native = string(item.get("sg_event_id")) or fingerprint(item)
    ts = ts_from_unix(item.get("timestamp"), now)
    raw = dump(item)
    draft = EmailEvent(PROVIDER, native, ts, prospect, email, raw).draft

    with_command = {"command": command} if command is not None else {}
    drafts: list[Draft] = []
    if kind in _SIMPLE:
        if kind == "open" and item.get("sg_machine_open") is True:
            return Mapped(skipped=["machine_open"])
        extra = {"url": item["url"]} if kind == "click" and string(item.get("url")) else {}
        drafts.append(draft(_SIMPLE[kind], **extra, **with_command))
    elif kind == "bounce":
        drafts.append(draft("bounce", hard=item.get("type") != "blocked"))
    elif kind == "dropped":
        drop_reason = item.get("reason")
        if drop_reason in _HARD_DROPS:
            drafts.append(draft("bounce", hard=True))
        elif drop_reason in _OPT_OUT_DROPS:
            drafts.append(draft("opt_out"))
        elif command is not None:
            drafts.append(draft("touch_failed", command=command))
        else:
            return Mapped(skipped=["dropped"])
    elif kind == "spamreport":
        drafts.append(draft("complaint"))
    elif kind in ("unsubscribe", "group_unsubscribe"):
        drafts.append(draft("opt_out"))
    elif kind == "processed" and command is None:
        # A message touchflow did not command (a rep's email): one touch of the ledger.
        drafts.append(draft("touch_sent", by="rep"))
    else:
        return Mapped(skipped=[kind if kind in _KNOWN else "other"])
    return Mapped(drafts=drafts)


# Event names kept as metric labels; anything else is counted as `other` (labels stay bounded).
_KNOWN: Final = frozenset(
    {"processed", "deferred", "group_resubscribe", "dropped", "open", "click", "bounce"}
)
