"""With `public_url`, a Twilio signature is checked over the public base + path + the query
decoded as UTF-8, as Starlette decodes it for `request.url` (it was decoded as latin-1: a
callback whose query carried raw UTF-8 bytes, signed over its text, was refused with 401).

Raw non-ASCII bytes never get through uvicorn: both of its HTTP parsers (httptools, h11) answer
400 to a request line holding them, before the app is called (the last test pins that). So the
UTF-8 reading is held here on the gateway's own ASGI app (`build_app`, what the process serves,
its lifespan run, on the session's Redis), given the scope a server that passes such bytes on
would give it; the real process is used for what uvicorn does pass: a percent-encoded query.
"""

import asyncio
import contextlib
import http.client
import socket
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.types import ASGIApp, Message
from twilio.request_validator import RequestValidator

from dataflows.gateway import build_app, load_settings
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis

PUBLIC = "https://hooks.example.com"  # the proxy's outside, which Twilio calls and signs
PATH = "/v1/hooks/twilio/status"
QUERY = "prospect=p-utf8&command=cmd-utf8&ref=caf\u00e9-\u2713"  # é and ✓: 2 and 3 bytes


def _signed(url: str, params: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of a callback Twilio signed over `url` (its text)."""
    token = h.SECRETS["TOUCHFLOW_TWILIO_AUTH_TOKEN"]
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": RequestValidator(token).compute_signature(url, dict(params)),
    }
    return urllib.parse.urlencode(list(params.items())).encode(), headers


@contextlib.asynccontextmanager
async def _serving(app: ASGIApp) -> AsyncIterator[None]:
    """The app's lifespan, as a server runs it: startup before the requests, shutdown after."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(run())
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


async def _post(app: ASGIApp, raw_query: bytes, body: bytes, headers: dict[str, str]) -> int:
    """One POST to `PATH` with `raw_query` as the scope's query string; the answer's status."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": raw_query,
        "root_path": "",
        "server": ("127.0.0.1", 8800),
        "client": ("127.0.0.1", 40000),
        "headers": [(b"host", b"127.0.0.1:8800")]
        + [(k.encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", b"%d" % len(body))],
    }
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status


def test_a_query_of_raw_utf8_bytes_is_checked_as_the_utf8_text_twilio_signed(
    redis_client: redis.Redis, redis_test_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        None,
        redis_url=redis_test_url,
        public_url=PUBLIC,
        spool_dir=str(tmp_path / "spool"),
        environ=h.SECRETS,
    )
    app = build_app(settings)
    params = samples.twilio_status("delivered")
    raw_query = QUERY.encode()
    assert not raw_query.isascii()  # the query really carries raw non-ASCII bytes
    body, headers = _signed(f"{PUBLIC}{PATH}?{QUERY}", params)
    # signed over the query's latin-1 reading (another text): still refused
    _body, misread = _signed(f"{PUBLIC}{PATH}?{raw_query.decode('latin-1')}", params)

    async def scenario() -> tuple[int, int]:
        async with _serving(app):
            return (
                await _post(app, raw_query, body, misread),
                await _post(app, raw_query, body, headers),
            )

    assert asyncio.run(scenario()) == (401, 200)
    events = h.stream_events(redis_client, settings.keys)
    assert [(e["type"], e["prospect"], e.get("command")) for e in events] == [
        ("delivered", "p-utf8", "cmd-utf8")
    ]


def _post_raw(gateway: Gateway, target: bytes, body: bytes, headers: dict[str, str]) -> int:
    """POST `target` to the gateway process exactly as given (httpx would percent-encode it)."""
    head = [b"POST " + target + b" HTTP/1.1", b"host: 127.0.0.1:%d" % gateway.port]
    head += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    head += [b"content-length: %d" % len(body), b"connection: close"]
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer = http.client.HTTPResponse(sock)
        try:
            answer.begin()
            answer.read()
        finally:
            answer.close()
    return answer.status


def test_over_http_the_query_arrives_percent_encoded(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    """Through the real process: a percent-encoded UTF-8 query, signed over the URL as sent, is
    accepted; the same query as raw bytes is refused by uvicorn's parser (400) and the gateway
    never sees it, so nothing is written for it."""
    params = samples.twilio_status("delivered")
    target = f"{PATH}?{urllib.parse.quote(QUERY, safe='=&')}"
    assert target.isascii()
    body, headers = _signed(gateway.base + target, params)
    assert _post_raw(gateway, target.encode(), body, headers) == 200
    body, headers = _signed(f"{gateway.base}{PATH}?{QUERY}", params)
    assert _post_raw(gateway, f"{PATH}?{QUERY}".encode(), body, headers) == 400
    events = h.stream_events(redis_client)
    assert [(e["type"], e["prospect"], e.get("command")) for e in events] == [
        ("delivered", "p-utf8", "cmd-utf8")
    ]
