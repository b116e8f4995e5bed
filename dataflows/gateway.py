"""`touchflow gateway`: the ingestion gateway (CONTRACT.md section 7) as an ASGI app on uvicorn.

Wiring only: settings (config, environment, command line) → the Redis client, the spool, the
store and the endpoints (`connectors/gateway*.py`), and a lifespan that recovers the spool and
starts its drain before the first request. `touchflow gateway` and `python -m dataflows.gateway`
(what the tests start) run it, with the arguments of `dataflows.gateway_cli`.
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec
import redis
import uvicorn
from msgspec import Struct
from starlette.applications import Starlette

from connectors.gateway import SECRET_ENV, Gateway, Secrets
from connectors.gateway_http import Front
from connectors.gateway_metrics import GatewayMetrics
from connectors.gateway_store import Batch, Store, Written, async_client
from connectors.keys import Keys
from connectors.redis_client import RedisUnavailableError, redacted, refusal
from connectors.shard_count import claim_shards
from connectors.spool import Spool
from dataflows import gateway_cli
from operators.errors import ConfigError, TouchflowError
from operators.intake import EventReader
from operators.policy import Limits, load_policy
from operators.providers.config import GatewayConfig

log = logging.getLogger("touchflow.gateway")

DEFAULT_REDIS: Final = "redis://127.0.0.1:6379/0"


class GatewaySettings(Struct, frozen=True, kw_only=True):
    """Everything the gateway process needs. `gateway` holds public_url, max_body_bytes, the
    spool directory and the rest of the `[gateway]` section; `secrets` come from the environment
    (`secrets_from_env`), never from the command line."""

    redis_url: str
    keys: Keys = Keys()
    host: str = "127.0.0.1"
    port: int = 8800
    gateway: GatewayConfig = GatewayConfig()
    limits: Limits = Limits()
    secrets: Secrets = Secrets()


def secrets_from_env(
    environ: Mapping[str, str] = os.environ, config: GatewayConfig | None = None
) -> Secrets:
    """Each endpoint's secret: its environment variable, else the config's `[gateway.secrets]`
    entry of the same name; empty counts as unset (the endpoint answers 404)."""
    table = config.secrets if config is not None else {}
    unknown = sorted(set(table) - set(SECRET_ENV.values()))
    if unknown:
        msg = f"unknown secret names in [gateway.secrets]: {', '.join(unknown)}"
        raise ConfigError(msg)
    values = {
        field: (environ.get(env) or table.get(env) or None) for field, env in SECRET_ENV.items()
    }
    return Secrets(**values)


def build_app(settings: GatewaySettings) -> Front:
    """The ASGI app: the endpoints on the front (`connectors/gateway_http.py`), `/healthz` and
    `/metrics` on the Starlette app behind it (`front.fallback`), whose lifespan recovers the
    spool and starts its drain before any request is served, and closes the client at
    shutdown."""
    config = settings.gateway
    metrics = GatewayMetrics()
    client = async_client(settings.redis_url)
    spool = Spool(Path(config.spool_dir))

    appended: dict[str, Callable[[float], None]] = {}  # each type's counter, looked up once

    def on_written(batch: Batch, written: Written) -> None:
        for kind, count in written.appended.items():
            inc = appended.get(kind)
            if inc is None:
                inc = appended[kind] = metrics.appended.labels(kind).inc
            inc(count)
        if written.unknown:
            metrics.unknown.labels(batch.provider).inc(written.unknown)
        if written.unknown + written.dead:
            metrics.dead.labels(batch.provider).inc(written.unknown + written.dead)

    store = Store(
        client,
        settings.keys,
        spool,
        dedupe_s=config.dedupe_hours * 3600,
        parked_s=config.parked_days * 86400,
        on_written=on_written,
    )
    gateway = Gateway(config, settings.secrets, EventReader(settings.limits), store, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        spool.open()
        if spool.pending():
            log.info("gateway: draining the spool left by the last run into Redis first")
        drain = asyncio.create_task(store.drain_forever(), name="spool-drain")
        # What start made (modules, the app, the clients: ~50,000 objects) lives as long as
        # the process: out of the collector's scans. Without this, the full collection that
        # requests' survivors set off every few seconds at load walked them all, ~20-30 ms
        # during which no request was answered (the p99 of bench_gateway's paced run).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # (a process that serves more than one app, as tests do, collects again)
            store.stop()
            await drain
            await client.aclose()
            spool.close()

    return Front(gateway.handlers(), Starlette(routes=gateway.routes(), lifespan=lifespan))


def check_redis(settings: GatewaySettings) -> None:
    """At start: a wrong URL or password fails at once, with one line; a Redis that is down or
    refusing is only a warning, since the spool takes requests until it is back. The shard count
    is checked against the one the streams were written with (`claim_shards`)."""
    try:
        probe = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    except ValueError:
        msg = f"invalid Redis URL {redacted(settings.redis_url)}"
        raise ConfigError(msg) from None
    try:
        probe.ping()
        claim_shards(probe, settings.keys)
    except (redis.ConnectionError, redis.TimeoutError, OSError, RedisUnavailableError) as exc:
        if isinstance(exc, redis.AuthenticationError):
            msg = f"Redis at {redacted(settings.redis_url)} refused the credentials"
            raise ConfigError(msg) from None
        log.warning("gateway: Redis unavailable at start (%s); spooling", redacted(str(exc)))
    except redis.RedisError as exc:
        if refusal(exc) is None:
            msg = f"Redis at {redacted(settings.redis_url)} refused us: {redacted(str(exc))}"
            raise ConfigError(msg) from None
        log.warning("gateway: Redis refuses writes at start (%s); spooling", refusal(exc))
    finally:
        probe.close()


def serve(settings: GatewaySettings, *, log_level: str = "info") -> None:
    """Run the gateway until SIGINT/SIGTERM (uvicorn finishes requests in flight first)."""
    check_redis(settings)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,  # callback URLs carry prospect ids in their query
        server_header=False,
        lifespan="on",
    )
    enabled = ", ".join(name for name in SECRET_ENV if getattr(settings.secrets, name))
    log.info(
        "gateway on http://%s:%d, Redis at %s, spool %s, endpoints with a secret: %s",
        settings.host,
        settings.port,
        redacted(settings.redis_url),
        settings.gateway.spool_dir,
        enabled or "none",
    )
    uvicorn.Server(config).run()


def load_settings(
    config: Path | None,
    *,
    redis_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8800,
    public_url: str | None = None,
    spool_dir: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> GatewaySettings:
    """Settings from the policy file (its `[streams]`, `[limits]` and `[gateway]`), the command
    line (which wins) and the environment (secrets; REDIS_URL when there is no `--redis`)."""
    policy = load_policy(config)  # its [gateway] section merged over the defaults, checked
    gateway = policy.gateway
    changes: dict[str, object] = {}
    if public_url is not None:
        changes["public_url"] = public_url
    if spool_dir is not None:
        changes["spool_dir"] = spool_dir
    if changes:
        gateway = msgspec.structs.replace(gateway, **changes)
    return GatewaySettings(
        redis_url=redis_url or environ.get("REDIS_URL") or DEFAULT_REDIS,
        keys=Keys(prefix=policy.streams.prefix, shards=policy.streams.shards),
        host=host,
        port=port,
        gateway=gateway,
        limits=policy.limits,
        secrets=secrets_from_env(environ, gateway),
    )


def run(args: argparse.Namespace) -> int:
    """`touchflow gateway` with parsed arguments (`dataflows.gateway_cli`): serve until
    SIGINT/SIGTERM. The gateway's own log lines at `--log-level` too (uvicorn's follow it)."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    log.setLevel(args.log_level.upper())
    settings = load_settings(
        args.config,
        redis_url=args.redis,
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        spool_dir=args.spool_dir,
    )
    serve(settings, log_level=args.log_level)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dataflows.gateway` (what the tests start): `run` here, not through
    `gateway_cli.command`, which would import this module a second time under its own name."""
    parser = argparse.ArgumentParser(
        prog="touchflow gateway", description="Provider webhooks in, contract events out."
    )
    gateway_cli.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TouchflowError as exc:
        print(f"touchflow gateway: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a malformed SendGrid public key, a bad port
        print(f"touchflow gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
