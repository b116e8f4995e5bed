"""The simulated sender's answers shaped as the providers post them (CONTRACT.md section 7).

`answers.plan` decides what becomes of a command (as contract events); this module decides only
what each answer looks like on the provider's side, as pure functions of the answer, so the
shapes can be tested without a gateway; `gateway_wire` signs and posts them. Each answer becomes
what the provider that carries its channel would post to `touchflow gateway`:

| the sender's answer | what reaches the gateway |
|---|---|
| email delivered / opened / clicked | SendGrid `delivered` / `open` / `click` |
| email bounce hard / soft | SendGrid `bounce`, type `bounce` / `blocked` |
| email touch_failed / opt_out | SendGrid `dropped` (`Invalid SMTPAPI header`) / `unsubscribe` |
| sms delivered / touch_failed | Twilio message status `delivered` / `failed` (30008) |
| sms bounce hard / soft | Twilio message status `undelivered`, error 30005 / 30003 |
| sms replied | Twilio inbound message From the prospect's phone (a stop word: `OptOutType=STOP`) |
| call_outcome | Twilio call status `completed` (`AnsweredBy` human, machine), `no-answer`, `busy` |
| touch_sent, and whatever has no provider | first-party `POST /v1/events` (Bearer token) |

A `touch_sent` of an email or an sms also gets the provider's own report that it went out (SendGrid
`processed`, Twilio `sent`): with a command attached they have no contract meaning, and the
gateway counts them as ignored. SendGrid events carry the custom args `touchflow_prospect` and
`touchflow_command`; Twilio status and call callbacks carry `prospect` and `command` in the
callback URL's query; an inbound sms carries only its From number, which the gateway looks up
in the identity index (without a known phone the reply goes first-party instead).

Provider ids (`sg_event_id`, `MessageSid`, `CallSid`) derive from the command id, so a command
answered twice yields the same provider ids, hence the same gateway event ids. Consecutive answers
for SendGrid (or for `/v1/events`) go in one request, as SendGrid batches; every Twilio callback
is a request of its own; requests go out in the order their answers were due.
"""

import base64
import hashlib
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final, Literal, NamedTuple

import orjson
from msgspec import Struct

from operators.providers.common import COMMAND_ARG, PROSPECT_ARG

Endpoint = Literal["events", "sendgrid", "twilio/status", "twilio/messages", "twilio/calls"]

SENDER_NUMBER: Final = "+15005550006"  # Twilio's test number that sends successfully
ACCOUNT_SID: Final = "AC" + hashlib.sha256(b"touchflow-demo").hexdigest()[:32]
_STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
_SENDGRID: Final = {
    "delivered": "delivered",
    "opened": "open",
    "clicked": "click",
    "bounce": "bounce",
    "touch_failed": "dropped",
    "opt_out": "unsubscribe",
}
_CALLS: Final = {"answered": "completed", "voicemail": "completed", "no_answer": "no-answer"}


class Contact(Struct, frozen=True, kw_only=True):
    """A prospect's addresses as its profiles gave them: the recipient the providers report."""

    email: str | None = None
    phone: str | None = None


def contacts_from_lines(lines: Iterable[bytes]) -> dict[str, Contact]:
    """Each prospect's merged email and phone from the `profile` events among `lines` (later
    values overwrite earlier ones; lines that are not events are skipped)."""
    found: dict[str, dict[str, str]] = {}
    for line in lines:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict) or event.get("type") != "profile":
            continue
        prospect = event.get("prospect")
        if isinstance(prospect, str):
            mine = found.setdefault(prospect, {})
            mine.update((k, v) for k in ("email", "phone") if isinstance(v := event.get(k), str))
    return {pid: Contact(**fields) for pid, fields in found.items()}


class Part(NamedTuple):
    """One provider event (or contract event) for one endpoint; `query` for Twilio callbacks."""

    endpoint: Endpoint
    payload: dict[str, Any]
    query: str = ""


def _digest(*parts: str, size: int = 32) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:size]


def shape(
    command: str, answer: Mapping[str, Any], contact: Contact | None, now: float
) -> list[Part]:
    """The provider events one answer becomes (see the module's table), in the order sent."""
    kind, channel = answer["type"], answer.get("channel")
    event = dict(answer)
    if kind == "call_outcome":
        return [_call(command, answer, contact, now)]
    if channel == "email":
        if kind == "touch_sent":
            return [Part("events", event), _sendgrid(command, answer, contact, "processed", now)]
        if kind in _SENDGRID:
            return [_sendgrid(command, answer, contact, _SENDGRID[kind], now)]
    elif channel == "sms":
        if kind == "touch_sent":
            return [Part("events", event), _status(command, answer, contact, "sent")]
        if kind == "delivered":
            return [_status(command, answer, contact, "delivered")]
        if kind == "touch_failed":
            return [_status(command, answer, contact, "failed", "30008")]  # unknown error
        if kind == "bounce":  # 30005 unknown destination handset; 30003 unreachable
            code = "30005" if answer.get("hard") else "30003"
            return [_status(command, answer, contact, "undelivered", code)]
        if kind == "replied" and contact is not None and contact.phone:
            return [_inbound(command, answer, contact.phone)]
    return [Part("events", event)]


def _sendgrid(
    command: str, answer: Mapping[str, Any], contact: Contact | None, kind: str, now: float
) -> Part:
    prospect = str(answer["prospect"])
    event: dict[str, Any] = {
        "email": (contact.email if contact else None) or f"{prospect}@example.invalid",
        "timestamp": int(now),
        "event": kind,
        "sg_event_id": base64.urlsafe_b64encode(bytes.fromhex(_digest("sg", command, kind)))
        .decode()
        .rstrip("="),
        "sg_message_id": f"{_digest('sgm', command, size=22)}.filterdrecv-p3mdw1-0-0.0",
        "smtp-id": f"<{_digest('smtp', command, size=20)}@touchflow.example>",
        "category": ["touchflow"],
        PROSPECT_ARG: prospect,
        COMMAND_ARG: command,
    }
    if kind == "delivered":
        event["response"] = "250 2.0.0 OK"
    elif kind in ("open", "click"):
        event.update(useragent="Mozilla/5.0 (Macintosh)", ip="192.0.2.10")
        if kind == "click":
            event.update(url=answer.get("url", ""), url_offset={"index": 0, "type": "html"})
    elif kind == "bounce" and answer.get("hard"):
        event.update(type="bounce", status="5.1.1", bounce_classification="Invalid Address")
        event["reason"] = "550 5.1.1 The email account that you tried to reach does not exist"
    elif kind == "bounce":
        event.update(type="blocked", status="4.7.1", bounce_classification="Reputation")
        event["reason"] = "421 4.7.1 Try again later, closing connection"
    elif kind == "dropped":
        event["reason"] = "Invalid SMTPAPI header"
    return Part("sendgrid", event)


def _callback_query(command: str, answer: Mapping[str, Any]) -> str:
    return urllib.parse.urlencode({"prospect": str(answer["prospect"]), "command": command})


def _status(
    command: str,
    answer: Mapping[str, Any],
    contact: Contact | None,
    status: str,
    error: str | None = None,
) -> Part:
    sid = "SM" + _digest("message", command)
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": SENDER_NUMBER}
    if contact is not None and contact.phone:
        params["To"] = contact.phone
    params.update(MessageStatus=status, SmsStatus=status, ApiVersion="2010-04-01")
    if error is not None:
        params["ErrorCode"] = error
    return Part("twilio/status", params, _callback_query(command, answer))


def _inbound(command: str, answer: Mapping[str, Any], phone: str) -> Part:
    sid = "SM" + _digest("reply", command)
    body = str(answer.get("text") or "")
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": phone,
        "To": SENDER_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if body.strip().upper() in _STOP_WORDS:  # Advanced Opt-Out classified it
        params["OptOutType"] = "STOP"
    return Part("twilio/messages", params)


def _call(command: str, answer: Mapping[str, Any], contact: Contact | None, now: float) -> Part:
    outcome = str(answer.get("outcome"))
    status = _CALLS.get(outcome, outcome)
    params = {"CallSid": "CA" + _digest("call", command), "AccountSid": ACCOUNT_SID}
    params.update(From=SENDER_NUMBER, CallStatus=status, Direction="outbound-api")
    if contact is not None and contact.phone:
        params["To"] = contact.phone
    params.update(
        ApiVersion="2010-04-01",
        Timestamp=format_datetime(datetime.fromtimestamp(now, UTC), usegmt=True),
        CallbackSource="call-progress-events",
        SequenceNumber="0",
        CallDuration="41" if status == "completed" else "0",
    )
    if status == "completed":  # answering-machine detection on
        params["AnsweredBy"] = "machine_end_beep" if outcome == "voicemail" else "human"
    return Part("twilio/calls", params, _callback_query(command, answer))


class Run(NamedTuple):
    """Consecutive parts that go in one request; `first` is the index of its first answer."""

    endpoint: Endpoint
    query: str
    payloads: list[dict[str, Any]]
    first: int


def runs(parts: Sequence[tuple[int, Part]]) -> list[Run]:
    """Requests in order: consecutive SendGrid events (or contract events) batched, one request
    for every Twilio callback."""
    out: list[Run] = []
    for index, part in parts:
        last = out[-1] if out else None
        batched = part.endpoint in ("events", "sendgrid")
        if last is not None and batched and last.endpoint == part.endpoint:
            last.payloads.append(part.payload)
        else:
            out.append(Run(part.endpoint, part.query, [part.payload], index))
    return out
