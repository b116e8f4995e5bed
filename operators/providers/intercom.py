"""Intercom webhooks (`conversation.user.created`, `conversation.user.replied`) to contract events.

The prospect is the conversation contact's `external_id` (the user id the Messenger was booted
with; `user.user_id` in the older API shape); else the author's email is looked up in the
identity index. Ids come from the conversation id (one `chat_started` per conversation) and the
reply's conversation-part id (one `replied` per message), which retries repeat; the notification
id is the fallback.
"""

from datetime import datetime
from typing import Any, Final

from operators.providers.common import (
    Address,
    Draft,
    Mapped,
    NotProviderFormatError,
    Unreadable,
    attached,
    dump,
    email_address,
    event_id,
    fingerprint,
    parse_json,
    string,
    text_of,
    ts_from_unix,
)

PROVIDER: Final = "intercom"
_TOPICS: Final = {
    "conversation.user.created": "chat_started",
    "conversation.user.replied": "replied",
}


def map_body(body: bytes, now: datetime) -> Mapped:
    """Map one notification; NotProviderFormatError unless a JSON object with a `topic`."""
    hook = parse_json(body)
    if not isinstance(hook, dict) or not isinstance(hook.get("topic"), str):
        msg = "not an Intercom notification: expected a JSON object with `topic`"
        raise NotProviderFormatError(msg)
    topic = hook["topic"]
    contract = _TOPICS.get(topic)
    if contract is None:
        return Mapped(skipped=["ping" if topic == "ping" else "other"])
    item = _dict(_dict(hook.get("data")).get("item"))
    if not item:
        return Mapped(unreadable=[Unreadable(dump(hook), f"Intercom {topic} without data.item")])
    source = _dict(item.get("source"))
    part = _last_user_part(item) if contract == "replied" else {}
    prospect = _external_id(item)
    email = (
        email_address(_dict(part.get("author")).get("email"))
        or email_address(_dict(source.get("author")).get("email"))
        or email_address(_dict(item.get("user")).get("email"))
    )
    if prospect is None and email is None:
        reason = "Intercom conversation names no prospect: no contact external_id and no email"
        return Mapped(unreadable=[Unreadable(dump(hook), reason)])
    address = Address("email", email) if prospect is None and email is not None else None
    fallback = string(hook.get("id")) or fingerprint(hook)
    if contract == "chat_started":
        native = string(item.get("id")) or fallback
        ts = ts_from_unix(item.get("created_at") or hook.get("created_at"), now)
        fields: dict[str, Any] = {}
    else:
        native = string(part.get("id")) or fallback
        ts = ts_from_unix(part.get("created_at") or hook.get("created_at"), now)
        text = text_of(part.get("body"))
        fields = {"channel": "chat", **({"text": text} if text else {})}
    draft = Draft(
        id=event_id(PROVIDER, native, contract),
        type=contract,
        ts=ts,
        fields=fields,
        prospect=prospect,
        address=address,
        raw=dump(hook),
    )
    return Mapped(drafts=[draft])


def _external_id(item: dict[str, Any]) -> str | None:
    """The first contact's `external_id` (API 2.x), else `user.user_id` (API 1.x)."""
    contacts = _dict(item.get("contacts")).get("contacts")
    if isinstance(contacts, list):
        for contact in contacts:
            found = attached(_dict(contact).get("external_id"))
            if found is not None:
                return found
    return attached(_dict(item.get("user")).get("user_id"))


def _last_user_part(item: dict[str, Any]) -> dict[str, Any]:
    """The newest conversation part written by the user or lead (the reply itself)."""
    parts = _dict(item.get("conversation_parts")).get("conversation_parts")
    if not isinstance(parts, list):
        return {}
    for part in reversed(parts):
        author = _dict(_dict(part).get("author"))
        if author.get("type") in ("user", "lead", "contact"):
            return _dict(part)
    return _dict(parts[-1]) if parts else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
