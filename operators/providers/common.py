"""What every provider mapping returns, and the small helpers they share.

A provider event becomes zero or more `Draft`s: a contract event without its prospect yet, plus
how to find the prospect (the id the sender attached, else an address for the identity index).
Ids are deterministic (contract section 7): the same provider event on every delivery gives the
same `id`, so a retried webhook has no second effect; the contract type is part of the id, so
one provider event that yields two contract events gives two ids.
"""

import hashlib
import html
import re
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import orjson
import phonenumbers
from msgspec import Struct

from operators.timeutil import EPOCH, format_ts, to_ms

Kind = Literal["email", "phone"]
MAX_ID: Final = 128  # contract: `id` is 1-128 chars
_E164: Final = re.compile(r"^\+[1-9][0-9]{1,14}$")
_TAG: Final = re.compile(r"<[^>]*>")
_BLOCK: Final = re.compile(r"<\s*(br|/p|/div|/li)\b[^>]*>", re.IGNORECASE)
_SPACE: Final = re.compile(r"[ \t\r\f\v]+")
# Sender-attached ids (SendGrid custom args, Mailgun user-variables, Postmark Metadata).
PROSPECT_ARG: Final = "touchflow_prospect"
COMMAND_ARG: Final = "touchflow_command"


class NotProviderFormatError(ValueError):
    """The body is not the provider's format at all: the request gets 400, its bytes go dead."""


class Address(Struct, frozen=True, gc=False):
    """An email (lower-cased) or E.164 phone number to find prospects by."""

    kind: Kind
    value: str


class Draft(Struct, frozen=True, kw_only=True, gc=False):
    """One contract event a provider event became, before its prospect is known.

    `prospect` is the id the sender attached; without one, `address` names the identity-index
    entry to resolve (every prospect at that address gets the event). `raw` is the provider's
    payload of this one event, for the dead letter `unknown prospect`.
    """

    id: str
    type: str
    ts: str
    fields: dict[str, Any]
    prospect: str | None = None
    address: Address | None = None
    raw: bytes = b""


class Unreadable(Struct, frozen=True, gc=False):
    """One provider event of a batch that cannot be read or mapped: dead-lettered by itself."""

    raw: bytes
    reason: str


class Mapped(Struct, kw_only=True, gc=False):
    """What one request became: events, provider events without contract meaning (by kind, for
    the metrics), and unreadable ones."""

    drafts: list[Draft] = []
    skipped: list[str] = []
    unreadable: list[Unreadable] = []

    def extend(self, other: "Mapped") -> None:
        self.drafts.extend(other.drafts)
        self.skipped.extend(other.skipped)
        self.unreadable.extend(other.unreadable)


def event_id(provider: str, native: str, kind: str) -> str:
    """`provider:native:type`, or with the native part hashed when that would pass 128 chars."""
    text = f"{provider}:{native}:{kind}"
    if len(text) <= MAX_ID:
        return text
    digest = hashlib.sha256(native.encode()).hexdigest()[:40]
    return f"{provider}:h{digest}:{kind}"


def fingerprint(payload: Any) -> str:
    """A stable id for a provider event that carries none: the hash of its canonical JSON.

    A retry resends the same fields, so it hashes the same; two different events differ somewhere.
    """
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return "h" + hashlib.sha256(canonical).hexdigest()[:40]


def event_json(draft: Draft, prospect: str) -> bytes:
    """The contract event's JSON, `prospect` first (a parked event has it empty: the identity
    redrive fills it in by replacing that prefix, see `connectors/identity.py`)."""
    event = {"prospect": prospect, "id": draft.id, "type": draft.type, "ts": draft.ts}
    event.update(draft.fields)
    return orjson.dumps(event)


def ts_from_unix(value: Any, now: datetime) -> str:
    """RFC 3339 of a Unix time in seconds (int, float or numeric string), else of `now`."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return rfc3339(now)
    if seconds != seconds or not 0 <= seconds < 7e9:  # nan, or past year 2191
        return rfc3339(now)
    return format_ts(int(seconds * 1000))


def ts_from_iso(value: Any, now: datetime) -> str:
    """RFC 3339 (UTC) of an ISO 8601 time with an offset, else of `now`."""
    if not isinstance(value, str):
        return rfc3339(now)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return rfc3339(now)
    if parsed.tzinfo is None:
        return rfc3339(now)
    return rfc3339(parsed)


def rfc3339(moment: datetime) -> str:
    arrived = _arrived
    if moment is arrived.moment:  # a request's arrival (`arrival`): formatted once per ms
        return arrived.text
    return format_ts(to_ms(moment.astimezone(UTC)))


class _Arrival(NamedTuple):
    """Every float time in `lo..hi` is in the millisecond `ms`: `moment`, formatted `text`."""

    lo: float
    hi: float
    ms: int
    moment: datetime
    text: str


_arrived = _Arrival(1.0, 0.0, 0, EPOCH, format_ts(0))  # no time seen yet (lo > hi); ms 0 true
_EDGE_S: Final = 0.000_002  # how far inside its millisecond the checked end is put


def arrival(now: float) -> datetime:
    """`datetime.fromtimestamp(now, UTC)` cut to its millisecond, as the gateway's mappings take
    a request's arrival: they read it only through `rfc3339`, which keeps the milliseconds, so
    the events are the same bytes. Why: a busy gateway answers several requests a millisecond,
    and the time cost ~0.9 µs of each (`fromtimestamp`, then `rfc3339`'s `to_ms`); for a time
    in the millisecond kept, the same `datetime` (whose text `rfc3339` keeps) costs two
    comparisons. `fromtimestamp` never maps a later float to an earlier microsecond, so every
    float between two that fall in one millisecond falls in it too: the times kept are ones
    seen, and, from the second one seen in a millisecond (a busy one), a float near its end,
    checked by `fromtimestamp` itself (the rounding to microseconds and the spacing of floats
    stay out of the argument). A millisecond with one request costs what it did, plus a
    `replace`."""
    global _arrived
    arrived = _arrived
    if arrived.lo <= now <= arrived.hi:
        return arrived.moment
    exact = datetime.fromtimestamp(now, UTC)
    ms = to_ms(exact)
    if ms == arrived.ms:
        lo, hi = min(arrived.lo, now), max(arrived.hi, now)
        end = (ms + 1) / 1000 - _EDGE_S
        if hi < end and _ms_of(end) == ms:
            hi = end
        _arrived = _Arrival(lo, hi, ms, arrived.moment, arrived.text)
        return arrived.moment
    moment = exact.replace(microsecond=exact.microsecond // 1000 * 1000)
    _arrived = _Arrival(now, now, ms, moment, format_ts(ms))
    return moment


def _ms_of(now: float) -> int | None:
    try:
        return to_ms(datetime.fromtimestamp(now, UTC))
    except (OverflowError, OSError, ValueError):  # past datetime's range
        return None


def email_address(value: Any) -> str | None:
    """The address lower-cased and trimmed (the index is case-insensitive), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if "@" in text and len(text) <= 320 else None


def e164(value: Any) -> str | None:
    """The number in E.164, or None: `+` and digits as given, else parsed by phonenumbers
    (which needs the `+`: without a country, a national number names no one)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _E164.match(text):
        return text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted if _E164.match(formatted) else None


def text_of(markup: Any) -> str | None:
    """Plain text of an HTML fragment (Intercom bodies): tags gone, entities decoded, blocks on
    their own lines, spaces collapsed."""
    if not isinstance(markup, str):
        return None
    text = html.unescape(_TAG.sub("", _BLOCK.sub("\n", markup)))
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def string(value: Any) -> str | None:
    """A non-empty string field, else None (numbers are not silently turned into text)."""
    return value if isinstance(value, str) and value else None


def attached(value: Any) -> str | None:
    """A sender-attached id: a non-empty string of at most 128 chars (an int is accepted as its
    digits, since some senders' metadata maps stringify nothing), else None."""
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int) else value
    if isinstance(text, str):
        text = text.strip()
        if 0 < len(text) <= MAX_ID:
            return text
    return None


def parse_json(body: bytes) -> Any:
    """The body as JSON, or NotProviderFormatError (a 400 with the body dead-lettered)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON: {exc}"
        raise NotProviderFormatError(msg) from None


def dump(payload: Any) -> bytes:
    """A provider event's own JSON, for its dead letter."""
    return orjson.dumps(payload, default=str)


class EmailEvent(Struct, frozen=True, gc=False):
    """What every contract event of one email provider event shares: the drafts differ only in
    their type and fields (`draft`). `address` is set only when no prospect id was attached."""

    provider: str
    native: str  # the provider's own id of the event, or a fingerprint of it
    ts: str
    prospect: str | None
    email: str | None
    raw: bytes

    def draft(self, contract: str, **fields: Any) -> Draft:
        address = None
        if self.prospect is None and self.email is not None:
            address = Address("email", self.email)
        return Draft(
            id=event_id(self.provider, self.native, contract),
            type=contract,
            ts=self.ts,
            fields={"channel": "email", **fields},
            prospect=self.prospect,
            address=address,
            raw=self.raw,
        )
