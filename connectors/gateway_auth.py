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
import re
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Final, Literal, NamedTuple
from urllib.parse import urlparse

from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    add_port,
    get_signature_algorithm,
    remove_port,
)

Check = Literal["ok", "missing", "bad", "stale"]
SENDGRID_SIGNATURE: Final = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP: Final = "x-twilio-email-event-webhook-timestamp"
SIGNATURE_SETTINGS_HEADER: Final = "x-twilio-webhooks-signature-settings"
_TWILIO_HASHES: Final = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


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


class TwilioKeys(NamedTuple):
    """The secrets a Twilio signature may be made with: the account Auth Token (requests without
    `X-Twilio-Webhooks-Signature-Settings`), and the SharedKey secrets (requests with it: a
    Webhook Rule of Twilio's Webhooks configuration API matched the URL). Several shared keys
    while one is rotated: Twilio retries a request signed with the old one for a while."""

    auth_token: bytes | None
    shared: tuple[bytes, ...]

    @classmethod
    def of(cls, auth_token: str | None, shared_keys: str | None) -> "TwilioKeys":
        """From the environment's values; `shared_keys` holds one or more, space-separated."""
        shared = tuple(key.encode("utf-8") for key in (shared_keys or "").split())
        return cls(auth_token.encode("utf-8") if auth_token else None, shared)


def twilio(
    headers: Mapping[str, str],
    url: str,
    pairs: Sequence[tuple[str, str]],
    keys: TwilioKeys,
    params: Mapping[str, str] | None = None,
) -> Check:
    """`X-Twilio-Signature`: HMAC over the URL Twilio called and the sorted parameters.

    Accepts exactly what twilio's `RequestValidator(secret).validate(url, params, signature,
    algorithm)` accepts (a test holds the two side by side): without a
    `X-Twilio-Webhooks-Signature-Settings` header, HMAC-SHA1 with the Auth Token; with it, the
    header's algorithm (the SDK's `get_signature_algorithm`: HMAC_SHA1 or HMAC_SHA256; any
    other is refused, as the SDK refuses it) with a SharedKey secret, never the Auth Token. For
    each, the URL without its port, or with its default port added (the SDK's own
    `remove_port`/`add_port`). The SDK always computes both URL variants; here the one equal to
    the URL as given first, the other only when it does not match. Every secret of a variant is
    compared, in constant time, so the timing does not tell which one matched. `params`: the
    first value of each name, when the caller has it (it saves sorting the pairs when every name
    came once, as Twilio sends them).
    """
    signature = headers.get("x-twilio-signature", "").strip()
    if not signature:
        return "missing"
    settings = headers.get(SIGNATURE_SETTINGS_HEADER, "").strip()
    if settings:
        digest = _TWILIO_HASHES.get(get_signature_algorithm(settings).upper())
        secrets = keys.shared
    else:
        digest, secrets = hashlib.sha1, (keys.auth_token,) if keys.auth_token else ()
    if digest is None or not secrets:
        return "bad"
    given = signature.encode()
    tail = _twilio_params(pairs, params)
    try:
        without_port, with_port = _url_variants(url)
    except ValueError:  # a port that is no number (from a Host header): no URL Twilio called
        return "bad"
    first, second = (with_port, without_port) if with_port == url else (without_port, with_port)
    if _twilio_match(secrets, digest, first + tail, given):  # the URL as given, most likely
        return "ok"
    if second != first and _twilio_match(secrets, digest, second + tail, given):
        return "ok"
    return "bad"


_PREFIXES: dict[str, tuple[str, str]] = {}  # scheme://host[:port]/path -> its two variants
_PREFIXES_MAX: Final = 512
_QUERY_OR_FRAGMENT: Final = re.compile(r"[?#]")


def _url_variants(url: str) -> tuple[str, str]:
    """`remove_port(urlparse(url))` and `add_port(urlparse(url))`, the SDK's own, computed once
    per URL before its query: only the host part differs between the two, and a callback's
    query (a prospect and a command id) is new for nearly every message. The query and fragment
    are put back as `geturl()` puts them (empty ones dropped); without a fragment, the query
    is found and kept by `find` and slicing, not the regular expression and a rebuilt string
    (~0.4 µs). URLs `urlsplit` would clean (tabs, newlines, leading or trailing blanks) take
    the SDK's path whole."""
    if "\t" in url or "\r" in url or "\n" in url or url != url.strip():
        parsed = urlparse(url)
        return remove_port(parsed), add_port(parsed)
    if "#" in url:
        match = _QUERY_OR_FRAGMENT.search(url)
        cut = match.start() if match is not None else len(url)
    else:  # no fragment (a callback's URL): the query starts at the first '?', if any
        cut = url.find("?")
        if cut < 0:
            cut = len(url)
    prefix = url[:cut]
    variants = _PREFIXES.get(prefix)
    if variants is None:
        parsed = urlparse(prefix)
        variants = (remove_port(parsed), add_port(parsed))
        if len(_PREFIXES) >= _PREFIXES_MAX:
            _PREFIXES.clear()
        _PREFIXES[prefix] = variants
    rest = url[cut:]
    if not rest:
        return variants
    if "#" not in rest:  # `?query` as it is; a bare '?' is dropped
        end = rest if len(rest) > 1 else ""
        return variants[0] + end, variants[1] + end
    rest, fragment = rest.split("#", 1)
    query = rest[1:]  # after the '?' (or empty: the URL had only a fragment)
    end = ("?" + query if query else "") + ("#" + fragment if fragment else "")
    return variants[0] + end, variants[1] + end


def twilio_shared_key_unset(headers: Mapping[str, str], keys: TwilioKeys) -> bool:
    """True for a request signed with a SharedKey when none is configured (worth a log line:
    it is a setup mistake, not an attack, when Twilio sends it)."""
    return bool(headers.get(SIGNATURE_SETTINGS_HEADER, "").strip()) and not keys.shared


def _twilio_params(
    pairs: Sequence[tuple[str, str]], params: Mapping[str, str] | None = None
) -> str:
    """The parameters as `RequestValidator.compute_signature` appends them to the URL: names
    sorted, each name's distinct values sorted, `name + value` for each (which is the distinct
    pairs, sorted). With every name once (`params` as long as `pairs`), the names sorted alone."""
    if params is not None and len(params) == len(pairs):
        return "".join([name + params[name] for name in sorted(params)])
    return "".join(map("".join, sorted(set(pairs))))


def _twilio_match(
    secrets: Sequence[bytes], digest: Callable[[], "hashlib._Hash"], signed: str, given: bytes
) -> bool:
    data = signed.encode("utf-8")
    valid = False
    for key in secrets:
        expected = base64.b64encode(PrimedHmac.of(key, digest).digest(data))
        valid |= hmac.compare_digest(expected, given)
    return valid


class PrimedHmac:
    """HMAC (RFC 2104) with its key's inner and outer pads hashed once: a request's signature
    copies the two primed hashes and hashes only the message. The same bytes as
    `hmac.new(key, data, digest).digest()` (a property test holds the two side by side), at
    0.9 µs instead of 2.4 for a Twilio callback: with OpenSSL 3, `hmac.new` looks the algorithm
    up and pads the key again for every request."""

    _cache: "ClassVar[dict[tuple[bytes, Callable[[], hashlib._Hash]], PrimedHmac]]" = {}

    def __init__(self, key: bytes, digest: Callable[[], "hashlib._Hash"]) -> None:
        block = digest().block_size
        if len(key) > block:
            key = digest(key).digest()  # type: ignore[call-arg]
        key = key.ljust(block, b"\0")
        self._inner = digest(bytes(b ^ 0x36 for b in key))  # type: ignore[call-arg]
        self._outer = digest(bytes(b ^ 0x5C for b in key))  # type: ignore[call-arg]

    @classmethod
    def of(cls, key: bytes, digest: Callable[[], "hashlib._Hash"]) -> "PrimedHmac":
        """The primed pair of a configured secret (a few per process: kept for its life)."""
        primed = cls._cache.get((key, digest))
        if primed is None:
            primed = cls._cache[(key, digest)] = cls(key, digest)
        return primed

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


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
