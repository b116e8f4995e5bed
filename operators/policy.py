"""The contact policy: TOML decoded into typed, constrained Structs (config/default.toml).

A bad policy must stop the program at start with one line naming the key, never surface as a
wrong decision at 3 am, so every value carries its constraint and unknown keys are rejected.
A policy file is merged over config/default.toml first (`operators.policy_merge`): leaving a
rule out keeps the default rule, it never weakens it.

Every number has an upper bound as well: a time computed from an accepted event (a deferral,
a cooldown, a pause: each at most `MAX_HOURS`) must stay far inside `datetime`'s range, since
a replay that dies on an OverflowError halfway is worse than a config refused at start.
"""

import tomllib
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct, field

from operators.errors import ConfigError
from operators.events import Channel, is_time_zone
from operators.fatigue import FatigueConfig
from operators.policy_merge import Labels, Table, explain, merge_policy
from operators.preference import PreferenceConfig, default_preference_config
from operators.providers.config import GatewayConfig

MAX_HOURS: Final = 87_600  # ten years: the longest window, deferral or wait
MAX_DAYS: Final = 3_650  # ten years: the longest cooldown or pause
MAX_COUNT: Final = 10_000  # touches in a window, ids remembered, deliveries
MAX_STEPS: Final = 100  # steps in one sequence
# Accepted event times. Every horizon is at most ten years, so nothing computed from an event
# (`now + MAX_HOURS`, a quiet-hours opening a day later) comes near year 9999, where
# `datetime` arithmetic overflows.
TS_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
TS_MAX: Final = datetime(9900, 1, 1, tzinfo=UTC)

ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Meta(ge=1, le=MAX_COUNT)]
HourSpan = Annotated[int, Meta(ge=0, le=MAX_HOURS)]
PositiveHourSpan = Annotated[int, Meta(ge=1, le=MAX_HOURS)]
DaySpan = Annotated[int, Meta(ge=0, le=MAX_DAYS)]
PositiveDaySpan = Annotated[int, Meta(ge=1, le=MAX_DAYS)]
ContextItems = Annotated[int, Meta(ge=0, le=1_000)]  # items repeated in every command's context
Chars = Annotated[int, Meta(ge=16, le=65_536)]
Timestamp = Annotated[datetime, Meta(tz=True)]
Name = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]
Priority = Annotated[int, Meta(ge=0, le=9)]  # as a `touch_request`'s priority


class _Config(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base for every policy section: typos in keys fail loudly."""


class CapWindow(_Config, frozen=True):
    """A rolling window: at most `total` touches, and `per_channel[c]` on channel c.

    Rule names read `cap.<channel>.<name>` and `cap.total.<name>`.
    """

    name: Name
    hours: PositiveHourSpan
    total: Count | None = None
    per_channel: dict[Channel, Count] = {}
    exempt_own_action: bool = False


class Gap(_Config, frozen=True):
    """Minimum time since the last touch on any channel (rule `gap`)."""

    hours: HourSpan = 24
    exempt_own_action: bool = True


class Hours(_Config, frozen=True):
    """Allowed local hours [start, end) of a stricter region."""

    start: ClockTime
    end: ClockTime

    def __post_init__(self) -> None:
        if self.start >= self.end:
            msg = f"start {self.start} must be before end {self.end} - at `$.end`"
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
            msg = f"start {self.start} must be before end {self.end} - at `$.end`"
            raise ValueError(msg)
        if not self.fallback_timezones:
            msg = "fallback_timezones must name at least one zone - at `$.fallback_timezones`"
            raise ValueError(msg)
        for i, name in enumerate(self.fallback_timezones):
            if not is_time_zone(name):
                msg = f"unknown IANA time zone {name!r} - at `$.fallback_timezones[{i}]`"
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
    complaint_days: DaySpan = 90
    negative_reply_days: DaySpan = 90
    sequence_days: DaySpan = 30


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
    max_defer_hours: HourSpan = 72
    arbitration_seconds: Annotated[int, Meta(ge=0, le=86_400)] = 60


class Limits(_Config, frozen=True):
    """Bounds on per-prospect memory and on what one event may carry (README, Limits).

    An event line or stream entry over `event_bytes` is rejected to the dead letters; a `url`
    over `url_chars` and any other free-text field (topic, form, document, asset, source,
    reason, names) over `text_chars` is truncated, so no input can swell the state or the
    commands' contexts. Timestamps outside [`earliest_ts`, `latest_ts`) are rejected; both lie
    in [`TS_MIN`, `TS_MAX`].
    """

    dedupe_ids: PositiveCount = 32
    context_touches: ContextItems = 5
    context_clicks: ContextItems = 5
    context_pages: ContextItems = 3
    reply_text_chars: Annotated[int, Meta(ge=0, le=65_536)] = 280
    event_bytes: Annotated[int, Meta(ge=256, le=16 * 1024 * 1024)] = 65_536
    url_chars: Chars = 2_048
    text_chars: Chars = 256
    earliest_ts: Timestamp = datetime(2000, 1, 1, tzinfo=UTC)
    latest_ts: Timestamp = datetime(2100, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        for key, ts in (("earliest_ts", self.earliest_ts), ("latest_ts", self.latest_ts)):
            if not TS_MIN <= ts <= TS_MAX:
                bounds = f"{TS_MIN.date()}..{TS_MAX.date()}"
                msg = f"{key} {ts.isoformat()} must lie in {bounds} - at `$.{key}`"
                raise ValueError(msg)
        if self.earliest_ts >= self.latest_ts:
            msg = (
                f"earliest_ts {self.earliest_ts.isoformat()} must be before latest_ts "
                f"{self.latest_ts.isoformat()} - at `$.earliest_ts`"
            )
            raise ValueError(msg)


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

    after_hours: HourSpan = 0
    since: Literal["start", "previous"] = "previous"
    channel: Channel | Literal["preferred"]
    topic: Annotated[str, Meta(min_length=1)]
    when: StepCondition = "always"


class SequenceDef(_Config, frozen=True):
    steps: Annotated[list[Step], Meta(min_length=1, max_length=MAX_STEPS)]


class Orchestration(_Config, frozen=True):
    """Sequences, exits and throttles (issue "orchestration")."""

    out_of_office_pause_days: DaySpan = 7
    deal_lost_cooldown_days: DaySpan = 90
    trigger_throttle_hours: HourSpan = 24
    step_max_defer_hours: HourSpan = 48
    opened_no_click_hours: HourSpan = 48  # an opened sequence email, no click: sms follow-up
    clicked_no_reply_hours: HourSpan = 48  # a clicked sequence email, no reply: a call
    # Rule 13: the priority (0-9, as a request's) of a sequence step or response follow-up when
    # several candidate touches of a prospect are due at the same instant.
    sequence_priority: Priority = 5


class Streams(_Config, frozen=True):
    """Live mode on Redis (CONTRACT.md section 6): key prefix, shard count, durability knobs."""

    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$")] = "touchflow"
    shards: Annotated[int, Meta(ge=1, le=1024)] = 4
    checkpoint_interval_ms: Annotated[int, Meta(ge=1, le=3_600_000)] = 100  # at most an hour
    state_ttl_days: PositiveDaySpan = 200
    command_marker_ttl_hours: PositiveHourSpan = 192
    max_deliveries: PositiveCount = 5
    claim_idle_ms: Annotated[int, Meta(ge=1, le=86_400_000)] = 30_000  # at most a day
    # A prospect idle this long leaves the worker's memory (its state is in Redis; its next
    # input or timer brings it back); 0 keeps every prospect. At least 5 s: its last effects
    # must have reached the commit sink before it leaves.
    idle_evict_seconds: Annotated[int, Meta(ge=0, le=86_400 * 365)] = 600
    # Command, decision and dead-letter streams keep this much history (acknowledged event
    # entries are trimmed as soon as they are acknowledged).
    retention_hours: PositiveHourSpan = 168
    # How often the consumer lag is read and the streams are trimmed.
    housekeeping_seconds: Annotated[int, Meta(ge=1, le=3_600)] = 5
    # Keep the scorecard's counts live (CONTRACT.md section 8, `report --redis`); false saves
    # the flow the counting, and `report --redis` then says the deployment keeps no scorecard.
    scorecard: bool = True

    def __post_init__(self) -> None:
        if 0 < self.idle_evict_seconds < 5:
            msg = f"idle_evict_seconds must be 0 or at least 5, got {self.idle_evict_seconds}"
            raise ValueError(msg)


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
    gateway: GatewayConfig = GatewayConfig()

    def __post_init__(self) -> None:
        names = [w.name for w in self.caps]
        if len(set(names)) != len(names):
            msg = f"cap window names must be unique, got {names} - at `$.caps`"
            raise ValueError(msg)


def _bundled_default() -> Path:
    """config/default.toml, found as package data (`touchflow_config` is the repository's
    `config/` directory, installed with the package), so a regular, non-editable install finds it;
    the repository's own file when the package is not installed at all (running from a checkout)."""
    try:
        return Path(str(resources.files("touchflow_config").joinpath("default.toml")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "config" / "default.toml"


DEFAULT_CONFIG = _bundled_default()


def parse_policy(text: bytes | str, source: str = "<config>") -> Policy:
    """Decode policy TOML merged over config/default.toml (`operators.policy_merge`).

    Any problem becomes a one-line `ConfigError` naming `source` and the full key path.
    """
    try:
        merged, labels = merge_policy(default_table(), _decode(text, source))
    except ValueError as exc:  # two caps of one name in the file
        msg = f"invalid config {source}: {exc}"
        raise ConfigError(msg) from None
    return _convert(merged, labels, source)


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and decode the policy file merged over the defaults (None: the defaults alone)."""
    if path is None:
        return _convert(default_table(), {}, str(DEFAULT_CONFIG))
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as exc:
        msg = f"cannot read config {file}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    return parse_policy(text, str(file))


@cache
def default_table() -> Table:
    """config/default.toml as decoded TOML, read once. Shared: callers must not modify it."""
    try:
        text = DEFAULT_CONFIG.read_bytes()
    except OSError as exc:
        msg = f"cannot read config {DEFAULT_CONFIG}: {exc.strerror or exc}"
        raise ConfigError(msg) from None
    return _decode(text, str(DEFAULT_CONFIG))


def _decode(text: bytes | str, source: str) -> Table:
    """TOML to plain dicts (tomllib); a BOM is allowed, any other non-UTF-8 byte is not."""
    try:
        chars = text.decode("utf-8-sig") if isinstance(text, bytes) else text
        return tomllib.loads(chars)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        msg = f"invalid config {source}: not UTF-8 text (byte 0x{bad} at offset {exc.start})"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"invalid config {source}: not valid TOML: {_one_line(str(exc))}"
        raise ConfigError(msg) from None


def _convert(merged: dict[str, Any], labels: Labels, source: str) -> Policy:
    """The merged document as a `Policy`; on failure, the deepest bad part by its full path."""
    try:
        return msgspec.convert(merged, type=Policy)
    except msgspec.ValidationError as exc:
        reason = explain(merged, Policy, labels) or str(exc)
        msg = f"invalid config {source}: {_one_line(reason)}"
        raise ConfigError(msg) from None


def _one_line(text: str) -> str:
    """Line breaks (in a TOML parser's message, say) become spaces: one line per error."""
    return " ".join(text.splitlines())
