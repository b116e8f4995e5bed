"""The gateway's HTTP endpoints (CONTRACT.md section 7): read, authenticate, map, store, answer.

Answers in the contract's order: 404 when the endpoint's secret is not set; 413 for a body over
`max_body_bytes` (by its Content-Length, and by the bytes actually read, so a chunked body cannot
slip past); 401 for a missing, bad or stale signature (nothing written); 400 for a body that is
not the provider's format at all (its raw bytes dead-lettered); else 200 with `{"appended",
"ignored", "dead"}` once the request's entries are durable (`connectors/gateway_store.py`), or
503 when they cannot be made so. Twilio endpoints answer an empty TwiML document.

No secret reaches a log line, an error or a metric: checks report only `missing`, `bad` or
`stale`, and refusals are logged at most once a minute per provider, without request data.
"""

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final, NamedTuple

import orjson
from msgspec import Struct
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors import gateway_auth as auth
from connectors.gateway_metrics import GatewayMetrics
from connectors.gateway_store import Batch, Dead, Outcome, Pending, Ready, Store
from connectors.spool import SpoolError
from operators.events import event_type
from operators.intake import EventReader
from operators.providers import calendly, intercom, mailgun, postmark, segment, sendgrid, twilio
from operators.providers.common import Mapped, NotProviderFormatError, event_json
from operators.providers.config import GatewayConfig
from operators.providers.first_party import split_events

log = logging.getLogger(__name__)

TWIML: Final = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
_REFUSAL_LOG_EVERY_S: Final = 60.0


class Secrets(Struct, frozen=True, kw_only=True):
    """Each endpoint's secret (None: the endpoint answers 404). Read from the environment."""

    token: str | None = None
    sendgrid_public_key: str | None = None
    twilio_auth_token: str | None = None
    mailgun_signing_key: str | None = None
    postmark_credentials: str | None = None
    segment_secret: str | None = None
    calendly_signing_key: str | None = None
    intercom_client_secret: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return (
            "Secrets(" + ", ".join(f"{n}={'set' if v else 'unset'}" for n, v in self._set()) + ")"
        )

    def _set(self) -> list[tuple[str, str | None]]:
        return [(name, getattr(self, name)) for name in self.__struct_fields__]


SECRET_ENV: Final[Mapping[str, str]] = {
    "token": "TOUCHFLOW_GATEWAY_TOKEN",
    "sendgrid_public_key": "TOUCHFLOW_SENDGRID_PUBLIC_KEY",
    "twilio_auth_token": "TOUCHFLOW_TWILIO_AUTH_TOKEN",
    "mailgun_signing_key": "TOUCHFLOW_MAILGUN_SIGNING_KEY",
    "postmark_credentials": "TOUCHFLOW_POSTMARK_CREDENTIALS",
    "segment_secret": "TOUCHFLOW_SEGMENT_SECRET",
    "calendly_signing_key": "TOUCHFLOW_CALENDLY_SIGNING_KEY",
    "intercom_client_secret": "TOUCHFLOW_INTERCOM_CLIENT_SECRET",
}


class Refused(Exception):
    """401: the request's signature or credentials are missing, wrong or stale."""

    def __init__(self, check: auth.Check) -> None:
        super().__init__(check)
        self.check = check


class Answer(NamedTuple):
    status: int
    body: bytes
    media_type: str


# An endpoint's own part: authenticate (raise Refused) and map (raise NotProviderFormatError).
Prepare = Callable[[Request, bytes, str, float], Mapped | Batch]


class Gateway:
    """The endpoints' shared machinery; `routes()` gives the Starlette routes."""

    def __init__(
        self,
        config: GatewayConfig,
        secrets: Secrets,
        reader: EventReader,
        store: Store,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._secrets = secrets
        self._reader = reader
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._max_age = float(config.signature_max_age_s)
        self._track = dict(config.segment_track)
        self._sendgrid = (
            auth.SendGridVerifier(secrets.sendgrid_public_key)
            if secrets.sendgrid_public_key
            else None
        )
        self._refusals_logged: dict[str, float] = {}
        # each (provider, status)'s counter and provider's histogram, looked up once
        self._counted: dict[tuple[str, int], Callable[[], None]] = {}
        self._timed: dict[str, Callable[[float], None]] = {}

    def routes(self) -> list[Route]:
        def post(
            path: str, provider: str, secret: str | None, prepare: Prepare, *, twiml: bool = False
        ) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._handle(request, provider, secret, prepare, twiml=twiml)

            return Route(path, endpoint, methods=["POST"])

        s = self._secrets
        return [
            post("/v1/events", "events", s.token, self._first_party),
            post("/v1/hooks/sendgrid", "sendgrid", s.sendgrid_public_key, self._sendgrid_hook),
            post(
                "/v1/hooks/twilio/messages",
                "twilio",
                s.twilio_auth_token,
                self._twilio_inbound,
                twiml=True,
            ),
            post(
                "/v1/hooks/twilio/status",
                "twilio",
                s.twilio_auth_token,
                self._twilio_status,
                twiml=True,
            ),
            post(
                "/v1/hooks/twilio/calls",
                "twilio",
                s.twilio_auth_token,
                self._twilio_calls,
                twiml=True,
            ),
            post("/v1/hooks/mailgun", "mailgun", s.mailgun_signing_key, self._mailgun),
            post("/v1/hooks/postmark", "postmark", s.postmark_credentials, self._postmark),
            post("/v1/hooks/segment", "segment", s.segment_secret, self._segment),
            post("/v1/hooks/calendly", "calendly", s.calendly_signing_key, self._calendly),
            post("/v1/hooks/intercom", "intercom", s.intercom_client_secret, self._intercom),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics", self._metrics_page, methods=["GET"]),
        ]

    async def _handle(
        self, request: Request, provider: str, secret: str | None, prepare: Prepare, *, twiml: bool
    ) -> Response:
        started = time.perf_counter()
        answer = await self._answer(request, provider, secret, prepare, twiml=twiml)
        count = self._counted.get((provider, answer.status))
        if count is None:
            count = self._metrics.requests.labels(provider, str(answer.status)).inc
            self._counted[(provider, answer.status)] = count
        count()
        observe = self._timed.get(provider)
        if observe is None:
            observe = self._timed[provider] = self._metrics.latency.labels(provider).observe
        observe(time.perf_counter() - started)
        return Response(answer.body, answer.status, media_type=answer.media_type)

    async def _answer(
        self, request: Request, provider: str, secret: str | None, prepare: Prepare, *, twiml: bool
    ) -> Answer:
        if not secret:
            return _text(404, "not found: this endpoint's secret is not set")
        body = await _read_body(request, self._config.max_body_bytes)
        if body is None:
            return _text(413, f"body over {self._config.max_body_bytes} bytes")
        now = self._clock()
        try:
            prepared = prepare(request, body, secret, now)
        except Refused as refused:
            self._metrics.signature_failures.labels(provider, refused.check).inc()
            self._log_refusal(provider, refused.check)
            return _text(401, f"unauthorized: {refused.check} signature or credentials")
        except NotProviderFormatError as exc:
            batch = Batch(provider, dead=[Dead(body, str(exc))])
            if not await self._commit(batch):
                return _text(503, "cannot store the request now; retry")
            return _text(400, str(exc))
        skipped: list[str] = []
        if isinstance(prepared, Mapped):
            skipped = prepared.skipped
            prepared = batch_of(provider, prepared)
        for kind in skipped:
            self._metrics.ignored.labels(provider, kind).inc()
        outcome = await self._commit(prepared)
        if outcome is None:
            return _text(503, "cannot store the request now; retry")
        if twiml:
            return Answer(200, TWIML, "text/xml")
        counts: dict[str, object] = {
            "appended": outcome.appended,
            "ignored": len(skipped),
            "dead": outcome.dead,
        }
        if outcome.spooled:
            counts["spooled"] = True
        return Answer(200, orjson.dumps(counts), "application/json")

    async def _commit(self, batch: Batch) -> Outcome | None:
        try:
            outcome = await self._store.commit(batch)
        except SpoolError:
            return None
        if outcome.spooled:
            self._metrics.spooled.inc()
        return outcome

    def _log_refusal(self, provider: str, check: str) -> None:
        now = time.monotonic()
        if now - self._refusals_logged.get(provider, -_REFUSAL_LOG_EVERY_S) >= _REFUSAL_LOG_EVERY_S:
            self._refusals_logged[provider] = now
            log.warning("gateway: refused a %s request: %s signature (401)", provider, check)

    # -- endpoints ---------------------------------------------------------------------------

    def _first_party(self, request: Request, body: bytes, token: str, now: float) -> Batch:
        _authentic(auth.bearer(request.headers, token))
        batch = Batch("events")
        for raw in split_events(body):
            event = self._reader.read(raw)
            if isinstance(event, str):
                batch.dead.append(Dead(raw, event))
            else:
                batch.ready.append(Ready(event.prospect, event_type(event), raw))
        return batch

    def _sendgrid_hook(self, request: Request, body: bytes, key: str, now: float) -> Mapped:
        assert self._sendgrid is not None  # built whenever the key is set
        _authentic(self._sendgrid.check(request.headers, body, now, self._max_age))
        return sendgrid.map_body(body, _moment(now))

    def _twilio(self, request: Request, body: bytes, token: str) -> dict[str, str]:
        pairs = twilio.parse_form_pairs(body)
        url = self._public(request)
        _authentic(auth.twilio(request.headers, url, pairs, token))
        return twilio.first_values(pairs)

    def _twilio_inbound(self, request: Request, body: bytes, token: str, now: float) -> Mapped:
        return twilio.map_inbound(self._twilio(request, body, token), _moment(now))

    def _twilio_status(self, request: Request, body: bytes, token: str, now: float) -> Mapped:
        params = self._twilio(request, body, token)
        return twilio.map_message_status(params, dict(request.query_params), _moment(now))

    def _twilio_calls(self, request: Request, body: bytes, token: str, now: float) -> Mapped:
        params = self._twilio(request, body, token)
        return twilio.map_call_status(params, dict(request.query_params), _moment(now))

    def _mailgun(self, request: Request, body: bytes, key: str, now: float) -> Mapped:
        try:  # no JSON means no signature: the 401 comes before the 400
            payload, signature = mailgun.signature_of(body)
        except NotProviderFormatError:
            payload, signature = None, None
        _authentic("missing" if signature is None else "ok")
        assert signature is not None
        ts, token, sig = signature
        _authentic(auth.mailgun(ts, token, sig, key, now, self._max_age))
        return mailgun.map_payload(payload, _moment(now))

    def _postmark(self, request: Request, body: bytes, credentials: str, now: float) -> Mapped:
        _authentic(auth.basic(request.headers, credentials))
        return postmark.map_body(body, _moment(now))

    def _segment(self, request: Request, body: bytes, secret: str, now: float) -> Mapped:
        _authentic(auth.segment(request.headers, body, secret))
        return segment.map_body(body, _moment(now), self._track)

    def _calendly(self, request: Request, body: bytes, key: str, now: float) -> Mapped:
        _authentic(auth.calendly(request.headers, body, key, now, self._max_age))
        return calendly.map_body(body, _moment(now))

    def _intercom(self, request: Request, body: bytes, secret: str, now: float) -> Mapped:
        _authentic(auth.intercom(request.headers, body, secret))
        return intercom.map_body(body, _moment(now))

    def _public(self, request: Request) -> str:
        """The URL the provider called: `public_url` (a proxy's outside) + path + query."""
        base = self._config.public_url
        if not base:
            return str(request.url)
        query = request.url.query
        return base.rstrip("/") + request.url.path + (f"?{query}" if query else "")

    # -- operations ---------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        if self._store.spool_broken is not None:
            return PlainTextResponse(f"unhealthy: {self._store.spool_broken}", 503)
        if self._store.spooling:
            return PlainTextResponse(f"ok (spooling: {self._store.problem or 'draining'})")
        return PlainTextResponse("ok")

    async def _metrics_page(self, request: Request) -> Response:
        self._metrics.spool_pending.set(1.0 if self._store.spooling else 0.0)
        return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)


def batch_of(provider: str, mapped: Mapped) -> Batch:
    """The entries of a mapped request: events for attached prospects, events to resolve by
    address (prospect left empty), dead letters for provider events that could not be read."""
    batch = Batch(provider)
    for draft in mapped.drafts:
        if draft.prospect is not None:
            event = event_json(draft, draft.prospect)
            batch.ready.append(Ready(draft.prospect, draft.type, event))
        elif draft.address is not None:
            event = event_json(draft, "")
            address = draft.address
            batch.pending.append(Pending(address.kind, address.value, draft.type, event, draft.raw))
    batch.dead.extend(Dead(bad.raw, bad.reason) for bad in mapped.unreadable)
    return batch


def _authentic(check: auth.Check) -> None:
    if check != "ok":
        raise Refused(check)


def _moment(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def _text(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), "text/plain; charset=utf-8")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None once it is known to pass `limit` (declared or read)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                return None
        except ValueError:
            pass
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
