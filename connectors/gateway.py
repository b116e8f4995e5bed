"""The gateway's HTTP endpoints (CONTRACT.md section 7): read, authenticate, map, store, answer.

Answers in the contract's order: 404 when the endpoint's secret is not set; 413 for a body over
`max_body_bytes` (by its Content-Length, and by the bytes actually read, so a chunked body cannot
slip past); 401 for a missing, bad or stale signature (nothing written); 400 for a body that is
not the provider's format at all (its raw bytes dead-lettered); else 200 with `{"appended",
"ignored", "dead"}` once the request's entries are durable (`connectors/gateway_store.py`), or
503 when they cannot be made so. Twilio endpoints answer an empty TwiML document; they take a
signature made with the Auth Token, or, where a Twilio Webhook Rule signs with a SharedKey, with
one of `TOUCHFLOW_TWILIO_SHARED_KEYS` (`gateway_auth.twilio`): either secret turns them on.

No secret reaches a log line, an error or a metric: checks report only `missing`, `bad` or
`stale`, and refusals are logged at most once a minute per provider, without request data.
"""

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Final, NamedTuple

import orjson
from msgspec import Struct
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from connectors import gateway_auth as auth
from connectors.gateway_http import Answer, Handler, Incoming, read_body
from connectors.gateway_metrics import GatewayMetrics
from connectors.gateway_store import Batch, Dead, Pending, Ready, Store
from connectors.spool import SpoolError
from operators.events import event_type
from operators.intake import EventReader
from operators.providers import calendly, intercom, mailgun, postmark, segment, sendgrid, twilio
from operators.providers.common import Mapped, NotProviderFormatError, arrival, event_json
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
    twilio_shared_keys: str | None = None  # SharedKey secrets, space-separated (a rotation)
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
    "twilio_shared_keys": "TOUCHFLOW_TWILIO_SHARED_KEYS",
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


# An endpoint's own part: authenticate (raise Refused) and map (raise NotProviderFormatError).
Prepare = Callable[[Incoming, bytes, str, float], Mapped | Batch]


class Endpoint(NamedTuple):
    provider: str
    secret: str | None  # None or empty: the endpoint answers 404
    prepare: Prepare
    twiml: bool = False


class Gateway:
    """The endpoints' shared machinery: `handlers()` for the front (`connectors/gateway_http.py`),
    `routes()` for the Starlette app behind it (`/healthz`, `/metrics`)."""

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
        self._public_base = (config.public_url or "").rstrip("/")
        self._sendgrid = (
            auth.SendGridVerifier(secrets.sendgrid_public_key)
            if secrets.sendgrid_public_key
            else None
        )
        self._twilio_keys = auth.TwilioKeys.of(
            secrets.twilio_auth_token, secrets.twilio_shared_keys
        )
        self._refusals_logged: dict[str, float] = {}
        # each (provider, status)'s counter and provider's histogram, looked up once
        self._counted: dict[tuple[str, int], Callable[[], None]] = {}
        self._timed: dict[str, Callable[[float], None]] = {}

    def endpoints(self) -> dict[str, Endpoint]:
        s = self._secrets
        twilio_secret = s.twilio_auth_token or s.twilio_shared_keys  # either one: not a 404
        return {
            "/v1/events": Endpoint("events", s.token, self._first_party),
            "/v1/hooks/sendgrid": Endpoint("sendgrid", s.sendgrid_public_key, self._sendgrid_hook),
            "/v1/hooks/twilio/messages": Endpoint(
                "twilio", twilio_secret, self._twilio_inbound, twiml=True
            ),
            "/v1/hooks/twilio/status": Endpoint(
                "twilio", twilio_secret, self._twilio_status, twiml=True
            ),
            "/v1/hooks/twilio/calls": Endpoint(
                "twilio", twilio_secret, self._twilio_calls, twiml=True
            ),
            "/v1/hooks/mailgun": Endpoint("mailgun", s.mailgun_signing_key, self._mailgun),
            "/v1/hooks/postmark": Endpoint("postmark", s.postmark_credentials, self._postmark),
            "/v1/hooks/segment": Endpoint("segment", s.segment_secret, self._segment),
            "/v1/hooks/calendly": Endpoint("calendly", s.calendly_signing_key, self._calendly),
            "/v1/hooks/intercom": Endpoint("intercom", s.intercom_client_secret, self._intercom),
        }

    def handlers(self) -> dict[str, Handler]:
        """Each endpoint path's handler: `_handle` with its endpoint bound (a partial adds no
        coroutine frame of its own to every request)."""
        return {path: partial(self._handle, e) for path, e in self.endpoints().items()}

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics", self._metrics_page, methods=["GET"]),
        ]

    async def _handle(self, endpoint: Endpoint, incoming: Incoming, receive: Receive) -> Answer:
        started = time.perf_counter()
        answer = await self._answer(endpoint, incoming, receive)
        provider = endpoint.provider
        count = self._counted.get((provider, answer.status))
        if count is None:
            count = self._metrics.requests.labels(provider, str(answer.status)).inc
            self._counted[(provider, answer.status)] = count
        count()
        observe = self._timed.get(provider)
        if observe is None:
            observe = self._timed[provider] = self._metrics.latency.labels(provider).observe
        observe(time.perf_counter() - started)
        return answer

    async def _answer(self, endpoint: Endpoint, incoming: Incoming, receive: Receive) -> Answer:
        provider, secret = endpoint.provider, endpoint.secret
        if not secret:
            return _text(404, "not found: this endpoint's secret is not set")
        body = await read_body(incoming.headers, receive, self._config.max_body_bytes)
        if body is None:
            return _text(413, f"body over {self._config.max_body_bytes} bytes")
        now = self._clock()
        not_format: Answer | None = None  # a 400 once its raw bytes are dead-lettered
        try:
            prepared = endpoint.prepare(incoming, body, secret, now)
        except Refused as refused:
            self._metrics.signature_failures.labels(provider, refused.check).inc()
            self._log_refusal(provider, refused.check)
            return _text(401, f"unauthorized: {refused.check} signature or credentials")
        except NotProviderFormatError as exc:
            prepared = Batch(provider, dead=[Dead(body, str(exc))])
            not_format = _text(400, str(exc))
        skipped: list[str] = []
        if isinstance(prepared, Mapped):
            skipped = prepared.skipped
            prepared = batch_of(provider, prepared)
        for kind in skipped:
            self._metrics.ignored.labels(provider, kind).inc()
        try:  # the one place a request's entries are stored, for every answer that needs them
            outcome = await self._store.commit(prepared)
        except SpoolError:
            return _text(503, "cannot store the request now; retry")
        if outcome.spooled:
            self._metrics.spooled.inc()
        if not_format is not None:
            return not_format
        if endpoint.twiml:
            return _TWIML_ANSWER
        counts: dict[str, object] = {
            "appended": outcome.appended,
            "ignored": len(skipped),
            "dead": outcome.dead,
        }
        if outcome.spooled:
            counts["spooled"] = True
        return Answer(200, orjson.dumps(counts), "application/json")

    def _log_refusal(self, provider: str, check: str) -> None:
        self._log_limited(
            provider, f"gateway: refused a {provider} request: {check} signature (401)"
        )

    def _log_limited(self, topic: str, message: str) -> None:
        """Log `message` at most once a minute per `topic` (a flood of bad requests must not
        flood the log)."""
        now = time.monotonic()
        if now - self._refusals_logged.get(topic, -_REFUSAL_LOG_EVERY_S) >= _REFUSAL_LOG_EVERY_S:
            self._refusals_logged[topic] = now
            log.warning("%s", message)

    # -- endpoints ---------------------------------------------------------------------------

    def _first_party(self, request: Incoming, body: bytes, token: str, now: float) -> Batch:
        _authentic(auth.bearer(request.headers, token))
        batch = Batch("events")
        for raw in split_events(body):
            event = self._reader.read(raw)
            if isinstance(event, str):
                batch.dead.append(Dead(raw, event))
            else:
                batch.ready.append(Ready(event.prospect, event_type(event), raw))
        return batch

    def _sendgrid_hook(self, request: Incoming, body: bytes, key: str, now: float) -> Mapped:
        assert self._sendgrid is not None  # built whenever the key is set
        _authentic(self._sendgrid.check(request.headers, body, now, self._max_age))
        return sendgrid.map_body(body, arrival(now))

    def _twilio(self, request: Incoming, body: bytes, token: str) -> dict[str, str]:
        pairs = twilio.parse_form_pairs(body)
        params = twilio.first_values(pairs)
        url = self._public(request)
        check = auth.twilio(request.headers, url, pairs, self._twilio_keys, params)
        if check != "ok" and auth.twilio_shared_key_unset(request.headers, self._twilio_keys):
            self._log_limited(
                "twilio-shared-key",
                "gateway: a Twilio request signed with a SharedKey "
                "(X-Twilio-Webhooks-Signature-Settings) while TOUCHFLOW_TWILIO_SHARED_KEYS is "
                "not set: refused (401); set it to the SharedKey's secret",
            )
        _authentic(check)
        return params

    def _twilio_inbound(self, request: Incoming, body: bytes, token: str, now: float) -> Mapped:
        return twilio.map_inbound(self._twilio(request, body, token), arrival(now))

    def _twilio_status(self, request: Incoming, body: bytes, token: str, now: float) -> Mapped:
        params = self._twilio(request, body, token)
        return twilio.map_message_status(params, _query(request), arrival(now))

    def _twilio_calls(self, request: Incoming, body: bytes, token: str, now: float) -> Mapped:
        params = self._twilio(request, body, token)
        return twilio.map_call_status(params, _query(request), arrival(now))

    def _mailgun(self, request: Incoming, body: bytes, key: str, now: float) -> Mapped:
        try:  # no JSON means no signature: the 401 comes before the 400
            payload, signature = mailgun.signature_of(body)
        except NotProviderFormatError:
            payload, signature = None, None
        _authentic("missing" if signature is None else "ok")
        assert signature is not None
        ts, token, sig = signature
        _authentic(auth.mailgun(ts, token, sig, key, now, self._max_age))
        return mailgun.map_payload(payload, arrival(now))

    def _postmark(self, request: Incoming, body: bytes, credentials: str, now: float) -> Mapped:
        _authentic(auth.basic(request.headers, credentials))
        return postmark.map_body(body, arrival(now))

    def _segment(self, request: Incoming, body: bytes, secret: str, now: float) -> Mapped:
        _authentic(auth.segment(request.headers, body, secret))
        return segment.map_body(body, arrival(now), self._track)

    def _calendly(self, request: Incoming, body: bytes, key: str, now: float) -> Mapped:
        _authentic(auth.calendly(request.headers, body, key, now, self._max_age))
        return calendly.map_body(body, arrival(now))

    def _intercom(self, request: Incoming, body: bytes, secret: str, now: float) -> Mapped:
        _authentic(auth.intercom(request.headers, body, secret))
        return intercom.map_body(body, arrival(now))

    def _public(self, request: Incoming) -> str:
        """The URL the provider called: `public_url` (a proxy's outside) + path + query."""
        if not self._public_base:
            return request.url()
        # Decoded as Starlette decodes it for `url()` (UTF-8): Twilio signs the text of the URL.
        query = request.scope.get("query_string", b"").decode("utf-8", "replace")
        return self._public_base + request.path + (f"?{query}" if query else "")

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
        # the event's `id` for the store, unless a field of the same name overrides it
        known = "" if "id" in draft.fields else draft.id
        if draft.prospect is not None:
            event = event_json(draft, draft.prospect)
            batch.ready.append(Ready(draft.prospect, draft.type, event, known))
        elif draft.address is not None:
            event = event_json(draft, "")
            address = draft.address
            batch.pending.append(
                Pending(address.kind, address.value, draft.type, event, draft.raw, known)
            )
    if mapped.unreadable:
        batch.dead.extend(Dead(bad.raw, bad.reason) for bad in mapped.unreadable)
    return batch


def _authentic(check: auth.Check) -> None:
    if check != "ok":
        raise Refused(check)


_TWIML_ANSWER: Final = Answer(200, TWIML, "text/xml")


def _text(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), "text/plain; charset=utf-8")


def _query(request: Incoming) -> dict[str, str]:
    """The query parameters, the last value of a repeated name (as Starlette's `QueryParams`)."""
    return dict(twilio.parse_pairs(request.query))
