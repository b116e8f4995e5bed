"""What one input line or stream entry becomes: an event, or the reason it is rejected.

One reader for replay and live mode, so both reject the same inputs for the same reasons. It
never raises: whatever the bytes (nested a thousand deep, a date in year 9999, megabytes of
text), the answer is an event or a one-line reason for the dead letters. Bounds come from the
policy's `[limits]` (README, Limits): an input over `event_bytes` is rejected before it is
parsed, timestamps outside [`earliest_ts`, `latest_ts`) are rejected, and over-long text fields
are truncated, so no input can swell a prospect's state or the contexts of its commands.
"""

from collections.abc import Container
from typing import Final

import msgspec
from msgspec.structs import replace

from operators import events as ev
from operators.events import Event, decode_event, rejection_reason
from operators.policy import Limits

_BOM: Final = b"\xef\xbb\xbf"

# Free-text fields per event type, truncated when over the limit; `url` has a limit of its own.
_URL_FIELDS: Final[dict[type, tuple[str, ...]]] = {ev.PageView: ("url",), ev.Clicked: ("url",)}
_TEXT_FIELDS: Final[dict[type, tuple[str, ...]]] = {
    ev.Profile: ("email", "region", "segment", "lead_source", "account"),
    ev.Consent: ("source",),
    ev.DoNotContact: ("reason",),
    ev.FormSubmit: ("form",),
    ev.ProposalView: ("document",),
    ev.ContentDownload: ("asset",),
    ev.Unenroll: ("sequence",),
    ev.TouchRequest: ("topic",),
    ev.TouchSent: ("command", "topic"),
    ev.TouchFailed: ("command",),
    ev.Delivered: ("command",),
    ev.Opened: ("command",),
    ev.Clicked: ("command",),
    ev.Replied: ("text",),
    ev.CallOutcome: ("command",),
}


class EventReader:
    """Reads raw event bytes under the policy's limits and known sequence names."""

    __slots__ = ("_earliest", "_latest", "_limits", "_max_bytes", "_sequences", "_short")

    def __init__(self, limits: Limits, sequences: Container[str] | None = None) -> None:
        self._limits = limits
        self._max_bytes = limits.event_bytes
        self._earliest = limits.earliest_ts
        self._latest = limits.latest_ts
        self._sequences = sequences
        # A line no longer than this cannot hold a field over either text limit: no check needed.
        self._short = min(limits.url_chars, limits.text_chars)

    def read(self, raw: bytes) -> Event | str:
        """The event, or the reason it is rejected (never an exception)."""
        if len(raw) > self._max_bytes:
            size, limit = len(raw), self._max_bytes
            return f"event too large: {size} bytes, over limits.event_bytes ({limit})"
        if raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw.strip():
            return "empty event"
        try:
            event = decode_event(raw)
        except (msgspec.DecodeError, ValueError) as exc:
            return rejection_reason(exc)
        except RecursionError:
            return "invalid JSON: nested too deeply"
        except Exception as exc:
            return f"cannot decode: {type(exc).__name__}: {exc}"
        try:
            return self._checked(event, len(raw))
        except Exception as exc:
            return f"cannot check: {type(exc).__name__}: {exc}"

    def _checked(self, event: Event, size: int) -> Event | str:
        if not self._earliest <= event.ts < self._latest:
            return (
                f"timestamp {event.ts.isoformat()} outside {self._earliest.date()} … "
                f"{self._latest.date()} (limits.earliest_ts, limits.latest_ts) - at `$.ts`"
            )
        if (
            self._sequences is not None
            and type(event) is ev.Enroll
            and event.sequence not in self._sequences
        ):
            return unknown_sequence(event.sequence)
        if size > self._short:
            return self._truncated(event)
        return event

    def _truncated(self, event: Event) -> Event:
        """The event with each over-long text field cut to its limit (README, Limits)."""
        changes: dict[str, str] = {}
        kind = type(event)
        for names, limit in (
            (_URL_FIELDS.get(kind, ()), self._limits.url_chars),
            (_TEXT_FIELDS.get(kind, ()), self._limits.text_chars),
        ):
            for name in names:
                value = getattr(event, name)
                if value is not None and len(value) > limit:
                    # A reply's whole text decides STOP/START: trim before cutting, so padding
                    # around a keyword cannot hide it.
                    changes[name] = (value.strip() if name == "text" else value)[:limit]
        return replace(event, **changes) if changes else event


def unknown_sequence(name: str) -> str:
    return f"unknown sequence {name!r} (not in the policy) - at `$.sequence`"
