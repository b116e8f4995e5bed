"""The metrics port: one small ASGI app (Starlette on uvicorn, the gateway's stack).

    GET /metrics          Prometheus text (or OpenMetrics when asked), this process's registry
    GET /healthz          200 `ok`, or 503 `unhealthy: <reason>` while `problem()` gives one
    GET /scorecard        the scorecard page (HTML + JS + a chart library shipped in the package)
    GET /scorecard.json   the scorecard the page draws: the contract's `report --json` object
                          plus `as_of` and `daily` (CONTRACT.md section 8)

Any other path is 404 `not found`, with no redirect for a trailing slash; a query string is
ignored (only the page reads `token` and, in the browser, `refresh`).

Why the pieces are as they are:

1. It runs in the worker process, on a daemon thread with its own event loop, since the flow
   owns the main thread. The socket is bound before the thread starts, so a port in use fails
   `serve` at once, as the `http.server` handler this replaces did.
2. Every endpoint that may wait (`problem()` pings Redis, the scorecard is read from Redis) is a
   plain `def`, which Starlette runs on its thread pool: a slow read never holds `/healthz`.
   For that reason `/metrics` is not prometheus-client's `make_asgi_app`, which collects on the
   event loop itself (and would filter by `name[]`); it does what that app does, with the same
   `choose_encoder` on the same registry, and gzip comes from Starlette's middleware.
3. The bearer token (`TOUCHFLOW_METRICS_TOKEN`) guards the scorecard, which names campaigns and
   shows business numbers. A browser cannot send a header when it opens a link, so the page
   accepts the token once as `?token=`, sets an HttpOnly, SameSite=Strict cookie (an HMAC of the
   token, not the token) and redirects to the page without it, out of the address bar and the
   history; the page's own fetches then carry the cookie. Scripts send `Authorization: Bearer`.
   `/metrics` and `/healthz` stay open: probes and Prometheus scrapers are configured per
   target and rarely carry a token, neither endpoint holds a prospect id or a campaign name,
   and the default bind is 127.0.0.1. No access log is written, so no URL with a token is.
"""

import hashlib
import hmac
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

import orjson
import uvicorn
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.metrics import Metrics
from connectors.redis_client import redacted
from connectors.scorecard_metrics import Latest, ScorecardCollector, ScorecardProvider

log = logging.getLogger("touchflow")

TOKEN_ENV: Final = "TOUCHFLOW_METRICS_TOKEN"
COOKIE: Final = "touchflow_scorecard"
DEFAULT_HOST: Final = "127.0.0.1"
NO_SCORECARD: Final = (
    "no scorecard here: this process keeps none (a deployment serves it on the metrics port "
    "of process 0, with the live scorecard switched on)"
)
NOT_YET: Final = "no scorecard yet: the flow has not checkpointed one; try again shortly"
UNAUTHORIZED: Final = (
    "unauthorized: send Authorization: Bearer <token>, or open /scorecard?token=<token> once"
)
# Only the page's own files: no path from a request reaches the file system.
ASSETS: Final = {
    "scorecard.js": "text/javascript; charset=utf-8",
    "scorecard.css": "text/css; charset=utf-8",
    "chart.umd.min.js": "text/javascript; charset=utf-8",
}
_VENDOR: Final = frozenset({"chart.umd.min.js"})
# The page loads nothing from elsewhere and runs no inline script: a CDN reference or an
# injected script would be refused by the browser (and show as a console error in the tests).
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_NO_STORE: Final = {"Cache-Control": "no-store"}
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="touchflow"', **_NO_STORE}


def metrics_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """The scorecard's bearer token from the environment; unset or empty means no token."""
    return environ.get(TOKEN_ENV) or None


def page_file(name: str) -> bytes:
    """One of the page's files, from the installed package (package data, not the checkout)."""
    folder = resources.files("connectors") / "page"
    path = folder / "vendor" / name if name in _VENDOR else folder / name
    return path.read_bytes()


class _Guard:
    """Who may read the scorecard: anyone without a token; else a bearer header or the cookie."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.cookie = (
            hmac.new(token.encode(), b"touchflow scorecard cookie", hashlib.sha256).hexdigest()
            if token
            else None
        )

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allows(self, request: Request) -> bool:
        if self.token is None or self.cookie is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.cookie.encode())


def build_app(
    metrics: Metrics,
    problem: Callable[[], str | None],
    *,
    scorecard: ScorecardProvider | None = None,
    token: str | None = None,
) -> Starlette:
    """The app. `scorecard` None: this process keeps no scorecard (404); a provider returning
    None: none checkpointed yet (503). With a provider, its counts are also `/metrics` series."""
    metrics.watch_health(problem)
    provider = Latest(scorecard) if scorecard is not None else None
    if provider is not None:
        metrics.registry.register(ScorecardCollector(provider))
    guard = _Guard(token)
    html = page_file("scorecard.html")
    assets = {name: page_file(name) for name in ASSETS}
    failures = _EveryMinute()

    def metrics_page(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(metrics.registry), media_type=content_type)

    def healthz(request: Request) -> Response:
        why = problem()
        if why is None:
            return PlainTextResponse("ok\n")
        return PlainTextResponse(f"unhealthy: {why}\n", 503)

    async def page(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None and guard.token is not None:
            if not guard.token_matches(given):
                return PlainTextResponse(UNAUTHORIZED + "\n", 401, headers=_CHALLENGE)
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            query = urllib.parse.urlencode(kept)
            answer = RedirectResponse("scorecard" + (f"?{query}" if query else ""), 303)
            answer.set_cookie(
                COOKIE,
                guard.cookie or "",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return answer
        if not guard.allows(request):
            return PlainTextResponse(UNAUTHORIZED + "\n", 401, headers=_CHALLENGE)
        headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"}
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return _not_found(request)
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(assets[name], media_type=ASSETS[name], headers=headers)

    def scorecard_json(request: Request) -> Response:
        if not guard.allows(request):
            return _json({"error": UNAUTHORIZED}, 401, _CHALLENGE)
        if provider is None:
            return _json({"error": NO_SCORECARD}, 404)
        try:
            card = provider()
        except Exception as exc:  # Redis away, say: the page shows why and tries again
            reason = redacted(str(exc)) or type(exc).__name__
            if failures.due():
                log.warning("scorecard unavailable: %s", reason)
            return _json({"error": f"scorecard unavailable: {reason}"}, 503, {"Retry-After": "10"})
        if card is None:
            return _json({"error": NOT_YET}, 503, {"Retry-After": "10"})
        return _json(card, 200)

    routes = [
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/scorecard", page, methods=["GET"]),
        Route("/scorecard.json", scorecard_json, methods=["GET"]),
        Route("/scorecard/assets/{name}", asset, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
        exception_handlers={404: _not_found_handler},
    )
    app.router.redirect_slashes = False  # `/metrics/` is 404, as before, not a redirect
    return app


def _json(body: Any, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        media_type="application/json",
        headers={**_NO_STORE, **(headers or {})},
    )


def _not_found(_request: Request) -> Response:
    return PlainTextResponse("not found\n", 404)


async def _not_found_handler(request: Request, _exc: Exception) -> Response:
    return _not_found(request)


class _EveryMinute:
    """True at most once a minute: a failing read repeats at every refresh; its log does not."""

    def __init__(self) -> None:
        self._last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < 60.0:
            return False
        self._last = now
        return True


class WebServer:
    """The app on uvicorn, on a daemon thread; `stop()` ends it (requests in flight get 2 s)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self._socket = _bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            lifespan="off",
            log_config=None,  # leave the process's logging as `touchflow run` set it
            log_level="warning",
            access_log=False,  # a URL may carry the token
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="metrics"
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Return once requests are answered (or raise): the flow starts only after this."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                msg = f"the metrics server on {self.url} did not start"
                raise RuntimeError(msg)
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket for `host` (a name, an IPv4 or an IPv6 address); OSError if taken."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    metrics: Metrics,
    port: int,
    problem: Callable[[], str | None],
    *,
    host: str = DEFAULT_HOST,
    scorecard: ScorecardProvider | None = None,
    token: str | None = None,
) -> WebServer:
    """Start the metrics port's app on a daemon thread and return once it answers."""
    server = WebServer(build_app(metrics, problem, scorecard=scorecard, token=token), host, port)
    server.start()
    log.info(
        "metrics on %s (/metrics, /healthz%s)%s",
        server.url,
        ", /scorecard" if scorecard is not None else "",
        ", scorecard token required" if token else "",
    )
    return server
