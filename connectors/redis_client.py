"""Redis connections for live mode: one place for URLs, retries and secret-free error messages.

A retry with backoff on dropped connections and timeouts is what we want for a running flow: a
restarting or stalled Redis is waited for, not fatal. (The timeouts are redis-py's own
TimeoutError, not Python's builtin one: the builtin never reaches us.) At start, though, a wrong
URL, password or missing TLS must fail fast with one line, so `connect` pings once with retries
off.
"""

import urllib.parse
from typing import Final

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from operators.errors import TouchflowError

_RETRY_ERRORS: Final = (ConnectionError, TimeoutError, OSError)
# Replies by which Redis refuses to serve for now (out of memory under `noeviction`, a replica
# after failover, a failed RDB save, loading its data, a busy script, a cluster failover): an
# outage to wait out like a dropped connection, never a reason to exit.
REFUSALS: Final = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS",
                   "TRYAGAIN", "CLUSTERDOWN")  # fmt: skip


def is_refusal(exc: BaseException) -> bool:
    """True for an error reply that means "not now" rather than "never" (see `REFUSALS`)."""
    if isinstance(exc, ReadOnlyError | OutOfMemoryError | MasterDownError | TryAgainError):
        return True  # redis-py strips the code from the replies it maps to its own classes
    return isinstance(exc, ResponseError) and str(exc).split(" ", 1)[0] in REFUSALS


# A reply slower than this means a stalled server or a dead peer that never closed the socket
# (TCP alone would wait many minutes): the command is retried like one on a dropped connection.
# No command touchflow sends blocks in Redis; a URL's `?socket_timeout=` overrides this.
READ_TIMEOUT_S: Final = 10.0


class RedisUnavailableError(TouchflowError):
    """Redis cannot be reached or refuses us at start; the message never contains a secret."""


def redacted(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}:***@{host}{port}").geturl()


def client(url: str, *, retries: int = 10) -> redis.Redis:
    """A client that rides out a Redis restart: exponential backoff, capped at 2 s a try.

    Always RESP2, whatever the URL asks: replies our code parses itself (stream reads) have one
    shape. The protocol is set on the pool before the client is made, because redis-py picks its
    reply parsers from the pool's settings when the client is created. The client owns its pool,
    so closing it closes the connections (a client built over a pool does not, by default).
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries, supported_errors=_RETRY_ERRORS)
    pool = redis.ConnectionPool.from_url(
        url,
        retry=retry,
        retry_on_error=[ConnectionError, TimeoutError],
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=READ_TIMEOUT_S,
        socket_keepalive=True,
    )
    pool.connection_kwargs["protocol"] = 2
    return redis.Redis.from_pool(pool)  # owns the pool: close() also closes its sockets


def connect(url: str) -> redis.Redis:
    """A checked client: one PING without retries, so bad settings fail at once, clearly."""
    safe = redacted(url)
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as exc:
        msg = f"invalid Redis URL {safe}: {exc}"
        raise RedisUnavailableError(msg) from None
    try:
        probe.ping()
    except AuthenticationError:
        if urllib.parse.urlsplit(url).password is None:
            msg = f"Redis at {safe} needs a password (none in the URL)"
        else:
            msg = f"Redis at {safe} refused the credentials (wrong user or password)"
        raise RedisUnavailableError(msg) from None
    except ResponseError as exc:
        text = str(exc)
        hint = "it needs a password" if "NOAUTH" in text or "auth" in text.lower() else text
        msg = f"Redis at {safe} refused us: {hint}"
        raise RedisUnavailableError(msg) from None
    except ConnectionError as exc:
        text = str(exc).replace(url, safe)
        tls = " (does it need TLS? use rediss://)" if "closed by server" in text.lower() else ""
        msg = f"cannot reach Redis at {safe}: {text}{tls}"
        raise RedisUnavailableError(msg) from None
    except RedisError as exc:
        msg = f"Redis at {safe} failed: {type(exc).__name__}"
        raise RedisUnavailableError(msg) from None
    finally:
        probe.close()
    return client(url)
