"""Every row of the contract's mapping table (section 7), on the pure mapping functions, with
payloads shaped as the providers document them. Every event produced is read back through
touchflow's own reader under the default limits."""

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.intake import EventReader
from operators.policy import Limits
from operators.providers import calendly, intercom, mailgun, postmark, segment, sendgrid, twilio
from operators.providers.common import Draft, Mapped, NotProviderFormatError, event_json
from tests.gateway import samples

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
READER = EventReader(Limits())


def read_all(mapped: Mapped) -> list[dict[str, Any]]:
    """Each draft as the event JSON the gateway appends, checked by the engine's reader."""
    out = []
    for draft in mapped.drafts:
        raw = event_json(draft, draft.prospect or "someone")
        event = READER.read(raw)
        assert not isinstance(event, str), f"{raw!r}: {event}"
        out.append(orjson.loads(raw))
    return out


def kinds(mapped: Mapped) -> list[tuple[str, ...]]:
    return [_shape(e) for e in read_all(mapped)]


def _shape(event: dict[str, Any]) -> tuple[str, ...]:
    keys = ("type", "channel", "hard", "outcome", "command", "by", "url", "text")
    return tuple(f"{k}={event[k]}" for k in keys if k in event)


def sg(item: dict[str, Any]) -> Mapped:
    return sendgrid.map_body(orjson.dumps([item]), NOW)


# -- SendGrid ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (samples.sendgrid("delivered"), [("type=delivered", "channel=email")]),
        (samples.sendgrid("open"), [("type=opened", "channel=email")]),
        (
            samples.sendgrid("click", url="https://x.test/p"),
            [("type=clicked", "channel=email", "url=https://x.test/p")],
        ),
        (
            samples.sendgrid("bounce", type="bounce"),
            [("type=bounce", "channel=email", "hard=True")],
        ),
        (
            samples.sendgrid("bounce", type="blocked"),
            [("type=bounce", "channel=email", "hard=False")],
        ),
        (
            samples.sendgrid("dropped", reason="Bounced Address"),
            [("type=bounce", "channel=email", "hard=True")],
        ),
        (
            samples.sendgrid("dropped", reason="Invalid"),
            [("type=bounce", "channel=email", "hard=True")],
        ),
        (
            samples.sendgrid("dropped", reason="Unsubscribed Address"),
            [("type=opt_out", "channel=email")],
        ),
        (
            samples.sendgrid("dropped", reason="Spam Reporting Address"),
            [("type=opt_out", "channel=email")],
        ),
        (
            samples.sendgrid("dropped", reason="Invalid SMTPAPI header", touchflow_command="c1"),
            [("type=touch_failed", "channel=email", "command=c1")],
        ),
        (samples.sendgrid("spamreport"), [("type=complaint", "channel=email")]),
        (samples.sendgrid("unsubscribe"), [("type=opt_out", "channel=email")]),
        (
            samples.sendgrid("group_unsubscribe", asm_group_id=1),
            [("type=opt_out", "channel=email")],
        ),
        (samples.sendgrid("processed"), [("type=touch_sent", "channel=email", "by=rep")]),
    ],
)
def test_sendgrid_rows(item: dict[str, Any], expected: list[tuple[str, ...]]) -> None:
    assert kinds(sg(item)) == expected


def test_sendgrid_no_contract_meaning() -> None:
    commanded = {"touchflow_command": "c1", "touchflow_prospect": "p1"}
    assert sg(samples.sendgrid("processed", **commanded)).skipped == ["processed"]
    assert sg(samples.sendgrid("deferred", attempt="5")).skipped == ["deferred"]
    assert sg(samples.sendgrid("open", sg_machine_open=True)).skipped == ["machine_open"]
    assert sg(samples.sendgrid("dropped", reason="Invalid SMTPAPI header")).skipped == ["dropped"]
    assert sg(samples.sendgrid("something_new")).skipped == ["other"]


def test_sendgrid_custom_args_name_prospect_and_command() -> None:
    item = samples.sendgrid("delivered", touchflow_prospect="p-9", touchflow_command="cmd-1")
    (draft,) = sg(item).drafts
    assert draft.prospect == "p-9"
    assert draft.address is None
    assert draft.fields["command"] == "cmd-1"
    assert draft.ts == "2017-12-15T00:59:29Z"


def test_sendgrid_batch_mixes_types_recipients_and_category_shapes() -> None:
    mapped = sendgrid.map_body(orjson.dumps(samples.SENDGRID_BATCH), NOW)
    by_address = {(d.type, d.address.value if d.address else None) for d in mapped.drafts}
    assert ("bounce", "other@test.com") in by_address
    assert ("complaint", "third@test.com") in by_address
    assert ("touch_sent", "example@test.com") in by_address
    assert mapped.skipped == ["deferred"]
    ids = [d.id for d in mapped.drafts]
    assert len(ids) == len(set(ids))
    again = sendgrid.map_body(orjson.dumps(samples.SENDGRID_BATCH), datetime.now(UTC))
    assert [d.id for d in again.drafts] == ids  # deterministic, whatever the arrival time


def test_sendgrid_missing_ids_and_bad_items() -> None:
    item = samples.sendgrid("delivered")
    del item["sg_event_id"], item["sg_message_id"], item["smtp-id"]
    first, second = sg(item).drafts[0], sg(dict(reversed(list(item.items())))).drafts[0]
    assert first.id == second.id
    bad = sendgrid.map_body(b'[1, {"event": "delivered"}, {"email": "a@b.c"}]', NOW)
    assert len(bad.unreadable) == 3
    assert not bad.drafts
    with pytest.raises(NotProviderFormatError):
        sendgrid.map_body(b"not json", NOW)
    with pytest.raises(NotProviderFormatError):
        sendgrid.map_body(b'"a string"', NOW)


# -- Twilio -----------------------------------------------------------------------------------


def test_twilio_inbound_reply_and_stop() -> None:
    assert kinds(twilio.map_inbound(samples.twilio_inbound(), NOW)) == [
        ("type=replied", "channel=sms", "text=Hello there")
    ]
    stop = twilio.map_inbound(samples.twilio_inbound(Body="STOP", OptOutType="STOP"), NOW)
    assert kinds(stop) == [
        ("type=replied", "channel=sms", "text=STOP"),
        ("type=opt_out", "channel=sms"),
    ]
    assert all(d.address is not None and d.address.value == "+14155550111" for d in stop.drafts)


@pytest.mark.parametrize(
    ("status", "extra", "expected"),
    [
        ("delivered", {}, [("type=delivered", "channel=sms", "command=c1")]),
        (
            "undelivered",
            {"ErrorCode": "30003"},
            [("type=touch_failed", "channel=sms", "command=c1")],
        ),
        ("failed", {"ErrorCode": "30008"}, [("type=touch_failed", "channel=sms", "command=c1")]),
        (
            "undelivered",
            {"ErrorCode": "21610"},
            [("type=touch_failed", "channel=sms", "command=c1"), ("type=opt_out", "channel=sms")],
        ),
        (
            "failed",
            {"ErrorCode": "30005"},
            [
                ("type=touch_failed", "channel=sms", "command=c1"),
                ("type=bounce", "channel=sms", "hard=True"),
            ],
        ),
        (
            "undelivered",
            {"ErrorCode": "30006"},
            [
                ("type=touch_failed", "channel=sms", "command=c1"),
                ("type=bounce", "channel=sms", "hard=True"),
            ],
        ),
    ],
)
def test_twilio_status_rows(status: str, extra: dict[str, str], expected: list[Any]) -> None:
    query = {"prospect": "p1", "command": "c1"}
    mapped = twilio.map_message_status(samples.twilio_status(status, **extra), query, NOW)
    assert kinds(mapped) == expected
    assert all(d.prospect == "p1" for d in mapped.drafts)


def test_twilio_status_without_command() -> None:
    sent = twilio.map_message_status(samples.twilio_status("sent"), {}, NOW)
    assert kinds(sent) == [("type=touch_sent", "channel=sms", "by=rep")]
    assert sent.drafts[0].address is not None
    assert sent.drafts[0].address.value == "+14155550111"
    commanded = twilio.map_message_status(samples.twilio_status("sent"), {"command": "c"}, NOW)
    assert commanded.skipped == ["message_sent"]
    queued = twilio.map_message_status(samples.twilio_status("queued"), {"prospect": "p"}, NOW)
    assert queued.skipped == ["message_queued"]
    failed = twilio.map_message_status(samples.twilio_status("failed", ErrorCode="21610"), {}, NOW)
    assert kinds(failed) == [("type=opt_out", "channel=sms")]


@pytest.mark.parametrize(
    ("status", "answered_by", "outcome"),
    [
        ("completed", None, "answered"),
        ("completed", "human", "answered"),
        ("completed", "unknown", "answered"),
        ("completed", "machine_start", "voicemail"),
        ("completed", "machine_end_beep", "voicemail"),
        ("busy", None, "busy"),
        ("no-answer", None, "no_answer"),
        ("failed", None, "failed"),
    ],
)
def test_twilio_call_rows(status: str, answered_by: str | None, outcome: str) -> None:
    extra = {"AnsweredBy": answered_by} if answered_by else {}
    query = {"prospect": "p1", "command": "c1"}
    mapped = twilio.map_call_status(samples.twilio_call(status, **extra), query, NOW)
    assert kinds(mapped) == [("type=call_outcome", f"outcome={outcome}", "command=c1")]
    assert mapped.drafts[0].ts == "2010-08-16T03:45:01Z"  # the callback's own Timestamp


def test_twilio_call_without_command_is_a_rep_touch_once() -> None:
    done = twilio.map_call_status(samples.twilio_call("completed"), {}, NOW)
    assert kinds(done) == [
        ("type=call_outcome", "outcome=answered"),
        ("type=touch_sent", "channel=phone", "by=rep"),
    ]
    ringing = twilio.map_call_status(samples.twilio_call("ringing"), {}, NOW)
    assert ringing.skipped == ["call_ringing"]
    busy = twilio.map_call_status(samples.twilio_call("busy"), {}, NOW)
    assert busy.drafts[1].id == done.drafts[1].id  # one touch per call, by CallSid


@settings(max_examples=60, deadline=None)
@given(
    st.permutations(sorted(samples.twilio_status("undelivered", ErrorCode="21610"))),
    st.dictionaries(
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij", min_size=3, max_size=12).map(
            lambda s: "X" + s
        ),
        st.text(max_size=20),
        max_size=5,
    ),
)
def test_twilio_params_in_any_order_with_extras_map_the_same(
    order: list[str], extras: dict[str, str]
) -> None:
    base = samples.twilio_status("undelivered", ErrorCode="21610")
    query = {"prospect": "p1", "command": "c1"}
    expected = twilio.map_message_status(base, query, NOW).drafts
    shuffled = {name: base[name] for name in order} | extras
    got = twilio.map_message_status(shuffled, query, NOW).drafts
    assert [(d.id, d.type, d.fields) for d in got] == [(d.id, d.type, d.fields) for d in expected]


def test_twilio_form_parsing_and_format() -> None:
    pairs = twilio.parse_form_pairs(b"Body=STOP&MessageSid=SM1&From=%2B14155550111&Body=again")
    assert twilio.first_values(pairs)["Body"] == "STOP"
    with pytest.raises(NotProviderFormatError):
        twilio.map_inbound({"Body": "hi"}, NOW)


# -- Mailgun ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "extra", "expected"),
    [
        ("delivered", {}, [("type=delivered", "channel=email")]),
        ("opened", {}, [("type=opened", "channel=email")]),
        (
            "clicked",
            {"url": "https://x.test/a"},
            [("type=clicked", "channel=email", "url=https://x.test/a")],
        ),
        ("complained", {}, [("type=complaint", "channel=email")]),
        ("unsubscribed", {}, [("type=opt_out", "channel=email")]),
        (
            "failed",
            {"severity": "permanent", "reason": "bounce"},
            [("type=bounce", "channel=email", "hard=True")],
        ),
        ("accepted", {}, [("type=touch_sent", "channel=email", "by=rep")]),
    ],
)
def test_mailgun_rows(event: str, extra: dict[str, Any], expected: list[Any]) -> None:
    assert kinds(mailgun.map_payload(samples.mailgun(event, **extra), NOW)) == expected


def test_mailgun_user_variables_and_no_meaning() -> None:
    variables = {"touchflow_prospect": "p2", "touchflow_command": "c2"}
    body = samples.mailgun("opened", **{"user-variables": variables})
    (draft,) = mailgun.map_payload(body, NOW).drafts
    assert (draft.prospect, draft.fields["command"]) == ("p2", "c2")
    temporary = samples.mailgun("failed", severity="temporary")
    assert mailgun.map_payload(temporary, NOW).skipped == ["failed_temporary"]
    commanded = samples.mailgun("accepted", **{"user-variables": variables})
    assert mailgun.map_payload(commanded, NOW).skipped == ["accepted"]
    with pytest.raises(NotProviderFormatError):
        mailgun.map_payload({"signature": {}}, NOW)


# -- Postmark ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "extra", "expected"),
    [
        (
            "Delivery",
            {},
            [("type=delivered", "channel=email"), ("type=touch_sent", "channel=email", "by=rep")],
        ),
        ("Open", {}, [("type=opened", "channel=email")]),
        ("Click", {}, [("type=clicked", "channel=email", "url=https://example.com")]),
        ("SpamComplaint", {}, [("type=complaint", "channel=email")]),
        ("Bounce", {"Type": "HardBounce"}, [("type=bounce", "channel=email", "hard=True")]),
        ("Bounce", {"Type": "BadEmailAddress"}, [("type=bounce", "channel=email", "hard=True")]),
        (
            "Bounce",
            {"Type": "ManuallyDeactivated"},
            [("type=bounce", "channel=email", "hard=True")],
        ),
        ("Bounce", {"Type": "SoftBounce"}, [("type=bounce", "channel=email", "hard=False")]),
        ("Bounce", {"Type": "Transient"}, [("type=bounce", "channel=email", "hard=False")]),
        ("SubscriptionChange", {}, [("type=opt_out", "channel=email")]),
    ],
)
def test_postmark_rows(record: str, extra: dict[str, Any], expected: list[Any]) -> None:
    body = orjson.dumps(samples.postmark(record, **extra))
    assert kinds(postmark.map_body(body, NOW)) == expected


def test_postmark_metadata_and_resubscribe() -> None:
    metadata = {"touchflow_prospect": "p3", "touchflow_command": "c3"}
    body = orjson.dumps(samples.postmark("Delivery", Metadata=metadata))
    mapped = postmark.map_body(body, NOW)
    assert kinds(mapped) == [("type=delivered", "channel=email", "command=c3")]
    assert mapped.drafts[0].ts == "2014-08-01T17:28:10.273Z"
    back = orjson.dumps(samples.postmark("SubscriptionChange", SuppressSending=False))
    assert postmark.map_body(back, NOW).skipped == ["SubscriptionChange_resume"]
    with pytest.raises(NotProviderFormatError):
        postmark.map_body(b'{"hello": 1}', NOW)


# -- Segment ----------------------------------------------------------------------------------


def test_segment_identify_is_a_profile() -> None:
    call = samples.segment("identify")
    call["traits"].update(phone="+1 415 555 0111", region="US-FL", lead_source="webinar")
    (event,) = read_all(segment.map_body(orjson.dumps(call), NOW))
    assert event["type"] == "profile"
    assert event["prospect"] == "97980cfea0067"
    assert (event["email"], event["phone"]) == ("peter@example.com", "+14155550111")
    assert (event["region"], event["lead_source"]) == ("US-FL", "webinar")
    assert event["timezone"] == "Europe/Amsterdam"  # from context.timezone
    assert "plan" not in event


def test_segment_page_track_and_anonymous() -> None:
    (page,) = read_all(segment.map_body(orjson.dumps(samples.segment("page")), NOW))
    assert (page["type"], page["url"]) == ("page_view", "https://example.com/pricing")
    for name, contract in segment.DEFAULT_TRACK.items():
        call = samples.segment("track", event=name)
        (event,) = read_all(segment.map_body(orjson.dumps(call), NOW))
        assert event["type"] == contract
    other = samples.segment("track", event="Video Played")
    assert segment.map_body(orjson.dumps(other), NOW).skipped == ["track_unmapped"]
    custom = segment.map_body(orjson.dumps(other), NOW, {"Video Played": "content_download"})
    assert [d.type for d in custom.drafts] == ["content_download"]
    anonymous = samples.segment("page", userId=None)
    assert segment.map_body(orjson.dumps(anonymous), NOW).skipped == ["anonymous"]
    by_email = samples.segment("page", userId=None, context={"traits": {"email": "A@B.test"}})
    (draft,) = segment.map_body(orjson.dumps(by_email), NOW).drafts
    assert draft.address is not None
    assert (draft.address.kind, draft.address.value) == ("email", "a@b.test")


# -- Calendly and Intercom --------------------------------------------------------------------


def test_calendly_invitee_created_is_a_meeting() -> None:
    mapped = calendly.map_body(orjson.dumps(samples.calendly()), NOW)
    assert kinds(mapped) == [("type=meeting_booked",)]
    assert mapped.drafts[0].address is not None
    assert mapped.drafts[0].address.value == "test@example.com"
    canceled = calendly.map_body(orjson.dumps(samples.calendly("invitee.canceled")), NOW)
    assert canceled.skipped == ["invitee.canceled"]


def test_intercom_rows() -> None:
    created = intercom.map_body(orjson.dumps(samples.intercom("conversation.user.created")), NOW)
    assert kinds(created) == [("type=chat_started",)]
    assert created.drafts[0].prospect == "prospect-7"
    replied = intercom.map_body(orjson.dumps(samples.intercom("conversation.user.replied")), NOW)
    assert kinds(replied) == [("type=replied", "channel=chat", "text=Can we talk tomorrow?")]
    by_email = samples.intercom("conversation.user.created", external_id=None)
    (draft,) = intercom.map_body(orjson.dumps(by_email), NOW).drafts
    assert draft.address is not None
    assert draft.address.value == "jo@example.com"
    closed = intercom.map_body(orjson.dumps(samples.intercom("conversation.admin.closed")), NOW)
    assert closed.skipped == ["other"]


def test_ids_are_bounded_and_distinct_per_contract_event() -> None:
    long_uri = "https://api.calendly.com/" + "x" * 300
    (draft,) = calendly.map_body(orjson.dumps(samples.calendly(uri=long_uri)), NOW).drafts
    assert len(draft.id) <= 128
    drafts: list[Draft] = twilio.map_inbound(samples.twilio_inbound(OptOutType="STOP"), NOW).drafts
    assert len({d.id for d in drafts}) == 2
