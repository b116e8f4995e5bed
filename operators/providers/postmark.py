"""Postmark webhooks (one JSON record per request, told apart by `RecordType`) to contract events.

`Metadata` carries `touchflow_prospect` / `touchflow_command`; without a prospect, the recipient
(`Recipient`, or `Email` on bounces and spam complaints) is looked up in the identity index.
Ids: `MessageID` plus the record type, and the time for records a message can have several of
(opens, clicks, subscription changes); a bounce or complaint by its own `ID`.
"""

from datetime import datetime
from typing import Any, Final

from operators.providers.common import (
    COMMAND_ARG,
    PROSPECT_ARG,
    EmailEvent,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    attached,
    dump,
    email_address,
    fingerprint,
    parse_json,
    string,
    ts_from_iso,
)

PROVIDER: Final = "postmark"
_HARD: Final = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
_TIME_FIELD: Final = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}
_KNOWN: Final = frozenset({*_TIME_FIELD, "Inbound"})


def map_body(body: bytes, now: datetime) -> Mapped:
    """Map one webhook request; NotProviderFormatError unless a JSON object with `RecordType`
    (a JSON array of records is accepted as well, mapped one by one)."""
    payload = parse_json(body)
    records = payload if isinstance(payload, list) else [payload]
    if not records or not all(isinstance(r, dict) and "RecordType" in r for r in records):
        msg = "not a Postmark webhook: expected a JSON object with `RecordType`"
        raise NotProviderFormatError(msg)
    out = Mapped()
    for record in records:
        out.extend(map_record(record, now))
    return out


def map_record(record: dict[str, Any], now: datetime) -> Mapped:
    kind = record.get("RecordType")
    if not isinstance(kind, str) or kind not in _TIME_FIELD:
        return Mapped(skipped=[kind if kind in _KNOWN else "other"])
    metadata = record.get("Metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    prospect = attached(metadata.get(PROSPECT_ARG))
    command = attached(metadata.get(COMMAND_ARG))
    email = email_address(record.get("Recipient") or record.get("Email"))
    if prospect is None and email is None:
        reason = "Postmark record names no prospect: no touchflow_prospect and no recipient"
        return Mapped(unreadable=[Unreadable(dump(record), reason)])
    time_text = record.get(_TIME_FIELD[kind])
    ts = ts_from_iso(time_text, now)
    native = _native(kind, record, time_text)
    raw = dump(record)
    draft = EmailEvent(PROVIDER, native, ts, prospect, email, raw).draft

    with_command = {"command": command} if command is not None else {}
    if kind == "Delivery":
        drafts = [draft("delivered", **with_command)]
        if command is None:  # a message touchflow did not command: one touch of the ledger
            drafts.append(draft("touch_sent", by="rep"))
        return Mapped(drafts=drafts)
    if kind == "Open":
        return Mapped(drafts=[draft("opened", **with_command)])
    if kind == "Click":
        url = {"url": record["OriginalLink"]} if string(record.get("OriginalLink")) else {}
        return Mapped(drafts=[draft("clicked", **url, **with_command)])
    if kind == "Bounce":
        return Mapped(drafts=[draft("bounce", hard=record.get("Type") in _HARD)])
    if kind == "SpamComplaint":
        return Mapped(drafts=[draft("complaint")])
    if record.get("SuppressSending") is True:  # SubscriptionChange
        return Mapped(drafts=[draft("opt_out")])
    return Mapped(skipped=["SubscriptionChange_resume"])


def _native(kind: str, record: dict[str, Any], time_text: Any) -> str:
    """Postmark's own ids: a bounce/complaint `ID`; else `MessageID` and the record type, with
    the time where one message has several records of that type."""
    bounce_id = record.get("ID")
    if kind in ("Bounce", "SpamComplaint") and isinstance(bounce_id, int | str) and bounce_id:
        return f"{kind}-{bounce_id}"
    message = string(record.get("MessageID"))
    if message is None:
        return fingerprint(record)
    if kind in ("Open", "SubscriptionChange"):
        return f"{message}.{kind}.{time_text}"
    if kind == "Click":
        return f"{message}.{kind}.{time_text}.{record.get('OriginalLink')}"
    recipient = string(record.get("Recipient")) or ""
    return f"{message}.{kind}.{recipient.lower()}"
