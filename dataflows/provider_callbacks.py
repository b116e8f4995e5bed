"""The simulated sender's answers as the providers post them: shaped, signed, sent to the gateway.

`sender.plan` decides what becomes of a command (as contract events); this module is only the
wire, the provider's side of CONTRACT.md section 7. Each answer becomes what the provider that
carries its channel would post to `touchflow gateway`:

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
import binascii
import contextlib
import hashlib
import http.client
import logging
import os
import secrets as random_secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, NamedTuple, Protocol

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from msgspec import Struct
from twilio.request_validator import RequestValidator

from operators.providers.common import COMMAND_ARG, PROSPECT_ARG

log = logging.getLogger(__name__)

EventDict = dict[str, object]

Endpoint = Literal["events", "sendgrid", "twilio/status", "twilio/messages", "twilio/calls"]
PATHS: Final[Mapping[Endpoint, str]] = {
    "events": "/v1/events",
    "sendgrid": "/v1/hooks/sendgrid",
    "twilio/status": "/v1/hooks/twilio/status",
    "twilio/messages": "/v1/hooks/twilio/messages",
    "twilio/calls": "/v1/hooks/twilio/calls",
}
TOKEN_ENV: Final = "TOUCHFLOW_GATEWAY_TOKEN"
TWILIO_ENV: Final = "TOUCHFLOW_TWILIO_AUTH_TOKEN"
SENDGRID_PUBLIC_ENV: Final = "TOUCHFLOW_SENDGRID_PUBLIC_KEY"
# The simulated SendGrid's private key (base64 DER, PKCS#8): the sender signs, the gateway holds
# the public half. A real deployment never has it: SendGrid keeps its own.
SENDGRID_PRIVATE_ENV: Final = "TOUCHFLOW_SENDER_SENDGRID_KEY"
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
_LOG_EVERY_S: Final = 30.0


class CallbackSecrets:
    """What the simulated providers sign with; `gateway_env` is what the gateway checks with.

    Never printed: the repr says only which are set."""

    __slots__ = ("_sendgrid_key", "token", "twilio_auth_token")

    def __init__(
        self, token: str, twilio_auth_token: str, sendgrid_key: ec.EllipticCurvePrivateKey
    ) -> None:
        if not token or not twilio_auth_token:
            msg = "sender: the gateway token and the Twilio auth token must not be empty"
            raise ValueError(msg)
        self.token = token
        self.twilio_auth_token = twilio_auth_token
        self._sendgrid_key = sendgrid_key

    @classmethod
    def generate(cls) -> "CallbackSecrets":
        """A fresh set: random tokens and a new P-256 key, as SendGrid makes one per account."""
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(random_secrets.token_urlsafe(32), random_secrets.token_hex(16), key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "CallbackSecrets":
        names = (TOKEN_ENV, TWILIO_ENV, SENDGRID_PRIVATE_ENV)
        missing = [name for name in names if not environ.get(name)]
        if missing:
            msg = f"sender: --gateway needs {', '.join(missing)} in the environment"
            raise ValueError(msg)
        try:
            der = base64.b64decode(environ[SENDGRID_PRIVATE_ENV].strip(), validate=True)
            key = serialization.load_der_private_key(der, password=None)
        except (binascii.Error, ValueError, TypeError):
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            msg = f"sender: {SENDGRID_PRIVATE_ENV} is not a base64 DER EC private key"
            raise ValueError(msg)
        return cls(environ[TOKEN_ENV], environ[TWILIO_ENV], key)

    def sendgrid_public_key(self) -> str:
        """The verification key as SendGrid shows it: base64 DER (SubjectPublicKeyInfo)."""
        der = self._sendgrid_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def gateway_env(self) -> dict[str, str]:
        """The gateway's side: its token, SendGrid's public key, Twilio's auth token."""
        return {
            TOKEN_ENV: self.token,
            SENDGRID_PUBLIC_ENV: self.sendgrid_public_key(),
            TWILIO_ENV: self.twilio_auth_token,
        }

    def sender_env(self) -> dict[str, str]:
        """The sender's side (`from_env` reads it back)."""
        der = self._sendgrid_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            TOKEN_ENV: self.token,
            TWILIO_ENV: self.twilio_auth_token,
            SENDGRID_PRIVATE_ENV: base64.b64encode(der).decode(),
        }

    def sign_sendgrid(self, timestamp: str, body: bytes) -> str:
        """SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + body."""
        signature = self._sendgrid_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def __repr__(self) -> str:
        return "CallbackSecrets(token=set, twilio_auth_token=set, sendgrid_key=set)"


def write_secrets(path: Path, secrets: CallbackSecrets) -> None:
    """Both sides' variables as `NAME=value` lines, in a new file only its owner can read."""
    lines = sorted((secrets.gateway_env() | secrets.sender_env()).items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{name}={value}\n" for name, value in lines)


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


# -- the sender's wires ---------------------------------------------------------------------


class Outbound(NamedTuple):
    """An answer due now: the command it answers and the contract event, `ts` set."""

    command: str
    event: EventDict

    @property
    def prospect(self) -> str:
        return str(self.event["prospect"])


@dataclass(frozen=True)
class Delivery:
    """What a wire carried of one round: the first `done` answers (their commands may be
    acknowledged); the rest go again later. `requests` counts (endpoint, status)."""

    done: int
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


class Wire(Protocol):
    """Carries the sender's answers: to the event streams, or to a gateway as providers do."""

    def send(self, answers: Sequence[Outbound], now: float) -> Delivery: ...

    def close(self) -> None: ...


# -- what each answer becomes --------------------------------------------------------------------


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


class _Run(NamedTuple):
    """Consecutive parts that go in one request; `first` is the index of its first answer."""

    endpoint: Endpoint
    query: str
    payloads: list[dict[str, Any]]
    first: int


def runs(parts: Sequence[tuple[int, Part]]) -> list[_Run]:
    """Requests in order: consecutive SendGrid events (or contract events) batched, one request
    for every Twilio callback."""
    out: list[_Run] = []
    for index, part in parts:
        last = out[-1] if out else None
        batched = part.endpoint in ("events", "sendgrid")
        if last is not None and batched and last.endpoint == part.endpoint:
            last.payloads.append(part.payload)
        else:
            out.append(_Run(part.endpoint, part.query, [part.payload], index))
    return out


# -- the wire ---------------------------------------------------------------------------------


class Signed(NamedTuple):
    provider: str  # the gateway's metric label: events, sendgrid, twilio
    path: str  # with the query
    body: bytes
    headers: dict[str, str]


def sign(run: _Run, secrets: CallbackSecrets, signed_base: str, now: float) -> Signed:
    """One request as its provider signs it (`signed_base`: the URL base the gateway sees)."""
    path = PATHS[run.endpoint] + (f"?{run.query}" if run.query else "")
    if run.endpoint == "events":
        headers = {"Authorization": f"Bearer {secrets.token}"}
        body = orjson.dumps(run.payloads)
        return Signed("events", path, body, headers | {"Content-Type": "application/json"})
    if run.endpoint == "sendgrid":
        body = orjson.dumps(run.payloads)
        stamp = str(int(now))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": secrets.sign_sendgrid(stamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        return Signed("sendgrid", path, body, headers)
    (params,) = run.payloads
    validator = RequestValidator(secrets.twilio_auth_token)
    signature = validator.compute_signature(signed_base + path, params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return Signed("twilio", path, urllib.parse.urlencode(params).encode(), headers)


class Http:
    """One kept-alive HTTP/1.1 connection (stdlib: no proxy settings apply, none needed)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"sender: the gateway URL must be http(s)://host[:port], got {url!r}"
            raise ValueError(msg)
        self.prefix = parts.path.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body); OSError or HTTPException when the server cannot be reached. A kept-
        alive connection the server closed meanwhile is retried once on a new one."""
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or self._open()
            try:
                conn.request(method, self.prefix + path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            self._conn = None if response.will_close else conn
            if response.will_close:
                conn.close()
            return response.status, data
        msg = "unreachable"
        raise AssertionError(msg)

    def _open(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        self._conn = kind(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class GatewayWire:
    """The sender's wire to a touchflow gateway (`sender.Wire`): each answer as the provider's
    signed callback. A request the gateway does not take (no answer, 5xx, 429) stops the round:
    it and every later answer are retried by the sender; a 4xx is logged and not retried (a
    provider would not either), so a wrong secret shows in the counts and the log at once."""

    def __init__(
        self,
        url: str,
        secrets: CallbackSecrets,
        *,
        contacts: Mapping[str, Contact] | None = None,
        public_url: str | None = None,
        log_to: IO[bytes] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = Http(url, timeout)
        self._secrets = secrets
        self._contacts = contacts or {}
        self._signed_base = (public_url or url).rstrip("/")
        self._log = log_to
        self._warned: dict[str, float] = {}

    def send(self, answers: Sequence[Outbound], now: float) -> Delivery:
        parts = [
            (n, part)
            for n, out in enumerate(answers)
            for part in shape(out.command, out.event, self._contacts.get(out.prospect), now)
        ]
        requests: Counter[tuple[str, str]] = Counter()
        for run in runs(parts):
            signed = sign(run, self._secrets, self._signed_base, now)
            try:
                status, reply = self._http.request("POST", signed.path, signed.body, signed.headers)
            except (OSError, http.client.HTTPException) as exc:
                requests[signed.provider, "error"] += 1
                self._warn("unreachable", f"sender: gateway unreachable ({exc!r}); retrying")
                return Delivery(run.first, requests)
            requests[signed.provider, str(status)] += 1
            self._write(signed, run, status)
            if status >= 500 or status == 429:
                self._warn(str(status), f"sender: gateway answered {status}; retrying")
                return Delivery(run.first, requests)
            if status >= 300:
                text = reply[:200].decode(errors="replace")
                self._warn(str(status), f"sender: gateway refused a {signed.provider} callback: "
                           f"{status} {text}")  # fmt: skip
        return Delivery(len(answers), requests)

    def _write(self, signed: Signed, run: _Run, status: int) -> None:
        if self._log is not None:
            payload: Any = run.payloads if signed.provider != "twilio" else run.payloads[0]
            record = {"provider": signed.provider, "path": signed.path, "status": status}
            self._log.write(orjson.dumps(record | {"payload": payload}) + b"\n")

    def _warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._warned[key] = now
            log.warning("%s", message)

    def close(self) -> None:
        self._http.close()
        if self._log is not None:
            with contextlib.suppress(OSError, ValueError):
                self._log.flush()
