"""Authenticity checks for the gateway's endpoints (CONTRACT.md section 7), one per scheme.

Each returns a `Check`: `ok`, or why not (`missing`, `bad`, `stale`), for the 401 and the
metrics; never the secret or the expected value. Comparisons are constant-time
(`hmac.compare_digest`, and the providers' own helpers: sendgrid's `EventWebhook` verifies an
ECDSA signature). Signatures that carry a
time are refused when it is more than `max_age_s` away from now, either way (a replayed request,
or a sender clock far off).
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Final, Literal
from urllib.parse import urlparse

from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import add_port, remove_port

Check = Literal["ok", "missing", "bad", "stale"]
SENDGRID_SIGNATURE: Final = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP: Final = "x-twilio-email-event-webhook-timestamp"


def _fresh(timestamp: str, now: float, max_age_s: float) -> Check:
    try:
        when = float(timestamp)
    except ValueError:
        return "bad"
    return "ok" if abs(now - when) <= max_age_s else "stale"


def bearer(headers: Mapping[str, str], token: str) -> Check:
    """`Authorization: Bearer <token>` (first-party producers)."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return "missing"
    return "ok" if hmac.compare_digest(given.strip().encode(), token.encode()) else "bad"


def basic(headers: Mapping[str, str], credentials: str) -> Check:
    """HTTP Basic `user:password` (Postmark puts them in the webhook URL; they arrive here)."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return "missing"
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "bad"
    return "ok" if hmac.compare_digest(given, credentials.encode()) else "bad"


class SendGridVerifier:
    """SendGrid's Signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + body, checked by
    the sendgrid SDK's `EventWebhook` with the public key SendGrid shows (base64 DER)."""

    def __init__(self, public_key: str) -> None:
        try:
            self._webhook = EventWebhook(public_key.strip())
        except (ValueError, TypeError, binascii.Error):
            msg = "TOUCHFLOW_SENDGRID_PUBLIC_KEY is not a base64 EC public key"
            raise ValueError(msg) from None

    def check(self, headers: Mapping[str, str], body: bytes, now: float, max_age_s: float) -> Check:
        signature = headers.get(SENDGRID_SIGNATURE, "").strip()
        timestamp = headers.get(SENDGRID_TIMESTAMP, "").strip()
        if not signature or not timestamp:
            return "missing"
        fresh = _fresh(timestamp, now, max_age_s)
        if fresh != "ok":
            return fresh
        try:
            valid = self._webhook.verify_signature(body.decode("utf-8"), signature, timestamp)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return "bad"
        return "ok" if valid else "bad"


def twilio(
    headers: Mapping[str, str], url: str, pairs: Sequence[tuple[str, str]], auth_token: str
) -> Check:
    """`X-Twilio-Signature`: HMAC-SHA1 over the URL Twilio called and the sorted parameters.

    Accepts exactly what twilio's `RequestValidator(auth_token).validate(url, params, signature)`
    accepts (a test holds the two side by side): the signature of the URL without its port, or
    with its default port added (the SDK's own `remove_port`/`add_port`). The SDK always computes
    both; here the second HMAC is computed only when the first does not match, each compared in
    constant time (`hmac.compare_digest`).
    """
    signature = headers.get("x-twilio-signature", "").strip()
    if not signature:
        return "missing"
    given = signature.encode()
    parsed = urlparse(url)
    tail = _twilio_params(pairs)
    key = auth_token.encode("utf-8")
    without_port = remove_port(parsed)
    if hmac.compare_digest(_twilio_signature(key, without_port, tail), given):
        return "ok"
    with_port = add_port(parsed)
    if with_port != without_port and hmac.compare_digest(
        _twilio_signature(key, with_port, tail), given
    ):
        return "ok"
    return "bad"


def _twilio_params(pairs: Sequence[tuple[str, str]]) -> str:
    """The parameters as `RequestValidator.compute_signature` appends them to the URL: names
    sorted, each name's distinct values sorted, `name + value` for each."""
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def _twilio_signature(key: bytes, url: str, tail: str) -> bytes:
    mac = hmac.new(key, (url + tail).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).strip()


def mailgun(
    timestamp: str, token: str, signature: str, key: str, now: float, max_age_s: float
) -> Check:
    """Mailgun: hex HMAC-SHA256 of timestamp + token with the webhook signing key."""
    if not signature:
        return "missing"
    fresh = _fresh(timestamp, now, max_age_s)
    if fresh != "ok":
        return fresh
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return (
        "ok"
        if hmac.compare_digest(signature.strip().lower().encode(), expected.encode())
        else "bad"
    )


def segment(headers: Mapping[str, str], body: bytes, secret: str) -> Check:
    """Segment: `X-Signature`, hex HMAC-SHA1 of the body with the shared secret."""
    given = headers.get("x-signature", "").strip().lower()
    if not given:
        return "missing"
    expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return "ok" if hmac.compare_digest(given.encode(), expected.encode()) else "bad"


def calendly(
    headers: Mapping[str, str], body: bytes, key: str, now: float, max_age_s: float
) -> Check:
    """Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 of `t.body`."""
    header = headers.get("calendly-webhook-signature", "")
    parts: dict[str, list[str]] = {}
    for piece in header.split(","):
        name, sep, value = piece.strip().partition("=")
        if sep:
            parts.setdefault(name, []).append(value.strip().lower())
    stamps, signatures = parts.get("t", []), parts.get("v1", [])
    if not stamps or not signatures:
        return "missing"
    fresh = _fresh(stamps[0], now, max_age_s)
    if fresh != "ok":
        return fresh
    signed = stamps[0].encode() + b"." + body
    expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest().encode()
    valid = False
    for given in signatures:  # every candidate compared, so timing says nothing of which
        valid |= hmac.compare_digest(given.encode(), expected)
    return "ok" if valid else "bad"


def intercom(headers: Mapping[str, str], body: bytes, client_secret: str) -> Check:
    """Intercom: `X-Hub-Signature: sha1=<hex>`, HMAC-SHA1 of the body with the client secret."""
    scheme, sep, given = headers.get("x-hub-signature", "").strip().partition("=")
    if not sep or scheme.lower() != "sha1" or not given:
        return "missing"
    expected = hmac.new(client_secret.encode(), body, hashlib.sha1).hexdigest()
    return "ok" if hmac.compare_digest(given.lower().encode(), expected.encode()) else "bad"
