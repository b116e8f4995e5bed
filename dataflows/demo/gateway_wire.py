"""The simulated providers' side of the gateway: their secrets, their signatures, their requests.

`callbacks` shapes each answer as its provider would post it; this module signs the requests as
the provider signs them (SendGrid's ECDSA Event Webhook, Twilio's HMAC request signature, the
gateway's own Bearer token for first-party events) and posts them with one kept-alive connection
(`GatewayWire`, the sender's `wire.Wire` to a gateway). The secrets are made fresh for each demo
run (`CallbackSecrets.generate`); the gateway gets only the halves it checks with (`gateway_env`,
through its environment), never the simulated SendGrid's private key.
"""

import base64
import binascii
import contextlib
import http.client
import logging
import os
import secrets as random_secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from dataflows.demo.callbacks import Contact, Endpoint, Run, runs, shape
from dataflows.demo.wire import Delivery, Outbound

log = logging.getLogger(__name__)

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


class Signed(NamedTuple):
    provider: str  # the gateway's metric label: events, sendgrid, twilio
    path: str  # with the query
    body: bytes
    headers: dict[str, str]


def sign(run: Run, secrets: CallbackSecrets, signed_base: str, now: float) -> Signed:
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
    """The sender's wire to a touchflow gateway (`wire.Wire`): each answer as the provider's
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

    def _write(self, signed: Signed, run: Run, status: int) -> None:
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
