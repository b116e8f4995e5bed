"""Redis connections for live mode: one place for URLs, retries and secret-free error messages.

A retry with backoff on dropped connections and timeouts is what we want for a running flow: a
restarting or stalled Redis is waited for, not fatal. (The timeouts are redis-py's own
TimeoutError, not Python's builtin one: the builtin never reaches us.) At start, though, a wrong
URL, password or missing TLS must fail fast with one line, so `connect` pings once with retries
off.

A Redis URL may carry secrets in two places, the userinfo (`redis://user:pw@host`) and the query
(`?password=pw`, which redis-py reads as well); every URL and every error text that goes to a log,
a message or a metric passes through `redacted`, which replaces both with `***`.
"""

import re
import urllib.parse
from typing import Final

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
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
# redis-py maps some codes to classes and strips the code from the text: put it back. Most
# specific first (MasterDownError is a ClusterDownError).
_CODE_OF: Final = (
    (OutOfMemoryError, "OOM"),
    (ReadOnlyError, "READONLY"),
    (BusyLoadingError, "LOADING"),
    (TryAgainError, "TRYAGAIN"),
    (MasterDownError, "MASTERDOWN"),
    (ClusterDownError, "CLUSTERDOWN"),
)
# Where the code sits in a reply's text: at its start ("MISCONF ..."), after the `-` of an error
# raised inside a script (Redis 6: "Error running script (...): @user_script:1: -OOM ..."), or
# after the colon of an aborted transaction ("Transaction discarded because of: OOM ..."). The
# lookahead keeps BUSYGROUP (a group that exists) from reading as BUSY.
_CODE_IN_TEXT: Final = re.compile(r"(?:^|: -?)(" + "|".join(REFUSALS) + r")(?= |$)")
# A pipeline's error is prefixed with its command and arguments (data, and long): dropped.
_PIPELINE_PREFIX: Final = "of pipeline caused error: "


def refusal(exc: BaseException) -> str | None:
    """The refusal in `exc` as Redis words it ("OOM command not allowed ..."), or None if `exc`
    is no refusal: an error reply that means "not now" rather than "never" (see `REFUSALS`).

    Found in the reply's text too, since a refusal met inside a Lua script (the sink's writes)
    or a MULTI arrives wrapped in a plain ResponseError or ExecAbortError.
    """
    if not isinstance(exc, RedisError):
        return None
    text = str(exc).rpartition(_PIPELINE_PREFIX)[2].strip()
    for cls, code in _CODE_OF:
        if isinstance(exc, cls):
            return text if text.startswith(code) else f"{code} {text}"
    if not isinstance(exc, ResponseError):
        return None
    found = _CODE_IN_TEXT.search(text)
    return text[found.start(1) :] if found is not None else None


def is_refusal(exc: BaseException) -> bool:
    """True for an error reply that means "not now" rather than "never" (see `REFUSALS`)."""
    return refusal(exc) is not None


# A reply slower than this means a stalled server or a dead peer that never closed the socket
# (TCP alone would wait many minutes): the command is retried like one on a dropped connection.
# No command touchflow sends blocks in Redis; a URL's `?socket_timeout=` overrides this.
READ_TIMEOUT_S: Final = 10.0

# Query parameters that may hold a secret, by name: redis-py reads `?password=` and `?username=`
# as connection arguments, and a proxy may take a token or key the same way.
_SECRET_NAME: Final = re.compile(r"pass|pwd|secret|token|key|auth|cred|user", re.IGNORECASE)
# A URL anywhere in a text, up to the next whitespace (its userinfo is found in `_userinfo`).
_URL: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S*")
_PARAM: Final = re.compile(r"(?P<sep>[?&;])(?P<name>[^=\s&;#?]+)=(?P<value>[^\s&;#]*)")


class RedisUnavailableError(TouchflowError):
    """Redis cannot be reached or refuses us at start; the message never contains a secret."""


def redacted(text: str) -> str:
    """A URL, or any text holding URLs, with passwords and secret query values replaced by `***`.

    The user name of the userinfo stays (it says which account); everything after its colon goes.
    Works on text rather than a parsed URL so that a malformed URL, or one inside an error
    message, is covered as well.
    """
    text = _URL.sub(_hide_userinfo, text)
    return _PARAM.sub(_hide_param, text)


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """(`scheme://user`, password, `@host...`) of a URL with a password in its userinfo.

    The userinfo ends at the last `@` before the query, or, if there is none there, at the last
    `@` of all: passwords are often pasted unescaped, and one with a `/`, `?` or `#` in it must
    still be found whole (an `@` in a query value costs, at worst, the host in a log line).
    """
    scheme, sep, rest = url.partition("://")
    head = rest.partition("?")[0]
    at = head.rfind("@") if "@" in head else rest.rfind("@")
    if not sep or at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    return (f"{scheme}://{user}", password, rest[at:]) if colon else None


def _hide_userinfo(m: re.Match[str]) -> str:
    parts = _userinfo(m[0])
    return m[0] if parts is None else f"{parts[0]}:***{parts[2]}"


def _hide_param(m: re.Match[str]) -> str:
    if _SECRET_NAME.search(urllib.parse.unquote(m["name"])) is None:
        return m[0]
    return f"{m['sep']}{m['name']}=***"


def has_secret(url: str) -> bool:
    """True if `url` holds a password or a secret-looking query value (see `redacted`)."""
    return redacted(url) != url


def _scrubbed(text: str, url: str) -> str:
    """`text` (an error message about `url`) with no secret of `url` in it, however quoted.

    A malformed URL can put a piece of its password where a message quotes it (a password with
    an unescaped `/` ends the host early, and what precedes it is reported as a bad port), so
    every secret of `url`, and every piece of it between URL delimiters, is also replaced
    wherever it appears, raw or unquoted.
    """
    secrets: set[str] = set()
    parts = _userinfo(url)
    if parts is not None:
        secrets.add(parts[1])
    for m in _PARAM.finditer(url):
        if _SECRET_NAME.search(urllib.parse.unquote(m["name"])) is not None:
            secrets.add(m["value"])
    forms = set()
    for secret in secrets:
        for form in (secret, urllib.parse.unquote(secret)):
            forms.add(form)
            forms.update(piece for piece in re.split(r"[/?#@:;&=]", form) if len(piece) > 1)
    text = redacted(text.replace(url, redacted(url)))
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, "***")
    return text


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
        msg = f"invalid Redis URL {safe}: {_scrubbed(str(exc), url)}"
        raise RedisUnavailableError(msg) from None
    try:
        probe.ping()
    except AuthenticationError:
        if not has_secret(url):
            msg = f"Redis at {safe} needs a password (none in the URL)"
        else:
            msg = f"Redis at {safe} refused the credentials (wrong user or password)"
        raise RedisUnavailableError(msg) from None
    except ResponseError as exc:
        text = _scrubbed(str(exc), url)
        hint = "it needs a password" if "NOAUTH" in text or "auth" in text.lower() else text
        msg = f"Redis at {safe} refused us: {hint}"
        raise RedisUnavailableError(msg) from None
    except ConnectionError as exc:
        text = _scrubbed(str(exc), url)
        tls = " (does it need TLS? use rediss://)" if "closed by server" in text.lower() else ""
        msg = f"cannot reach Redis at {safe}: {text}{tls}"
        raise RedisUnavailableError(msg) from None
    except RedisError as exc:
        msg = f"Redis at {safe} failed: {type(exc).__name__}"
        raise RedisUnavailableError(msg) from None
    finally:
        probe.close()
    return client(url)
