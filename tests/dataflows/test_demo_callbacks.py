"""The demo sender's wire: provider-shaped callbacks, signed as SendGrid and Twilio sign them,
through a real gateway process onto the streams, under the gateway's provider-derived ids."""

import base64
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from connectors.identity import identity_key
from connectors.keys import Keys, shard_of
from dataflows.demo.answers import Behaviour
from dataflows.demo.callbacks import Contact, Part, contacts_from_lines, runs, shape
from dataflows.demo.gateway_wire import SENDGRID_PRIVATE_ENV, CallbackSecrets, GatewayWire, sign
from dataflows.demo.sender import Sender, group_name
from dataflows.demo.watch import GatewayCounts, gateway_counts
from tests.conftest import TEST_DB, _with_db
from tests.gateway.harness import Gateway

KEYS = Keys(prefix="tfc", shards=4)
CONFIG = '[streams]\nprefix = "tfc"\nshards = 4\n'
SECRETS = CallbackSecrets.generate()
PHONE = "+13055550123"
# Every branch that has a provider, at once: each command is answered in full.
EVERYTHING = Behaviour(
    failed=0.0,
    bounce={},
    opened=1.0,
    clicked=1.0,
    replied={"sms": 1.0, "chat": 1.0},
    stop_keyword=1.0,
    unsubscribed=1.0,
    delay_scale=0.0,
)
NOW = 1_790_000_000.0


def _answer(kind: str, channel: str | None = "email", **fields: Any) -> dict[str, Any]:
    event = {"id": f"c1:{kind}", "type": kind, "prospect": "p1", "ts": "2026-09-21T12:00:00Z"}
    return event | ({"channel": channel} if channel else {}) | fields


# -- pure: shape, sign, batch ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "endpoints", "checks"),
    [
        (_answer("touch_sent", command="c1"), ["events", "sendgrid"], {"event": "processed"}),
        (_answer("delivered", command="c1"), ["sendgrid"], {"event": "delivered"}),
        (_answer("opened", command="c1"), ["sendgrid"], {"event": "open"}),
        (_answer("clicked", url="https://x.test/a"), ["sendgrid"], {"url": "https://x.test/a"}),
        (_answer("bounce", hard=True), ["sendgrid"], {"event": "bounce", "type": "bounce"}),
        (_answer("bounce", hard=False), ["sendgrid"], {"event": "bounce", "type": "blocked"}),
        (_answer("touch_failed", command="c1"), ["sendgrid"], {"event": "dropped"}),
        (_answer("opt_out"), ["sendgrid"], {"event": "unsubscribe"}),
        (_answer("replied", text="Hi"), ["events"], {"type": "replied"}),
        (_answer("touch_sent", "sms"), ["events", "twilio/status"], {"MessageStatus": "sent"}),
        (_answer("delivered", "sms"), ["twilio/status"], {"MessageStatus": "delivered"}),
        (_answer("touch_failed", "sms"), ["twilio/status"], {"MessageStatus": "failed"}),
        (_answer("bounce", "sms", hard=True), ["twilio/status"], {"ErrorCode": "30005"}),
        (_answer("bounce", "sms", hard=False), ["twilio/status"], {"ErrorCode": "30003"}),
        (_answer("replied", "sms", text="stop"), ["twilio/messages"], {"OptOutType": "STOP"}),
        (_answer("replied", "sms", text="Call me"), ["twilio/messages"], {"From": PHONE}),
        (_answer("call_outcome", None, outcome="answered"), ["twilio/calls"],
         {"AnsweredBy": "human"}),
        (_answer("call_outcome", None, outcome="voicemail"), ["twilio/calls"],
         {"CallStatus": "completed", "AnsweredBy": "machine_end_beep"}),
        (_answer("call_outcome", None, outcome="no_answer"), ["twilio/calls"],
         {"CallStatus": "no-answer"}),
        (_answer("call_outcome", None, outcome="busy"), ["twilio/calls"], {"CallStatus": "busy"}),
        (_answer("touch_sent", "chat"), ["events"], {"channel": "chat"}),
        (_answer("replied", "linkedin", text="Hi"), ["events"], {"channel": "linkedin"}),
    ],
)  # fmt: skip
def test_each_answer_becomes_its_providers_callback(
    answer: dict[str, Any], endpoints: list[str], checks: dict[str, str]
) -> None:
    parts = shape("c1", answer, Contact(email="p1@x.test", phone=PHONE), NOW)
    assert [p.endpoint for p in parts] == endpoints
    last = parts[-1]
    assert {k: last.payload.get(k) for k in checks} == checks
    if last.endpoint == "sendgrid":
        assert (last.payload["touchflow_prospect"], last.payload["touchflow_command"]) == (
            "p1",
            "c1",
        )
        assert last.payload["email"] == "p1@x.test"
        assert last.payload["timestamp"] == int(NOW)
    if last.endpoint in ("twilio/status", "twilio/calls"):
        assert dict(urllib.parse.parse_qsl(last.query)) == {"prospect": "p1", "command": "c1"}
    if parts[0].endpoint == "events":
        assert parts[0].payload == answer, "first-party events go as the sender planned them"


def test_an_sms_reply_without_a_known_phone_goes_first_party() -> None:
    reply = _answer("replied", "sms", text="STOP")
    assert [p.endpoint for p in shape("c1", reply, Contact(email="p1@x.test"), NOW)] == ["events"]
    assert [p.endpoint for p in shape("c1", reply, None, NOW)] == ["events"]


def test_provider_ids_derive_from_the_command_only() -> None:
    def ids(command: str) -> list[Any]:
        out = []
        for answer in (_answer("opened"), _answer("delivered", "sms")):
            (part,) = shape(command, answer, None, NOW)
            out.append(part.payload.get("sg_event_id") or part.payload["MessageSid"])
        return out

    assert ids("c1") == ids("c1"), "an answer given twice carries the same provider ids"
    assert set(ids("c1")).isdisjoint(ids("c2"))
    (sid,) = shape("c1", _answer("delivered", "sms"), None, NOW)
    assert sid.payload["MessageSid"].startswith("SM")
    assert len(sid.payload["MessageSid"]) == 34


def test_consecutive_batched_answers_share_a_request_and_twilio_goes_alone() -> None:
    parts = [
        (0, Part("events", {"n": 0})),
        (0, Part("sendgrid", {"n": 1})),
        (1, Part("sendgrid", {"n": 2})),
        (2, Part("twilio/status", {"n": 3}, "prospect=p")),
        (3, Part("twilio/status", {"n": 4}, "prospect=q")),
        (4, Part("sendgrid", {"n": 5})),
    ]
    grouped = [(r.endpoint, [p["n"] for p in r.payloads], r.first) for r in runs(parts)]
    assert grouped == [
        ("events", [0], 0),
        ("sendgrid", [1, 2], 0),
        ("twilio/status", [3], 2),
        ("twilio/status", [4], 3),
        ("sendgrid", [5], 4),
    ]


def test_signatures_verify_with_the_providers_own_helpers() -> None:
    base = "http://127.0.0.1:8800"
    contact = Contact(phone=PHONE)
    for answer in (_answer("opened"), _answer("delivered", "sms"), _answer("touch_sent", "chat")):
        run = runs([(0, p) for p in shape("c1", answer, contact, NOW)])[-1]
        signed = sign(run, SECRETS, base, NOW)
        if signed.provider == "sendgrid":
            stamp = signed.headers["X-Twilio-Email-Event-Webhook-Timestamp"]
            signature = signed.headers["X-Twilio-Email-Event-Webhook-Signature"]
            webhook = EventWebhook(SECRETS.sendgrid_public_key())
            assert webhook.verify_signature(signed.body.decode(), signature, stamp)
            assert not webhook.verify_signature(signed.body.decode() + " ", signature, stamp)
        elif signed.provider == "twilio":
            params = dict(urllib.parse.parse_qsl(signed.body.decode()))
            validator = RequestValidator(SECRETS.twilio_auth_token)
            assert validator.validate(
                base + signed.path, params, signed.headers["X-Twilio-Signature"]
            )
            assert "?prospect=p1&command=c1" in signed.path
        else:
            assert signed.headers["Authorization"] == f"Bearer {SECRETS.token}"
            assert orjson.loads(signed.body) == [answer]


def test_secrets_go_through_the_environment_and_never_show() -> None:
    again = CallbackSecrets.from_env(SECRETS.sender_env())
    assert again.sendgrid_public_key() == SECRETS.sendgrid_public_key()
    assert SECRETS.gateway_env()["TOUCHFLOW_SENDGRID_PUBLIC_KEY"] == SECRETS.sendgrid_public_key()
    for value in (*SECRETS.gateway_env().values(), *SECRETS.sender_env().values()):
        assert value not in repr(SECRETS)
    with pytest.raises(ValueError, match=SENDGRID_PRIVATE_ENV):
        CallbackSecrets.from_env({k: v for k, v in SECRETS.sender_env().items() if "KEY" not in k})
    bad = SECRETS.sender_env() | {SENDGRID_PRIVATE_ENV: base64.b64encode(b"nope").decode()}
    with pytest.raises(ValueError, match="not a base64 DER EC private key"):
        CallbackSecrets.from_env(bad)


def test_contacts_merge_each_prospects_profiles() -> None:
    lines = [
        b'{"id":"1","type":"profile","prospect":"a","ts":"2026-01-01T00:00:00Z","email":"a@x"}',
        b'{"id":"2","type":"page_view","prospect":"a","ts":"2026-01-01T00:00:00Z","url":"/"}',
        b"not json",
        b'{"id":"3","type":"profile","prospect":"a","ts":"2026-01-01T00:00:01Z","phone":"+1555"}',
        b'{"id":"4","type":"profile","prospect":"b","ts":"2026-01-01T00:00:01Z","phone":"+1666"}',
    ]
    assert contacts_from_lines(lines) == {
        "a": Contact(email="a@x", phone="+1555"),
        "b": Contact(phone="+1666"),
    }


# -- through a real gateway --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    process = Gateway(_with_db(redis_url, TEST_DB), tmp, secrets=SECRETS.gateway_env())
    process.config = tmp / "gateway.toml"
    process.config.write_text(CONFIG)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _command(cid: str, channel: str, prospect: str) -> dict[str, Any]:
    return {"id": cid, "prospect": prospect, "channel": channel, "topic": "launch"}


def _publish_commands(r: redis.Redis) -> dict[str, str]:
    """One command per channel with a provider or none; their ids by channel."""
    ids = {}
    for channel in ("email", "sms", "phone", "chat"):
        cmd = _command(f"cmd-{channel}", channel, f"p-{channel}")
        r.xadd(KEYS.commands(channel), {"command": orjson.dumps(cmd)})
        ids[channel] = cmd["id"]
    r.sadd(identity_key(KEYS, "phone", PHONE), "p-sms")  # the live flow keeps this index
    return ids


def _streams(r: redis.Redis) -> list[dict[str, Any]]:
    events = []
    for shard in range(KEYS.shards):
        for _, fields in r.xrange(KEYS.events(shard)):  # type: ignore[union-attr]
            event = orjson.loads(fields[b"event"])
            assert shard_of(event["prospect"], KEYS.shards) == shard
            events.append(event)
    return events


def _metrics(gateway: Gateway) -> GatewayCounts:
    return gateway_counts(httpx.get(f"{gateway.base}/metrics", timeout=10).text)


def _pending(r: redis.Redis, channel: str) -> int:
    info: Any = r.xpending(KEYS.commands(channel), group_name(KEYS, channel))
    return int(info["pending"])


def _wire(gateway: Gateway, secrets: CallbackSecrets = SECRETS) -> GatewayWire:
    contacts = {"p-sms": Contact(phone=PHONE), "p-email": Contact(email="e@x.test")}
    return GatewayWire(gateway.base, secrets, contacts=contacts)


@pytest.mark.redis
def test_answers_reach_the_streams_through_the_gateway_under_provider_ids(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    before = _metrics(gateway)
    ids = _publish_commands(redis_client)
    sender = Sender(redis_client, KEYS, seed=4, behaviour=EVERYTHING, wire=_wire(gateway))
    carried = sender.step()
    sender.close()
    assert carried > 0
    assert sender.scheduled == 0
    assert all(_pending(redis_client, ch) == 0 for ch in ids), "every command acknowledged"
    events = _streams(redis_client)
    got = {(e["prospect"], e["type"], e.get("channel")): e for e in events}
    assert len(got) == len(events), "each answer once"

    # touch_sent: the sender's own confirmation, first-party, naming its command.
    for channel, cid in ids.items():
        sent = got[f"p-{channel}", "touch_sent", channel]
        assert (sent["id"], sent["command"]) == (f"{cid}:touch_sent", cid)
    # Email: SendGrid events, ids the gateway derived from sg_event_id, the command attached.
    for kind in ("delivered", "opened", "clicked"):
        event = got["p-email", kind, "email"]
        assert event["id"].startswith("sendgrid:")
        assert event["id"].endswith(f":{kind}")
        assert event["command"] == ids["email"]
    assert got["p-email", "opt_out", "email"]["id"].startswith("sendgrid:")
    # Sms: Twilio status for delivery; the STOP as an inbound message found by its From number.
    delivered = got["p-sms", "delivered", "sms"]
    assert delivered["id"].startswith("twilio:SM")
    assert delivered["command"] == ids["sms"]
    assert got["p-sms", "replied", "sms"]["id"].startswith("twilio:SM")
    assert got["p-sms", "opt_out", "sms"]["id"].startswith("twilio:SM")
    # Calls: Twilio call status.
    call = got["p-phone", "call_outcome", None]
    assert call["id"].startswith("twilio:CA")
    assert call["command"] == ids["phone"]
    # Chat has no provider: first-party events, under the sender's ids.
    assert got["p-chat", "replied", "chat"]["id"] == f"{ids['chat']}:replied"

    after = _metrics(gateway)
    for provider in ("sendgrid", "twilio", "events"):
        assert after.requests[provider, "200"] > before.requests[provider, "200"], provider
    assert {status for _, status in after.requests} == {"200"}
    assert after.refused == before.refused
    assert after.appended.total() - before.appended.total() == len(events)
    assert after.ignored["processed"] > before.ignored["processed"], "SendGrid's own send report"
    assert after.ignored["message_sent"] > before.ignored["message_sent"]
    counts = sender.stats.snapshot()
    assert counts.answers.total() == carried
    assert counts.requests["sendgrid", "200"] >= 1
    assert counts.retried == 0


@pytest.mark.redis
def test_a_command_answered_twice_lands_once(gateway: Gateway, redis_client: redis.Redis) -> None:
    _publish_commands(redis_client)
    crashed = Sender(redis_client, KEYS, seed=4, behaviour=EVERYTHING, wire=_wire(gateway))
    second = Sender(redis_client, KEYS, seed=4, behaviour=EVERYTHING, wire=_wire(gateway))
    try:
        assert crashed.poll() == 4  # read, never answered, never acknowledged
        assert second.poll() == 4, "its own pending entries first"
        second.flush()
        landed = _streams(redis_client)
        assert crashed.flush() == second.stats.snapshot().answers.total(), "the gateway took them"
    finally:
        crashed.close()
        second.close()
    assert _streams(redis_client) == landed, "same provider ids: the gateway appended none again"


@pytest.mark.redis
def test_answers_the_gateway_did_not_take_are_retried_in_order(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    down = Gateway(redis_test_url, tmp_path, secrets=SECRETS.gateway_env(), config=CONFIG)
    now = [time.time()]  # SendGrid signs the time: the gateway checks it against its clock
    ids = _publish_commands(redis_client)
    sender = Sender(
        redis_client, KEYS, seed=4, behaviour=EVERYTHING, wire=_wire(down), clock=lambda: now[0]
    )
    try:
        assert sender.step() == 0, "nobody listens yet"
        counts = sender.stats.snapshot()
        assert counts.requests == Counter({("events", "error"): 1}), "the round stops at once"
        assert counts.retried == sender.scheduled > 0
        assert all(_pending(redis_client, ch) == 1 for ch in ids), "nothing acknowledged"
        assert sender.flush() == 0, "not due again before the backoff"
        down.start()
        now[0] += 1.0
        assert sender.flush() == counts.retried
    finally:
        sender.close()
        down.stop()
    assert all(_pending(redis_client, ch) == 0 for ch in ids)
    email = [e["type"] for e in _streams(redis_client) if e["prospect"] == "p-email"]
    assert email == ["touch_sent", "delivered", "opened", "clicked", "opt_out"], "in plan order"


@pytest.mark.redis
def test_a_wrong_secret_is_refused_counted_and_not_retried(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    before = _metrics(gateway)
    ids = _publish_commands(redis_client)
    wrong = _wire(gateway, CallbackSecrets.generate())
    sender = Sender(redis_client, KEYS, seed=4, behaviour=EVERYTHING, wire=wrong)
    sender.step()
    sender.close()
    counts = sender.stats.snapshot()
    assert {status for _, status in counts.requests} == {"401"}
    assert (sender.scheduled, counts.retried) == (0, 0), "a provider does not retry a 401"
    assert all(_pending(redis_client, ch) == 0 for ch in ids), "the sends happened all the same"
    assert _streams(redis_client) == []
    after = _metrics(gateway)
    assert after.refused - before.refused == counts.requests.total()
