"""Input events (CONTRACT.md section 1) as msgspec Structs, and the one decoder that reads them.

Each event type is a tagged Struct, so msgspec validates the whole object (type, required fields,
field types, channel names, timestamp offsets) in C and reports errors with their JSON path,
which becomes the dead-letter reason. Unknown extra fields are ignored, as the contract says.
"""

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Final, Literal, get_args
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta, Struct

Channel = Literal["email", "sms", "phone", "chat", "linkedin"]
CHANNELS: Final[tuple[Channel, ...]] = ("email", "sms", "phone", "chat", "linkedin")
CHANNEL_INDEX: Final[dict[str, int]] = {c: i for i, c in enumerate(CHANNELS)}

Id = Annotated[str, Meta(min_length=1, max_length=128)]
Timestamp = Annotated[datetime, Meta(tz=True)]
E164 = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{1,14}$")]
Sentiment = Literal["positive", "neutral", "negative", "out_of_office"]
Priority = Annotated[int, Meta(ge=0, le=9)]


@lru_cache(maxsize=1024)
def is_time_zone(name: str) -> bool:
    """True for a known IANA zone name (cached: zone names repeat across millions of events)."""
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


class _Event(Struct, kw_only=True, frozen=True, tag_field="type", gc=False):
    """Fields every event has. `id` is the idempotency key; `ts` is event time."""

    id: Id
    prospect: Id
    ts: Timestamp


class Profile(_Event, tag="profile", frozen=True):
    timezone: str | None = None
    email: str | None = None
    phone: E164 | None = None
    region: str | None = None
    segment: str | None = None
    lead_source: str | None = None
    account: str | None = None

    def __post_init__(self) -> None:
        if self.timezone is not None and not is_time_zone(self.timezone):
            msg = f"unknown IANA time zone {self.timezone!r} - at `$.timezone`"
            raise ValueError(msg)


class Consent(_Event, tag="consent", frozen=True):
    channel: Channel
    granted: bool
    source: str | None = None


class OptOut(_Event, tag="opt_out", frozen=True):
    channel: Channel | Literal["all"]


class DoNotContact(_Event, tag="do_not_contact", frozen=True):
    reason: str | None = None


class Bounce(_Event, tag="bounce", frozen=True):
    channel: Channel
    hard: bool


class Complaint(_Event, tag="complaint", frozen=True):
    channel: Channel


class Preference(_Event, tag="preference", frozen=True):
    channel: Channel
    stance: Literal["only", "prefer", "avoid"]


class PageView(_Event, tag="page_view", frozen=True):
    url: str


class FormSubmit(_Event, tag="form_submit", frozen=True):
    form: str | None = None


class ProposalView(_Event, tag="proposal_view", frozen=True):
    document: str | None = None


class ContentDownload(_Event, tag="content_download", frozen=True):
    asset: str | None = None


class ChatStarted(_Event, tag="chat_started", frozen=True):
    pass


class Enroll(_Event, tag="enroll", frozen=True):
    sequence: Id


class Unenroll(_Event, tag="unenroll", frozen=True):
    sequence: str | None = None


class TouchRequest(_Event, tag="touch_request", frozen=True):
    channel: Channel | Literal["auto"]
    campaign: Id
    topic: str | None = None
    priority: Priority = 0
    transactional: bool = False


class TouchSent(_Event, tag="touch_sent", frozen=True):
    channel: Channel
    command: str | None = None
    topic: str | None = None
    by: Literal["automation", "rep"] | None = None


class TouchFailed(_Event, tag="touch_failed", frozen=True):
    channel: Channel
    command: str


class Delivered(_Event, tag="delivered", frozen=True):
    channel: Channel
    command: str | None = None


class Opened(_Event, tag="opened", frozen=True):
    channel: Channel
    command: str | None = None


class Clicked(_Event, tag="clicked", frozen=True):
    channel: Channel
    url: str | None = None
    command: str | None = None


class Replied(_Event, tag="replied", frozen=True):
    channel: Channel
    text: str | None = None
    sentiment: Sentiment | None = None


class CallOutcome(_Event, tag="call_outcome", frozen=True):
    outcome: Literal["answered", "voicemail", "no_answer", "busy", "failed"]
    command: str | None = None


class MeetingBooked(_Event, tag="meeting_booked", frozen=True):
    pass


class DealClosed(_Event, tag="deal_closed", frozen=True):
    won: bool


Event = (
    Profile
    | Consent
    | OptOut
    | DoNotContact
    | Bounce
    | Complaint
    | Preference
    | PageView
    | FormSubmit
    | ProposalView
    | ContentDownload
    | ChatStarted
    | Enroll
    | Unenroll
    | TouchRequest
    | TouchSent
    | TouchFailed
    | Delivered
    | Opened
    | Clicked
    | Replied
    | CallOutcome
    | MeetingBooked
    | DealClosed
)

EVENT_TYPES: Final[tuple[str, ...]] = (
    "profile",
    "consent",
    "opt_out",
    "do_not_contact",
    "bounce",
    "complaint",
    "preference",
    "page_view",
    "form_submit",
    "proposal_view",
    "content_download",
    "chat_started",
    "enroll",
    "unenroll",
    "touch_request",
    "touch_sent",
    "touch_failed",
    "delivered",
    "opened",
    "clicked",
    "replied",
    "call_outcome",
    "meeting_booked",
    "deal_closed",
)

_TAGS: Final[dict[type, str]] = {cls: str(cls.__struct_config__.tag) for cls in get_args(Event)}


def event_type(event: Event) -> str:
    """The contract `type` of a decoded event (for metrics and summaries)."""
    return _TAGS[type(event)]


_DECODER: Final[msgspec.json.Decoder[Event]] = msgspec.json.Decoder(Event)


def decode_event(raw: bytes | str) -> Event:
    """Decode and validate one event; raises `msgspec.ValidationError`/`DecodeError` with a path."""
    return _DECODER.decode(raw)


def rejection_reason(exc: Exception) -> str:
    """The dead-letter reason for a decode failure: msgspec's message, which names the JSON path."""
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return f"invalid JSON: {text}"
    return text
