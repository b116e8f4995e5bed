"""The contact policy: TOML decoded into typed, constrained Structs (config/default.toml).

A bad policy must stop the program at start with one line naming the key, never surface as a
wrong decision at 3 am, so every value carries its constraint and unknown keys are rejected.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

from operators.errors import ConfigError
from operators.events import Channel, is_time_zone
from operators.fatigue import FatigueConfig
from operators.preference import PreferenceConfig, default_preference_config

ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
PositiveInt = Annotated[int, Meta(ge=1)]
Count = Annotated[int, Meta(ge=0)]
Name = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]


class _Config(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base for every policy section: typos in keys fail loudly."""


class CapWindow(_Config, frozen=True):
    """A rolling window: at most `total` touches, and `per_channel[c]` on channel c.

    Rule names read `cap.<channel>.<name>` and `cap.total.<name>`.
    """

    name: Name
    hours: PositiveInt
    total: Count | None = None
    per_channel: dict[Channel, Count] = {}
    exempt_own_action: bool = False


class Gap(_Config, frozen=True):
    """Minimum time since the last touch on any channel (rule `gap`)."""

    hours: Count = 24
    exempt_own_action: bool = True


class Hours(_Config, frozen=True):
    start: ClockTime
    end: ClockTime

    def __post_init__(self) -> None:
        if self.start >= self.end:
            msg = f"start {self.start} must be before end {self.end}"
            raise ValueError(msg)


class QuietHours(_Config, frozen=True):
    """Channels allowed only inside [start, end) local time; stricter hours per region."""

    channels: list[Channel] = field(default_factory=lambda: ["sms", "phone"])
    start: ClockTime = "08:00"
    end: ClockTime = "21:00"
    regions: dict[str, Hours] = {}
    fallback_timezones: list[str] = field(default_factory=lambda: ["UTC"])

    def __post_init__(self) -> None:
        if self.start >= self.end:
            msg = f"start {self.start} must be before end {self.end}"
            raise ValueError(msg)
        if not self.fallback_timezones:
            msg = "fallback_timezones must name at least one zone"
            raise ValueError(msg)
        for name in self.fallback_timezones:
            if not is_time_zone(name):
                msg = f"unknown IANA time zone {name!r} in fallback_timezones"
                raise ValueError(msg)


class ConsentRules(_Config, frozen=True):
    required: list[Channel] = field(default_factory=lambda: ["sms", "phone"])


class Keywords(_Config, frozen=True):
    """SMS keywords (compared trimmed and upper-cased to the whole reply text)."""

    stop: list[str] = field(
        default_factory=lambda: [
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
        ]
    )
    start: list[str] = field(default_factory=lambda: ["START", "UNSTOP"])
    resume_after_stop: list[str] = field(default_factory=lambda: ["YES"])


class Cooldowns(_Config, frozen=True):
    complaint_days: Count = 90
    negative_reply_days: Count = 90
    sequence_days: Count = 30


class Triggers(_Config, frozen=True):
    """What the prospect's own actions trigger; each touch still passes every rule."""

    form_submit: list[Channel] = field(default_factory=lambda: ["email", "phone"])
    pricing_page: list[Channel] = field(default_factory=lambda: ["chat"])
    proposal_view: list[Channel] = field(default_factory=lambda: ["sms"])
    pricing_path: Annotated[str, Meta(min_length=1)] = "/pricing"


class Requests(_Config, frozen=True):
    """How `touch_request`s are decided.

    `auto_order` breaks ties between equally preferred channels (least intrusive first). A
    request stopped by a cap or the gap is deferred to when capacity frees, if that is within
    `max_defer_hours`; otherwise it is blocked. Requests arriving within `arbitration_seconds`
    of the first in a window compete for the remaining capacity: when the window closes they
    are decided by priority (higher first), then arrival; 0 decides each at once. Transactional
    requests never wait.
    """

    auto_order: list[Channel] = field(
        default_factory=lambda: ["email", "linkedin", "chat", "sms", "phone"]
    )
    max_defer_hours: Count = 72
    arbitration_seconds: Count = 60


class Limits(_Config, frozen=True):
    """Bounds on per-prospect memory and on what one event may carry (README, Limits).

    An event line or stream entry over `event_bytes` is rejected to the dead letters; a `url`
    over `url_chars` and any other free-text field (topic, form, document, asset, source,
    reason, names) over `text_chars` is truncated, so no input can swell the state or the
    commands' contexts. Timestamps outside [`earliest_ts`, `latest_ts`) are rejected.
    """

    dedupe_ids: PositiveInt = 32
    context_touches: Count = 5
    context_clicks: Count = 5
    context_pages: Count = 3
    reply_text_chars: Count = 280
    event_bytes: Annotated[int, Meta(ge=256, le=16 * 1024 * 1024)] = 65_536
    url_chars: Annotated[int, Meta(ge=16, le=65_536)] = 2_048
    text_chars: Annotated[int, Meta(ge=16, le=65_536)] = 256
    earliest_ts: Annotated[datetime, Meta(tz=True)] = datetime(2000, 1, 1, tzinfo=UTC)
    latest_ts: Annotated[datetime, Meta(tz=True)] = datetime(2100, 1, 1, tzinfo=UTC)


StepCondition = Literal[
    "always", "no_response", "unresponsive", "engaged", "engaged_no_booking", "no_engagement"
]


class Step(_Config, frozen=True, kw_only=True):
    """One sequence step: when (a delay after the start or the previous step), where, what.

    `when` is checked at the step's due time, against the sequence's last sent touch (or its
    start): `no_response` = no click, reply or answered call since; `unresponsive` = none since
    the start; `engaged` = an open, click or reply since; `engaged_no_booking` = engaged and no
    meeting booked; `no_engagement` = not engaged. A step whose condition fails is skipped.
    """

    after_hours: Count = 0
    since: Literal["start", "previous"] = "previous"
    channel: Channel | Literal["preferred"]
    topic: Annotated[str, Meta(min_length=1)]
    when: StepCondition = "always"


class SequenceDef(_Config, frozen=True):
    steps: Annotated[list[Step], Meta(min_length=1)]


class Orchestration(_Config, frozen=True):
    """Sequences, exits and throttles (issue "orchestration")."""

    out_of_office_pause_days: Count = 7
    deal_lost_cooldown_days: Count = 90
    trigger_throttle_hours: Count = 24
    step_max_defer_hours: Count = 48
    opened_no_click_hours: Count = 48  # an opened sequence email, no click: sms follow-up
    clicked_no_reply_hours: Count = 48  # a clicked sequence email, no reply: a call


class Streams(_Config, frozen=True):
    """Live mode on Redis (CONTRACT.md section 6): key prefix, shard count, durability knobs."""

    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$")] = "touchflow"
    shards: Annotated[int, Meta(ge=1, le=1024)] = 4
    checkpoint_interval_ms: PositiveInt = 100
    state_ttl_days: PositiveInt = 200
    command_marker_ttl_hours: PositiveInt = 192
    max_deliveries: PositiveInt = 5
    claim_idle_ms: PositiveInt = 30_000


class Policy(_Config, frozen=True):
    caps: list[CapWindow]
    gap: Gap = Gap()
    quiet_hours: QuietHours = QuietHours()
    consent: ConsentRules = ConsentRules()
    keywords: Keywords = Keywords()
    cooldowns: Cooldowns = Cooldowns()
    triggers: Triggers = Triggers()
    requests: Requests = Requests()
    limits: Limits = Limits()
    streams: Streams = Streams()
    orchestration: Orchestration = Orchestration()
    preference: PreferenceConfig = field(default_factory=default_preference_config)
    fatigue: FatigueConfig = FatigueConfig()
    sequences: dict[Name, SequenceDef] = {}

    def __post_init__(self) -> None:
        names = [w.name for w in self.caps]
        if len(set(names)) != len(names):
            msg = f"cap window names must be unique, got {names} - at `$.caps`"
            raise ValueError(msg)


DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "default.toml"


def parse_policy(text: bytes | str, source: str = "<config>") -> Policy:
    """Decode policy TOML; any problem becomes a one-line `ConfigError` naming the key path."""
    try:
        return msgspec.toml.decode(text, type=Policy)
    except msgspec.ValidationError as exc:
        msg = f"invalid config {source}: {exc}"
        raise ConfigError(msg) from None
    except msgspec.DecodeError as exc:
        msg = f"invalid config {source}: not valid TOML: {exc}"
        raise ConfigError(msg) from None


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and decode the policy file (the bundled default when `path` is None)."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = file.read_bytes()
    except OSError as exc:
        msg = f"cannot read config {file}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    return parse_policy(text, str(file))
