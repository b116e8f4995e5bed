"""The HTTP front (`connectors/gateway_http.py`): the endpoints answered without Starlette's
routing, everything else still by Starlette, the same answers either way."""

import httpx
import redis
from starlette.requests import Request

from connectors.gateway_http import Incoming
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway


def test_other_methods_and_paths(gateway: Gateway, redis_client: redis.Redis) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = httpx.request(method, f"{gateway.base}/v1/hooks/twilio/status", timeout=10)
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "POST"
    assert httpx.post(f"{gateway.base}/v1/hooks/nobody", content=b"{}").status_code == 404
    assert httpx.get(f"{gateway.base}/healthz").text == "ok"
    assert "touchflow_gateway_requests" in httpx.get(f"{gateway.base}/metrics").text
    assert not h.stream_events(redis_client)


def test_an_answer_on_the_wire(gateway: Gateway, redis_client: redis.Redis) -> None:
    """Status, type and length as a client sees them, for a TwiML and a JSON answer."""
    params = samples.twilio_status("delivered")
    path, body, headers = h.twilio_request(
        gateway, "/v1/hooks/twilio/status", params, {"prospect": "p-front"}
    )
    answer = gateway.post(path, body, headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/xml"
    assert answer.content.endswith(b"<Response/>")
    assert int(answer.headers["content-length"]) == len(answer.content)
    event = b'{"id":"f-1","type":"chat_started","prospect":"p-front","ts":"2024-05-01T10:00:00Z"}'
    answer = gateway.post("/v1/events", event, h.bearer())
    assert answer.json() == {"appended": 1, "ignored": 0, "dead": 0}
    assert answer.headers["content-type"] == "application/json"
    assert sorted(e["prospect"] for e in h.stream_events(redis_client)) == ["p-front"] * 2


def test_a_repeated_header_counts_once(gateway: Gateway, redis_client: redis.Redis) -> None:
    """Of a repeated header the first is read (as Starlette's `Headers.get`): a forged second
    signature after a good one changes nothing, a forged first one is refused."""
    event = b'{"id":"f-2","type":"chat_started","prospect":"p-front","ts":"2024-05-01T10:00:00Z"}'
    good = h.bearer()["Authorization"]
    url = f"{gateway.base}/v1/events"
    both = [("Authorization", good), ("Authorization", "Bearer forged")]
    assert httpx.post(url, content=event, headers=both).status_code == 200
    assert httpx.post(url, content=event, headers=both[::-1]).status_code == 401


def test_the_url_without_a_public_url() -> None:
    """With no `public_url`, Twilio's signature is checked over the URL as this server saw it:
    the Host header, the path and the raw query, as Starlette's `Request.url` gives it."""
    scope = {
        "type": "http",
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/v1/hooks/twilio/status",
        "query_string": b"prospect=p%C3%A9&command=c",
        "server": ("10.0.0.5", 8800),
        "headers": [(b"host", b"hooks.example.com:8800")],
    }
    incoming = Incoming(scope, {}, scope["path"], "prospect=p%C3%A9&command=c")
    assert incoming.url() == str(Request(scope).url)
    assert incoming.url() == (
        "http://hooks.example.com:8800/v1/hooks/twilio/status?prospect=p%C3%A9&command=c"
    )
