"""Segment webhook destination (`identify`, `page`, `track` calls) to contract events.

The prospect is the call's `userId`; without one, `traits.email` / `context.traits.email` is
looked up in the identity index; with neither, the call is an anonymous visit with no contract
meaning. Ids come from Segment's `messageId`, the same on every retry. `track` events map by
event name through a table the config may replace (`[gateway.segment_track]`).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from operators.events import is_time_zone
from operators.providers.common import (
    Address,
    Draft,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    attached,
    dump,
    e164,
    email_address,
    event_id,
    fingerprint,
    parse_json,
    string,
    ts_from_iso,
)

PROVIDER: Final = "segment"
DEFAULT_TRACK: Final[Mapping[str, str]] = {
    "Form Submitted": "form_submit",
    "Proposal Viewed": "proposal_view",
    "Content Downloaded": "content_download",
    "Chat Started": "chat_started",
    "Meeting Booked": "meeting_booked",
}
# The contract types a track event may become, and the property each one carries.
TRACK_TYPES: Final[Mapping[str, str | None]] = {
    "form_submit": "form",
    "proposal_view": "document",
    "content_download": "asset",
    "chat_started": None,
    "meeting_booked": None,
}
_PROFILE_TRAITS: Final = ("region", "segment", "lead_source", "account")
_CALLS: Final = frozenset({"identify", "page", "track", "screen", "group", "alias"})


def map_body(body: bytes, now: datetime, track: Mapping[str, str] = DEFAULT_TRACK) -> Mapped:
    """Map one request: a call object, a JSON array of calls, or `{"batch": [...]}`."""
    payload = parse_json(body)
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        payload = payload["batch"]
    calls = payload if isinstance(payload, list) else [payload]
    if not calls or not all(isinstance(c, dict) and "type" in c for c in calls):
        msg = "not a Segment call: expected a JSON object with `type`"
        raise NotProviderFormatError(msg)
    out = Mapped()
    for call in calls:
        out.extend(map_call(call, now, track))
    return out


def map_call(call: dict[str, Any], now: datetime, track: Mapping[str, str]) -> Mapped:
    kind = call.get("type")
    if kind not in ("identify", "page", "track"):
        return Mapped(skipped=[kind if kind in _CALLS else "other"])
    traits = _dict(call.get("traits"))
    context = _dict(call.get("context"))
    prospect = attached(call.get("userId"))
    email = email_address(traits.get("email")) or email_address(
        _dict(context.get("traits")).get("email")
    )
    if prospect is None and email is None:
        return Mapped(skipped=["anonymous"])
    address = Address("email", email) if prospect is None and email is not None else None
    native = string(call.get("messageId")) or fingerprint(call)
    ts = ts_from_iso(call.get("timestamp") or call.get("originalTimestamp"), now)
    raw = dump(call)

    def draft(contract: str, **fields: Any) -> Draft:
        return Draft(
            id=event_id(PROVIDER, native, contract),
            type=contract,
            ts=ts,
            fields=fields,
            prospect=prospect,
            address=address,
            raw=raw,
        )

    properties = _dict(call.get("properties"))
    if kind == "identify":
        return Mapped(drafts=[draft("profile", **_profile(traits, context))])
    if kind == "page":
        url = string(properties.get("url")) or string(_dict(context.get("page")).get("url"))
        if url is None:
            return Mapped(unreadable=[Unreadable(raw, "Segment page call without a url")])
        return Mapped(drafts=[draft("page_view", url=url)])
    name = call.get("event")
    contract = track.get(name) if isinstance(name, str) else None
    if contract is None or contract not in TRACK_TYPES:
        return Mapped(skipped=["track_unmapped"])
    field = TRACK_TYPES[contract]
    value = string(properties.get(field)) if field is not None else None
    return Mapped(drafts=[draft(contract, **({field: value} if field and value else {}))])


def _profile(traits: dict[str, Any], context: dict[str, Any]) -> dict[str, str]:
    """The profile fields a Segment identify carries: a phone that is not E.164 and a time zone
    that is not an IANA name are left out (the rest of the profile still counts)."""
    fields: dict[str, str] = {}
    email = string(traits.get("email"))
    if email is not None:
        fields["email"] = email.strip()
    phone = e164(traits.get("phone"))
    if phone is not None:
        fields["phone"] = phone
    for name in _PROFILE_TRAITS:
        value = string(traits.get(name))
        if value is not None:
            fields[name] = value
    zone = string(traits.get("timezone")) or string(context.get("timezone"))
    if zone is not None and is_time_zone(zone):
        fields["timezone"] = zone
    return fields


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
