"""Twilio inbound SMS, message status and call status callbacks (form-encoded) to contract events.

Parameters come in any order, with extras Twilio adds over time: only the named ones are read,
each once. Status and call callbacks carry the ids touchflow attached to the callback URL (query
`prospect`, `command`); without them, the prospect's number (`To` of an outbound message or call,
`From` of an inbound one) is looked up in the identity index. Ids derive from `MessageSid` or
`CallSid` (plus the status where one message has several), so a retried callback repeats them.
"""

import re
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from operators.providers.common import (
    Address,
    Draft,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    attached,
    dump,
    e164,
    event_id,
    rfc3339,
    string,
)

PROVIDER: Final = "twilio"
# Message error codes with a meaning of their own: 21610 = the recipient replied STOP earlier
# (Twilio blocks the number); 30005 = unknown or inactive number; 30006 = landline/unreachable.
_OPT_OUT_ERRORS: Final = frozenset({"21610"})
_HARD_BOUNCE_ERRORS: Final = frozenset({"30005", "30006"})
_CALL_OUTCOMES: Final = {"busy": "busy", "no-answer": "no_answer", "failed": "failed"}
_FINAL_CALL: Final = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_MESSAGE_STATUSES: Final = frozenset(
    {"accepted", "scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed",
     "receiving", "received", "read", "canceled", "partially_delivered"}
)  # fmt: skip
_CALL_STATUSES: Final = frozenset(
    {"queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
     "canceled"}
)  # fmt: skip

Params = Mapping[str, str]


def parse_form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The form's (name, value) pairs in order, repeats kept (the signature covers them all)."""
    return parse_pairs(body.decode("utf-8", errors="replace"))


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """`urllib.parse.parse_qsl(text, keep_blank_values=True)` exactly (a test holds the two side
    by side), for less (a Twilio status callback's form: 3.3 us, 4.4 part by part). Text
    without escapes is split as it is. ASCII text where no escape stands for a separator
    (`%26` is `&`, `%3D` is `=`) is unescaped whole, then split: splitting first and
    unescaping each part gives the same pairs, since an escape never spans a separator and a
    UTF-8 decoder starts afresh at every ASCII byte. Other text with escapes (non-ASCII, which
    `unquote` treats run by run, or escaped separators) is read part by part. Text whose only
    escapes are `%2B` (the `+` of every E.164 number a callback carries) is unescaped by two
    replaces, without the checks and `unquote_to_bytes`' loop (~1 µs): each `%2B` is the one
    byte `+`, an ASCII byte that splits no UTF-8 sequence and is no separator, whatever the rest
    of the text is."""
    if "%" not in text:
        whole = text.replace("+", " ") if "+" in text else text
    elif text.count("%") == text.count("%2B"):  # every `%` starts a `%2B` (they cannot overlap)
        whole = text.replace("+", " ").replace("%2B", "+")
    elif text.isascii() and not _ESCAPED_SEPARATOR.search(text):
        whole = urllib.parse.unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "replace")
    else:
        return _parse_parts(text)
    pairs: list[tuple[str, str]] = []
    for piece in whole.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs


_ESCAPED_SEPARATOR: Final = re.compile("%(?:26|3[dD])")


def _parse_parts(text: str) -> list[tuple[str, str]]:
    """`parse_pairs` part by part: `unquote` and the `+` to space replacement only on the parts
    that need them."""
    pairs: list[tuple[str, str]] = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = _unquote(name)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = _unquote(value)
        pairs.append((name, value))
    return pairs


def _unquote(text: str) -> str:
    if text.isascii():  # what `unquote` does with an ASCII string, without its regex split
        return urllib.parse.unquote_to_bytes(text).decode("utf-8", errors="replace")
    return urllib.parse.unquote(text, errors="replace")


def first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The first value of each name (Twilio sends each parameter once)."""
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name, value)
    return params


class _Event:
    """The common parts of one callback: its id base, time, prospect or number, raw form."""

    def __init__(self, params: Params, query: Params, sid: str, number: str, now: datetime):
        self.native = sid
        self.ts = _call_time(params.get("Timestamp"), now)
        self.prospect = attached(query.get("prospect"))
        self.command = attached(query.get("command"))
        self.address: Address | None = None
        self.raw = b""  # the form as JSON, for a dead letter: only a number to resolve needs it
        if self.prospect is None:
            phone = e164(params.get(number))
            self.address = Address("phone", phone) if phone else None
            self.raw = dump(dict(sorted(params.items())))

    def draft(self, contract: str, native: str | None = None, **fields: Any) -> Draft:
        return Draft(
            id=event_id(PROVIDER, native or self.native, contract),
            type=contract,
            ts=self.ts,
            fields=fields,
            prospect=self.prospect,
            address=self.address,
            raw=self.raw,
        )

    def unresolvable(self) -> Mapped | None:
        if self.prospect is None and self.address is None:
            reason = "Twilio callback names no prospect: no `prospect` query and no E.164 number"
            return Mapped(unreadable=[Unreadable(self.raw, reason)])
        return None


def _sid(params: Params, name: str) -> str:
    sid = string(params.get(name))
    if sid is None:
        msg = f"not a Twilio callback: no {name}"
        raise NotProviderFormatError(msg)
    return sid


def map_inbound(params: Params, now: datetime) -> Mapped:
    """An inbound SMS: `replied` sms with the Body; also `opt_out` sms when Twilio's Advanced
    Opt-Out classified it as STOP (`OptOutType`)."""
    event = _Event(params, {}, _sid(params, "MessageSid"), "From", now)
    if (bad := event.unresolvable()) is not None:
        return bad
    drafts = [event.draft("replied", channel="sms", text=params.get("Body", ""))]
    if params.get("OptOutType", "").upper() == "STOP":
        drafts.append(event.draft("opt_out", channel="sms"))
    return Mapped(drafts=drafts)


def map_message_status(params: Params, query: Params, now: datetime) -> Mapped:
    """A message status callback (see the contract's table; `sent` of a message touchflow did
    not command is a rep's touch)."""
    sid = _sid(params, "MessageSid")
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    event = _Event(params, query, sid, "To", now)
    if (bad := event.unresolvable()) is not None:
        return bad
    drafts: list[Draft] = []
    command = {"command": event.command} if event.command is not None else {}
    if status == "delivered":
        drafts.append(event.draft("delivered", f"{sid}.delivered", channel="sms", **command))
    elif status in ("undelivered", "failed"):
        error = params.get("ErrorCode", "").strip()
        if event.command is not None:
            drafts.append(event.draft("touch_failed", channel="sms", command=event.command))
        if error in _OPT_OUT_ERRORS:
            drafts.append(event.draft("opt_out", channel="sms"))
        if error in _HARD_BOUNCE_ERRORS:
            drafts.append(event.draft("bounce", channel="sms", hard=True))
    elif status == "sent" and event.command is None:
        drafts.append(event.draft("touch_sent", channel="sms", by="rep"))
    if not drafts:
        return Mapped(skipped=[f"message_{status if status in _MESSAGE_STATUSES else 'other'}"])
    return Mapped(drafts=drafts)


def map_call_status(params: Params, query: Params, now: datetime) -> Mapped:
    """A voice status callback: the outcome of a finished call (answered by a person or without
    answering-machine detection, or by a machine = voicemail), and for a call touchflow did not
    command, one rep's touch once it reached any final status."""
    sid = _sid(params, "CallSid")
    status = params.get("CallStatus", "")
    inbound = params.get("Direction", "").startswith("inbound")
    event = _Event(params, query, sid, "From" if inbound else "To", now)
    if (bad := event.unresolvable()) is not None:
        return bad
    command = {"command": event.command} if event.command is not None else {}
    drafts: list[Draft] = []
    outcome = _CALL_OUTCOMES.get(status)
    if status == "completed":
        answered_by = params.get("AnsweredBy", "")
        machine = answered_by.startswith("machine") or answered_by == "fax"
        outcome = "voicemail" if machine else "answered"
    if outcome is not None:
        drafts.append(event.draft("call_outcome", outcome=outcome, **command))
    if status in _FINAL_CALL and event.command is None:
        drafts.append(event.draft("touch_sent", channel="phone", by="rep"))
    if not drafts:
        return Mapped(skipped=[f"call_{status if status in _CALL_STATUSES else 'other'}"])
    return Mapped(drafts=drafts)


def _call_time(value: str | None, now: datetime) -> str:
    """Voice callbacks carry `Timestamp` (RFC 2822); message callbacks carry none: arrival."""
    if value:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return rfc3339(moment)
    return rfc3339(now)
