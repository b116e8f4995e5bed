"""Provider payloads shaped as the providers document them (SendGrid Event Webhook reference,
Twilio webhook parameters, Mailgun webhooks, Postmark webhook docs, the Segment spec, Calendly
webhooks v2, Intercom webhook models). Values are the documentation's examples or plainly
made-up ids; the field names and shapes are the providers'.
"""

from typing import Any

TS = 1513299569  # SendGrid's documented example timestamp (2017-12-15T00:59:29Z)


def sendgrid(event: str, **extra: Any) -> dict[str, Any]:
    """One SendGrid event as in the Event Webhook reference (custom args at the top level)."""
    base: dict[str, Any] = {
        "email": "example@test.com",
        "timestamp": TS,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": "cat facts",
        "sg_event_id": f"sg-{event}-{extra.pop('n', 0)}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    base.update(extra)
    return base


SENDGRID_BATCH: list[dict[str, Any]] = [
    sendgrid("processed"),
    sendgrid("deferred", response="400 try again later", attempt="5"),
    sendgrid("delivered", response="250 OK", ip="168.1.1.1", tls=1, cert_err=0),
    sendgrid("open", useragent="Mozilla/4.0", ip="255.255.255.255", sg_machine_open=False),
    sendgrid(
        "click", useragent="Mozilla/4.0", ip="255.255.255.255", url="http://www.sendgrid.com/"
    ),
    sendgrid(
        "bounce",
        reason="500 unknown recipient",
        status="5.0.0",
        type="bounce",
        bounce_classification="Invalid Address",
        email="other@test.com",
        category=["cat facts", "dog facts"],
    ),
    sendgrid("spamreport", email="third@test.com"),
    sendgrid("unsubscribe"),
    sendgrid("group_unsubscribe", asm_group_id=10, useragent="Mozilla/4.0", url="http://x.test/"),
]


def twilio_inbound(**extra: str) -> dict[str, str]:
    """An inbound SMS webhook's parameters (Twilio messaging webhook request)."""
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "94105",
        "SmsSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": "Hello there",
        "FromCountry": "US",
        "To": "+14155550100",
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
        "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "From": "+14155550111",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def twilio_status(status: str, **extra: str) -> dict[str, str]:
    """A message status callback's parameters."""
    params = {
        "SmsSid": "SM2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
        "SmsStatus": status,
        "MessageStatus": status,
        "To": "+14155550111",
        "MessageSid": "SM2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
        "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "From": "+14155550100",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def twilio_call(status: str, **extra: str) -> dict[str, str]:
    """A voice status callback's parameters (outbound call)."""
    params = {
        "Called": "+14155550111",
        "ToState": "CA",
        "CallerCountry": "US",
        "Direction": "outbound-api",
        "Timestamp": "Mon, 16 Aug 2010 03:45:01 +0000",
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "3",
        "CallSid": "CA5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d",
        "To": "+14155550111",
        "CallStatus": status,
        "From": "+14155550100",
        "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "ApiVersion": "2010-04-01",
        "CallDuration": "12",
    }
    params.update(extra)
    return params


def mailgun(event: str, **extra: Any) -> dict[str, Any]:
    """A Mailgun webhook body: `signature` (filled by the signer) and `event-data`."""
    data: dict[str, Any] = {
        "tags": ["my_tag_1"],
        "timestamp": 1521472262.908181,
        "storage": {"url": "https://se.api.mailgun.net/v3/domains/x/messages/m", "key": "m"},
        "envelope": {
            "transport": "smtp",
            "sender": "bob@example.org",
            "targets": "alice@example.com",
        },
        "recipient-domain": "example.com",
        "id": f"CPgfbmQMTCKtHW6uIWtuVe-{event}",
        "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1"},
        "flags": {"is-routed": False, "is-authenticated": True, "is-test-mode": False},
        "log-level": "info",
        "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": "m@example.org"}},
        "recipient": "alice@example.com",
        "event": event,
    }
    data.update(extra)
    return {"signature": {}, "event-data": data}


def postmark(record_type: str, **extra: Any) -> dict[str, Any]:
    """A Postmark webhook record (Delivery, Bounce, SpamComplaint, Open, Click, ...)."""
    common: dict[str, Any] = {
        "RecordType": record_type,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value"},
        "Tag": "welcome-email",
        "ServerID": 23,
    }
    by_type: dict[str, dict[str, Any]] = {
        "Delivery": {
            "Recipient": "john@example.com",
            "DeliveredAt": "2014-08-01T13:28:10.2735393-04:00",
            "Details": "Test delivery webhook details",
        },
        "Bounce": {
            "ID": 42,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message",
            "Details": "Test bounce details",
            "Email": "john@example.com",
            "From": "sender@example.com",
            "BouncedAt": "2014-08-01T13:28:10.2735393-04:00",
            "Inactive": True,
            "CanActivate": True,
            "Subject": "Test subject",
        },
        "SpamComplaint": {
            "ID": 43,
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Email": "john@example.com",
            "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        },
        "Open": {
            "FirstOpen": True,
            "Recipient": "john@example.com",
            "ReceivedAt": "2019-11-05T16:33:54.9070259Z",
            "Platform": "WebMail",
            "ReadSeconds": 5,
            "UserAgent": "Mozilla/5.0",
        },
        "Click": {
            "Recipient": "john@example.com",
            "ReceivedAt": "2017-10-25T15:21:11.6180000Z",
            "ClickLocation": "HTML",
            "OriginalLink": "https://example.com",
            "Platform": "Desktop",
        },
        "SubscriptionChange": {
            "Recipient": "john@example.com",
            "ChangedAt": "2020-02-01T10:53:34.416071Z",
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        },
    }
    common.update(by_type.get(record_type, {}))
    common.update(extra)
    return common


def segment(kind: str, **extra: Any) -> dict[str, Any]:
    """A Segment call as its spec describes it."""
    call: dict[str, Any] = {
        "type": kind,
        "messageId": f"ajs-{kind}-f8ca1e4de5024d9430b3928bd8ac6b96",
        "anonymousId": "507f191e810c19729de860ea",
        "userId": "97980cfea0067",
        "timestamp": "2015-02-23T22:28:55.111Z",
        "sentAt": "2015-02-23T22:28:55.111Z",
        "receivedAt": "2015-02-23T22:28:55.387Z",
        "context": {"ip": "8.8.8.8", "timezone": "Europe/Amsterdam"},
        "channel": "browser",
        "version": 1,
    }
    if kind == "identify":
        call["traits"] = {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium"}
    elif kind == "page":
        call["name"] = "Pricing"
        call["properties"] = {
            "path": "/pricing",
            "referrer": "",
            "search": "",
            "title": "Pricing",
            "url": "https://example.com/pricing",
        }
    elif kind == "track":
        call["event"] = "Form Submitted"
        call["properties"] = {}
    call.update(extra)
    return call


def calendly(event: str = "invitee.created", **payload: Any) -> dict[str, Any]:
    """A Calendly webhook v2 body."""
    body: dict[str, Any] = {
        "created_at": "2020-11-23T17:51:19.000000Z",
        "created_by": "https://api.calendly.com/users/AAAAAAAAAAAAAAAA",
        "event": event,
        "payload": {
            "cancel_url": "https://calendly.com/cancellations/AAAAAAAAAAAAAAAA",
            "created_at": "2020-11-23T17:51:18.327602Z",
            "email": "test@example.com",
            "event": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2",
            "name": "John Doe",
            "new_invitee": None,
            "old_invitee": None,
            "questions_and_answers": [],
            "reschedule_url": "https://calendly.com/reschedulings/AAAAAAAAAAAAAAAA",
            "rescheduled": False,
            "status": "active",
            "text_reminder_number": None,
            "timezone": "America/New_York",
            "tracking": {"utm_campaign": None, "utm_source": None},
            "updated_at": "2020-11-23T17:51:18.341657Z",
            "uri": "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAA",
        },
    }
    body["payload"].update(payload)
    return body


def intercom(topic: str, *, external_id: str | None = "prospect-7", **item: Any) -> dict[str, Any]:
    """An Intercom notification wrapping a conversation (API 2.x shape)."""
    conversation: dict[str, Any] = {
        "type": "conversation",
        "id": "147",
        "created_at": 1400850973,
        "updated_at": 1400857494,
        "source": {
            "type": "conversation",
            "id": "403918320",
            "delivered_as": "customer_initiated",
            "subject": "",
            "body": "<p>Hi, I have a question about <b>pricing</b> &amp; plans</p>",
            "author": {"type": "user", "id": "5017690", "name": "Jo", "email": "jo@example.com"},
        },
        "contacts": {
            "type": "contact.list",
            "contacts": [{"type": "contact", "id": "5017690", "external_id": external_id}],
        },
        "conversation_parts": {
            "type": "conversation_part.list",
            "conversation_parts": [],
            "total_count": 0,
        },
    }
    if topic == "conversation.user.replied":
        conversation["conversation_parts"]["conversation_parts"] = [
            {
                "type": "conversation_part",
                "id": "4412",
                "part_type": "comment",
                "body": "<p>Can we talk <i>tomorrow</i>?</p>",
                "created_at": 1400857494,
                "author": {"type": "user", "id": "5017690", "email": "jo@example.com"},
            }
        ]
        conversation["conversation_parts"]["total_count"] = 1
    conversation.update(item)
    return {
        "type": "notification_event",
        "app_id": "ecahpwf5",
        "data": {"type": "notification_event_data", "item": conversation},
        "links": {},
        "id": "notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3",
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": 1403137443,
        "created_at": 1403137443,
        "self": None,
    }
