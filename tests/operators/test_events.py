"""Event decoding: every contract type decodes; bad input is rejected with a path."""

import msgspec
import pytest

from operators.events import EVENT_TYPES, decode_event, rejection_reason

BASE = {"id": "e1", "prospect": "p1", "ts": "2026-03-02T10:00:00+01:00"}

EXAMPLES: dict[str, dict[str, object]] = {
    "profile": {"timezone": "Europe/Berlin", "phone": "+4915112345678", "region": "DE-BE"},
    "consent": {"channel": "sms", "granted": True, "source": "web-form"},
    "opt_out": {"channel": "all"},
    "do_not_contact": {"reason": "legal"},
    "bounce": {"channel": "email", "hard": True},
    "complaint": {"channel": "email"},
    "preference": {"channel": "phone", "stance": "avoid"},
    "page_view": {"url": "https://x.example/pricing"},
    "form_submit": {"form": "demo"},
    "proposal_view": {"document": "q3"},
    "content_download": {"asset": "ebook"},
    "chat_started": {},
    "enroll": {"sequence": "basic"},
    "unenroll": {},
    "touch_request": {"channel": "auto", "campaign": "spring", "priority": 9},
    "touch_sent": {"channel": "email", "command": "abc", "by": "rep"},
    "touch_failed": {"channel": "sms", "command": "abc"},
    "delivered": {"channel": "email"},
    "opened": {"channel": "email", "command": "abc"},
    "clicked": {"channel": "email", "url": "https://x.example"},
    "replied": {"channel": "sms", "text": "STOP", "sentiment": "negative"},
    "call_outcome": {"outcome": "voicemail"},
    "meeting_booked": {},
    "deal_closed": {"won": False},
}


def test_examples_cover_every_contract_type() -> None:
    assert set(EXAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_type_decodes_and_ignores_unknown_fields(kind: str) -> None:
    doc = {**BASE, "type": kind, **EXAMPLES[kind], "x_unknown": [1, 2]}
    event = decode_event(msgspec.json.encode(doc))
    assert type(event).__struct_config__.tag == kind
    assert event.prospect == "p1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[]", "Expected `object`"),
        (b'{"id":"1","type":"page_view","ts":"2026-03-02T10:00:00Z","url":"/"}', "`prospect`"),
        (b'{"id":"1","type":"fax","prospect":"p","ts":"2026-03-02T10:00:00Z"}', "$.type"),
        (
            b'{"id":"1","type":"bounce","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"channel":"fax","hard":true}',
            "$.channel",
        ),
        (b'{"id":"1","type":"chat_started","prospect":"p","ts":"2026-03-02T10:00:00"}', "$.ts"),
        (b'{"id":"1","type":"chat_started","prospect":"p","ts":"yesterday"}', "$.ts"),
        (b'{"id":1,"type":"chat_started","prospect":"p","ts":"2026-03-02T10:00:00Z"}', "$.id"),
        (
            b'{"id":"1","type":"bounce","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"channel":"email","hard":"yes"}',
            "$.hard",
        ),
        (
            b'{"id":"1","type":"profile","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"phone":"555-1234"}',
            "$.phone",
        ),
        (
            b'{"id":"1","type":"profile","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"timezone":"Mars/Olympus"}',
            "$.timezone",
        ),
        (
            b'{"id":"1","type":"touch_request","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"channel":"email","campaign":"c","priority":10}',
            "$.priority",
        ),
        (
            b'{"id":"' + b"x" * 129 + b'","type":"chat_started","prospect":"p",'
            b'"ts":"2026-03-02T10:00:00Z"}',
            "$.id",
        ),
        (
            b'{"id":"1","type":"opt_out","prospect":"p","ts":"2026-03-02T10:00:00Z",'
            b'"channel":"auto"}',
            "$.channel",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_reason_naming_the_field(raw: bytes, reason: str) -> None:
    with pytest.raises((msgspec.DecodeError, ValueError)) as info:
        decode_event(raw)
    assert reason in rejection_reason(info.value)
