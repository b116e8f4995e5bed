"""The gateway's HTTP front: its POST endpoints straight on ASGI, everything else to Starlette.

Why not Starlette routes for the endpoints: a provider's post is small, and for one Twilio
callback Starlette's layers (its error and exception middleware, a regular expression per route
until one matches, `Request` and `Response` objects) cost about 15 µs of the ~36 µs a no-op
route takes on this 2-core box, as much as signing and mapping the callback. The endpoints use
none of it: fixed paths, POST only, a body read under a limit, an answer of status, type and
bytes. So the front finds the path in a dict, reads the body from `receive` and sends the
answer itself; `/healthz`, `/metrics`, the lifespan and every other path go to the Starlette
app behind it. Exceptions are left to uvicorn, which logs them and answers 500 when nothing was
sent yet (Starlette's error middleware does the same).
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Final, NamedTuple

from msgspec import Struct
from starlette.datastructures import URL
from starlette.types import ASGIApp, Receive, Scope, Send

_METHOD_NOT_ALLOWED: Final = b"method not allowed"


class Answer(NamedTuple):
    status: int
    body: bytes
    media_type: str


class Incoming(Struct, frozen=True):
    """What an endpoint reads of a request besides its body. (A Struct: one is made per
    request, ~0.1 µs, where a NamedTuple's Python-level `__new__` takes ~0.3.)"""

    scope: Scope
    headers: Mapping[str, str]  # names lower-cased; of a repeated header, the first
    path: str
    query: str  # the raw query string, as sent

    def url(self) -> str:
        """The URL as this server saw it (scheme, Host header, path, query): exactly Starlette's
        `str(URL(scope=scope))`, which a Twilio signature is checked against, without building
        a `URL` per request (2.8 µs of a Twilio callback's ~65). Starlette's own code still
        decides the scheme and authority (`_origin`, once per Host header); path and query are
        appended as it appends them."""
        scope = self.scope
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        origin = _origin(scope, host)
        path = scope["path"]
        if origin is None or not path.startswith("/"):  # not from an HTTP server: rare
            return str(URL(scope=scope))
        path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        query = scope.get("query_string", b"").decode()
        return f"{origin}{path}?{query}" if query else origin + path


_ORIGINS: dict[tuple[str, str | None, tuple[str, int] | None], str | None] = {}
_ORIGINS_MAX: Final = 256  # Host headers come from clients: the cache must stay bounded


def _origin(scope: Scope, host: str | None) -> str | None:
    """`scheme://authority` of Starlette's URL for this scope (None when it has no authority),
    computed by Starlette for a path of "/" and kept per (scheme, Host header, server)."""
    server = scope.get("server")
    key = (scope.get("scheme", "http"), host, tuple(server) if server else None)
    if key in _ORIGINS:
        return _ORIGINS[key]
    probe = {"type": "http", "scheme": key[0], "server": server, "path": "/", "headers": []}
    if host is not None:
        probe["headers"] = [(b"host", host.encode("latin-1"))]
    url = str(URL(scope=probe))  # "scheme://authority/", or "/" without an authority
    origin = url[:-1] if "://" in url else None
    if len(_ORIGINS) >= _ORIGINS_MAX:
        _ORIGINS.clear()
    _ORIGINS[key] = origin
    return origin


class ClientGoneError(Exception):
    """The client went away before its body was read: nothing to answer, nothing written."""


Handler = Callable[[Incoming, Receive], Awaitable[Answer]]


class Front:
    """An ASGI app: `handlers[path]` for POSTs to the endpoint paths, `fallback` for the rest."""

    def __init__(self, handlers: Mapping[str, Handler], fallback: ASGIApp) -> None:
        self.handlers = dict(handlers)
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None:
            await self.fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _send(send, Answer(405, _METHOD_NOT_ALLOWED, "text/plain"), allow=True)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in reversed(scope["headers"])
        }
        incoming = Incoming(scope, headers, scope["path"], scope["query_string"].decode("latin-1"))
        try:
            answer = await handler(incoming, receive)
        except ClientGoneError:
            return
        await _send(send, answer)


async def _send(send: Send, answer: Answer, *, allow: bool = False) -> None:
    headers = [
        (b"content-type", answer.media_type.encode("latin-1")),
        (b"content-length", b"%d" % len(answer.body)),
    ]
    if allow:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it is known to pass `limit` (declared or read, so a chunked
    body cannot slip past); ClientGoneError if the client disconnects first."""
    declared = headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            pass
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGoneError
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: the whole body at once
        return body if len(body) <= limit else None
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            return None
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if size <= limit else None
