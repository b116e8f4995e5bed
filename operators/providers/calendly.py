"""Calendly webhooks v2 to contract events: `invitee.created` is `meeting_booked`.

Calendly attaches no id of ours, so the invitee's email is looked up in the identity index. The
id comes from the invitee's `uri` (one per booking; a reschedule books a new invitee, and so a
new meeting).
"""

from datetime import datetime
from typing import Final

from operators.providers.common import (
    Address,
    Draft,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    dump,
    email_address,
    event_id,
    fingerprint,
    parse_json,
    string,
    ts_from_iso,
)

PROVIDER: Final = "calendly"
_KNOWN: Final = frozenset(
    {"invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted",
     "routing_form_submission.created"}
)  # fmt: skip


def map_body(body: bytes, now: datetime) -> Mapped:
    """Map one webhook; NotProviderFormatError unless a JSON object with `event` and `payload`."""
    hook = parse_json(body)
    if not isinstance(hook, dict) or not isinstance(hook.get("event"), str):
        msg = "not a Calendly webhook: expected a JSON object with `event` and `payload`"
        raise NotProviderFormatError(msg)
    kind = hook["event"]
    if kind != "invitee.created":
        return Mapped(skipped=[kind if kind in _KNOWN else "other"])
    payload = hook.get("payload")
    if not isinstance(payload, dict):
        return Mapped(
            unreadable=[Unreadable(dump(hook), "Calendly invitee.created without payload")]
        )
    email = email_address(payload.get("email"))
    if email is None:
        return Mapped(unreadable=[Unreadable(dump(hook), "Calendly invitee without an email")])
    native = string(payload.get("uri")) or fingerprint(payload)
    ts = ts_from_iso(payload.get("created_at") or hook.get("created_at"), now)
    draft = Draft(
        id=event_id(PROVIDER, native, "meeting_booked"),
        type="meeting_booked",
        ts=ts,
        fields={},
        address=Address("email", email),
        raw=dump(hook),
    )
    return Mapped(drafts=[draft])
