"""Mailgun webhooks (JSON: `signature` and `event-data`) to contract events.

`user-variables` carry `touchflow_prospect` / `touchflow_command`; without a prospect the
`recipient` is looked up in the identity index. Ids come from `event-data.id`, Mailgun's own
event id (the same on every retry).
"""

from datetime import datetime
from typing import Any, Final, NamedTuple

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
    ts_from_unix,
)

PROVIDER: Final = "mailgun"
_SIMPLE: Final = {
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "complained": "complaint",
    "unsubscribed": "opt_out",
}
_KNOWN: Final = frozenset({"accepted", "rejected", "failed", "stored", "list_member_uploaded"})


class Signature(NamedTuple):
    """The `signature` object of a Mailgun webhook."""

    timestamp: str
    token: str
    signature: str


def signature_of(body: bytes) -> tuple[Any, Signature | None]:
    """The parsed payload and its (timestamp, token, signature), or None when absent.

    Raises NotProviderFormatError when the body is not JSON at all; a JSON body without a
    usable `signature` object is unsigned (401, checked before the format).
    """
    payload = parse_json(body)
    sig = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(sig, dict):
        return payload, None
    parts = (sig.get("timestamp"), sig.get("token"), sig.get("signature"))
    if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in parts):
        return payload, None
    timestamp, token, signature = (str(p) for p in parts)
    return payload, Signature(timestamp, token, signature)


def map_payload(payload: Any, now: datetime) -> Mapped:
    """Map one (verified) webhook payload; NotProviderFormatError without `event-data`."""
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        msg = "not a Mailgun webhook: no `event-data` object"
        raise NotProviderFormatError(msg)
    kind = data.get("event")
    if not isinstance(kind, str) or not kind:
        return Mapped(unreadable=[Unreadable(dump(data), "Mailgun event without `event`")])
    variables = data.get("user-variables")
    variables = variables if isinstance(variables, dict) else {}
    prospect = attached(variables.get(PROSPECT_ARG))
    command = attached(variables.get(COMMAND_ARG))
    email = email_address(data.get("recipient"))
    if prospect is None and email is None:
        reason = "Mailgun event names no prospect: no touchflow_prospect and no `recipient`"
        return Mapped(unreadable=[Unreadable(dump(data), reason)])
    native = string(data.get("id")) or fingerprint(data)
    ts = ts_from_unix(data.get("timestamp"), now)
    raw = dump(data)
    draft = EmailEvent(PROVIDER, native, ts, prospect, email, raw).draft

    with_command = {"command": command} if command is not None else {}
    if kind in _SIMPLE:
        contract = _SIMPLE[kind]
        fields: dict[str, Any] = {}
        if contract in ("delivered", "opened", "clicked"):
            fields.update(with_command)
        if contract == "clicked" and string(data.get("url")):
            fields["url"] = data["url"]
        return Mapped(drafts=[draft(contract, **fields)])
    if kind == "failed":
        if data.get("severity") == "permanent":
            return Mapped(drafts=[draft("bounce", hard=True)])
        return Mapped(skipped=["failed_temporary"])
    if kind == "accepted" and command is None:
        # A message touchflow did not command: one touch of the ledger.
        return Mapped(drafts=[draft("touch_sent", by="rep")])
    return Mapped(skipped=[kind if kind in _KNOWN else "other"])
