"""The gateway end to end: a real process, a real Redis, real HTTP, signed as providers sign.

One request per provider lands the contract events the mapping table says, for the right
prospect (attached ids, else the identity index); every signature scheme refuses a bad, missing
or stale signature with 401 and writes nothing; answers come in the contract's order."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import redis

from connectors.identity import index_profiles
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis

PROFILES = [
    ("p-mail", "Example@Test.com", None),
    ("p-sms", None, "+14155550111"),
    ("p-pm", "john@example.com", None),
    ("p-mg", "alice@example.com", None),
    ("p-cal", "test@example.com", None),
]


def by_prospect(client: redis.Redis) -> dict[str, list[tuple[str, ...]]]:
    found: dict[str, list[tuple[str, ...]]] = {}
    for event in h.stream_events(client):
        shape = (event["type"], *(f"{k}={event[k]}" for k in ("channel", "command") if k in event))
        found.setdefault(event["prospect"], []).append(shape)
    return found


def test_one_request_per_provider(gateway: Gateway, redis_client: redis.Redis) -> None:
    index_profiles(redis_client, h.KEYS, PROFILES)
    lines = b"\n".join(
        [
            b'{"id":"fp-1","type":"page_view","prospect":"p-web","ts":"2024-05-01T10:00:00Z","url":"https://x.test/pricing"}',
            b'{"id":"fp-2","type":"form_submit","prospect":"p-web","ts":"2024-05-01T10:01:00Z"}',
            b'{"id":"fp-3","type":"no_such_type","prospect":"p-web","ts":"2024-05-01T10:01:00Z"}',
        ]
    )
    answer = gateway.post("/v1/events", lines, h.bearer())
    assert (answer.status_code, answer.json()) == (200, {"appended": 2, "ignored": 0, "dead": 1})

    batch = orjson.dumps(samples.SENDGRID_BATCH)
    answer = gateway.post("/v1/hooks/sendgrid", batch, h.sendgrid_headers(batch))
    # example@test.com is p-mail; other@ and third@ are nobody's yet; deferred has no meaning
    assert answer.json() == {"appended": 6, "ignored": 1, "dead": 2}

    path, body, headers = h.twilio_request(
        gateway, "/v1/hooks/twilio/messages", samples.twilio_inbound(Body="stop", OptOutType="STOP")
    )
    answer = gateway.post(path, body, headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.content.endswith(b"<Response/>")
    status = samples.twilio_status("delivered")
    path, body, headers = h.twilio_request(
        gateway, "/v1/hooks/twilio/status", status, {"prospect": "p-cmd", "command": "cmd-9"}
    )
    assert gateway.post(path, body, headers).status_code == 200
    call = samples.twilio_call("completed", AnsweredBy="machine_end_beep")
    path, body, headers = h.twilio_request(gateway, "/v1/hooks/twilio/calls", call)
    assert gateway.post(path, body, headers).status_code == 200

    mailgun = h.mailgun_body(samples.mailgun("delivered"))
    assert gateway.post("/v1/hooks/mailgun", mailgun).json()["appended"] == 1
    postmark = orjson.dumps(samples.postmark("Delivery"))
    assert gateway.post("/v1/hooks/postmark", postmark, h.postmark_headers()).json() == {
        "appended": 2,
        "ignored": 0,
        "dead": 0,
    }
    identify = orjson.dumps(samples.segment("identify"))
    assert (
        gateway.post("/v1/hooks/segment", identify, h.segment_headers(identify)).status_code == 200
    )
    booked = orjson.dumps(samples.calendly())
    assert gateway.post("/v1/hooks/calendly", booked, h.calendly_headers(booked)).status_code == 200
    reply = orjson.dumps(samples.intercom("conversation.user.replied"))
    assert gateway.post("/v1/hooks/intercom", reply, h.intercom_headers(reply)).status_code == 200

    found = by_prospect(redis_client)
    assert found["p-web"] == [("page_view",), ("form_submit",)]
    assert sorted(found["p-mail"]) == sorted(
        [
            ("touch_sent", "channel=email"),
            ("delivered", "channel=email"),
            ("opened", "channel=email"),
            ("clicked", "channel=email"),
            ("opt_out", "channel=email"),
            ("opt_out", "channel=email"),
        ]
    )
    assert found["p-sms"] == [
        ("replied", "channel=sms"),
        ("opt_out", "channel=sms"),
        ("call_outcome",),
        ("touch_sent", "channel=phone"),
    ]
    assert found["p-cmd"] == [("delivered", "channel=sms", "command=cmd-9")]
    assert found["p-mg"] == [("delivered", "channel=email")]
    assert found["p-pm"] == [("delivered", "channel=email"), ("touch_sent", "channel=email")]
    assert found["97980cfea0067"] == [("profile",)]
    assert found["p-cal"] == [("meeting_booked",)]
    assert found["prospect-7"] == [("replied", "channel=chat")]
    reasons = [d["reason"] for d in h.dead_letters(redis_client)]
    assert reasons.count(b"unknown prospect") == 2
    assert sum(r.startswith(b"Invalid value 'no_such_type'") for r in reasons) == 1

    metrics = httpx.get(f"{gateway.base}/metrics").text
    assert 'touchflow_gateway_events_appended_total{type="opt_out"}' in metrics
    assert (
        'touchflow_gateway_provider_events_ignored_total{kind="deferred",provider="sendgrid"}'
        in metrics
    )
    assert 'touchflow_gateway_unknown_prospects_total{provider="sendgrid"} 2.0' in metrics
    for private in ("p-mail", "example@test.com", "+14155550111"):
        assert private not in metrics


Request = tuple[str, bytes, dict[str, str]]


def _requests(gateway: Gateway) -> dict[str, Callable[[str], Request]]:
    """Per provider: a request whose signature is `good`, `bad`, `missing` or `stale`."""
    old = int(time.time()) - 600

    def sendgrid(kind: str) -> Request:
        body = orjson.dumps([samples.sendgrid("delivered", touchflow_prospect="p-sig")])
        headers = h.sendgrid_headers(body, timestamp=old if kind == "stale" else None)
        if kind == "bad":
            headers = h.sendgrid_headers(body.replace(b"p-sig", b"p-sih"))
        if kind == "missing":
            headers = {}
        return "/v1/hooks/sendgrid", body, headers

    def twilio(kind: str) -> Request:
        params = samples.twilio_status("delivered")
        path, body, headers = h.twilio_request(
            gateway, "/v1/hooks/twilio/status", params, {"prospect": "p-sig"}
        )
        if kind == "bad":
            body = body.replace(b"delivered", b"delivereX")
        if kind in ("missing", "stale"):
            headers.pop("X-Twilio-Signature")
        return path, body, headers

    def mailgun(kind: str) -> Request:
        payload = samples.mailgun(
            "delivered", **{"user-variables": {"touchflow_prospect": "p-sig"}}
        )
        key = "wrong-key" if kind == "bad" else None
        body = h.mailgun_body(payload, timestamp=old if kind == "stale" else None, key=key)
        if kind == "missing":
            body = orjson.dumps(payload)
        return "/v1/hooks/mailgun", body, {}

    def postmark(kind: str) -> Request:
        body = orjson.dumps(samples.postmark("Open", Metadata={"touchflow_prospect": "p-sig"}))
        headers = h.postmark_headers("hookuser:wrong" if kind == "bad" else None)
        return "/v1/hooks/postmark", body, {} if kind in ("missing", "stale") else headers

    def hmac_hook(
        path: str, body: bytes, sign: Callable[..., dict[str, str]]
    ) -> Callable[[str], Request]:
        def make(kind: str) -> Request:
            if kind == "missing":
                return path, body, {}
            if kind == "bad":
                return (
                    path,
                    body,
                    sign(
                        body,
                        **(
                            {"secret": "nope"}
                            if sign is not h.calendly_headers
                            else {"key": "nope"}
                        ),
                    ),
                )
            if kind == "stale" and sign is h.calendly_headers:
                return path, body, sign(body, timestamp=old)
            if kind == "stale":
                return path, body, {}
            return path, body, sign(body)

        return make

    segment_body = orjson.dumps(samples.segment("page", userId="p-sig"))
    calendly_body = orjson.dumps(samples.calendly())
    intercom_body = orjson.dumps(samples.intercom("conversation.user.created", external_id="p-sig"))

    def first_party(kind: str) -> Request:
        body = b'{"id":"s-1","type":"chat_started","prospect":"p-sig","ts":"2024-05-01T10:00:00Z"}'
        headers = {"good": h.bearer(), "bad": {"Authorization": "Bearer nope"}}.get(kind, {})
        return "/v1/events", body, headers

    return {
        "events": first_party,
        "sendgrid": sendgrid,
        "twilio": twilio,
        "mailgun": mailgun,
        "postmark": postmark,
        "segment": hmac_hook("/v1/hooks/segment", segment_body, h.segment_headers),
        "calendly": hmac_hook("/v1/hooks/calendly", calendly_body, h.calendly_headers),
        "intercom": hmac_hook("/v1/hooks/intercom", intercom_body, h.intercom_headers),
    }


@pytest.mark.parametrize(
    "provider",
    ["events", "sendgrid", "twilio", "mailgun", "postmark", "segment", "calendly", "intercom"],
)
def test_signatures_good_bad_missing_stale(
    gateway: Gateway, redis_client: redis.Redis, provider: str
) -> None:
    index_profiles(redis_client, h.KEYS, [("p-sig", "test@example.com", None)])
    make = _requests(gateway)[provider]
    for kind in ("bad", "missing", "stale"):
        path, body, headers = make(kind)
        answer = gateway.post(path, body, headers)
        assert answer.status_code == 401, (kind, answer.text)
        assert not h.stream_events(redis_client)
        assert not h.dead_letters(redis_client)
    path, body, headers = make("good")
    answer = gateway.post(path, body, headers)
    assert answer.status_code == 200, answer.text
    assert {e["prospect"] for e in h.stream_events(redis_client)} == {"p-sig"}


def test_a_retried_request_appends_nothing_twice(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    index_profiles(redis_client, h.KEYS, PROFILES)
    batch = orjson.dumps(samples.SENDGRID_BATCH)
    before = _appended_metric(gateway)
    first = gateway.post("/v1/hooks/sendgrid", batch, h.sendgrid_headers(batch))
    again = gateway.post("/v1/hooks/sendgrid", batch, h.sendgrid_headers(batch))
    # The answer and the metric count what was appended, not what was asked: a retry, nothing.
    assert first.json()["appended"] == 6
    assert again.json() == {**first.json(), "appended": 0}
    assert _appended_metric(gateway) - before == 6
    ids = [e["id"] for e in h.stream_events(redis_client)]
    assert len(ids) == 6
    assert len(set(ids)) == len(ids)
    assert len(h.dead_letters(redis_client)) == 2  # the unknown addresses: parked once each


def test_answers_in_the_contract_order(
    gateway: Gateway, redis_client: redis.Redis, tmp_path: Any
) -> None:
    big = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    # 413 before 401: a huge unsigned body is refused for its size, declared or streamed
    assert gateway.post("/v1/hooks/sendgrid", big).status_code == 413
    chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
    streamed = httpx.post(f"{gateway.base}/v1/hooks/segment", content=chunks, timeout=30)
    assert streamed.status_code == 413
    # 401 before 400: garbage with no signature
    assert gateway.post("/v1/hooks/segment", b"garbage").status_code == 401
    # 400 for a signed body that is not the provider's format; its bytes go dead
    body = b"garbage, but signed"
    answer = gateway.post("/v1/hooks/segment", body, h.segment_headers(body))
    assert answer.status_code == 400
    (dead,) = h.dead_letters(redis_client)
    assert dead["event"] == body
    assert dead["reason"].startswith(b"not JSON")
    assert not h.stream_events(redis_client)
    assert httpx.get(f"{gateway.base}/healthz").text == "ok"


def test_unset_secret_is_404(redis_test_url: str, tmp_path: Any) -> None:
    bare = Gateway(redis_test_url, tmp_path, secrets={}).start()
    try:
        for path in ("/v1/events", "/v1/hooks/sendgrid", "/v1/hooks/twilio/messages",
                     "/v1/hooks/twilio/status", "/v1/hooks/twilio/calls", "/v1/hooks/mailgun",
                     "/v1/hooks/postmark", "/v1/hooks/segment", "/v1/hooks/calendly",
                     "/v1/hooks/intercom"):  # fmt: skip
            big = b"x" * (6 * 1024 * 1024)  # 404 comes before 413
            assert bare.post(path, big).status_code == 404, path
    finally:
        bare.stop()


def test_body_limit_from_config(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Any
) -> None:
    small = Gateway(redis_test_url, tmp_path, config="[gateway]\nmax_body_bytes = 2048\n").start()
    try:
        event = b'{"id":"l-1","type":"chat_started","prospect":"p","ts":"2024-05-01T10:00:00Z"}'
        assert small.post("/v1/events", event, h.bearer()).status_code == 200
        padded = event[:-1] + b',"pad":"' + b"x" * 2048 + b'"}'
        assert small.post("/v1/events", padded, h.bearer()).status_code == 413
    finally:
        small.stop()
    assert [e["id"] for e in h.stream_events(redis_client)] == ["l-1"]


def test_no_secret_in_any_log(gateway: Gateway) -> None:
    """Runs after the module's other tests (pytest keeps file order): every refusal, 400 and
    answer above has been logged by now."""
    text = gateway.log.read_text()
    assert "Uvicorn running" in text
    for name, secret in h.SECRETS.items():
        for piece in {secret, secret.partition(":")[2]} - {""}:
            assert piece[:24] not in text, name


def _appended_metric(gateway: Gateway) -> float:
    """touchflow_gateway_events_appended_total summed over types."""
    text = httpx.get(f"{gateway.base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("touchflow_gateway_events_appended_total{")
    )
