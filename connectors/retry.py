"""Waiting out Redis: a lost connection, a timeout or a refusal is an outage, not a crash.

Every write of the live flow (and the state loads) runs under `retrying`: it retries with
backoff, reports the process unhealthy with the reason meanwhile (`/healthz`), and raises at once
only what retrying cannot fix (a bug, a wrong type).
"""

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import ConnectionError, RedisError, TimeoutError

from connectors.health import HEALTH, Health
from connectors.redis_client import redacted, refusal

log = logging.getLogger(__name__)

_MAX_BACKOFF_S: Final = 2.0
# While a call keeps failing, one warning at the first failure, then one this often.
_LOG_EVERY_S: Final = 30.0


def retrying(
    what: str,
    action: Callable[[], Any],
    stopping: Callable[[], bool],
    *,
    refused: str = "writes",
    health: Health = HEALTH,
) -> Any:
    """Run a Redis call until it succeeds: a sink may wait for Redis, never drop data.

    Waited out, with backoff: a lost connection, a timeout, and a refusal (Redis out of memory
    under `noeviction`, a read-only replica, a failed save, loading: see `refusal`). Until the
    call succeeds the process reports itself unhealthy with the reason (`/healthz`), since the
    flow is held. Any other error (a bug, a wrong type) is raised at once. `refused` names what
    a refusal refuses in that reason ("writes", or "reads" for the state loads).
    """
    backoff = 0.05
    token = object()  # this call's entry in `health`
    first_failure: float | None = None
    logged_at = 0.0
    try:
        while True:
            try:
                result = action()
            except (RedisError, OSError) as exc:
                why = refusal(exc)
                if why is None and not isinstance(exc, ConnectionError | TimeoutError | OSError):
                    raise
                now = time.monotonic()
                if why is not None:
                    reason = f"Redis refuses {refused} ({what}): {why}"
                else:
                    reason = f"Redis unavailable ({what}): {redacted(str(exc))}"
                health.report(token, reason, refusal=why is not None)
                if first_failure is None or now - logged_at >= _LOG_EVERY_S:
                    waited = f" for {now - first_failure:.0f}s" if first_failure is not None else ""
                    stop = "; stopping once written" if stopping() else ""
                    log.warning("%s (retrying%s%s)", reason, waited, stop)
                    logged_at = now
                if first_failure is None:
                    first_failure = now
                time.sleep(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)
            else:
                if first_failure is not None:
                    waited_s = time.monotonic() - first_failure
                    log.info("%s: Redis answers again, after %.1fs of retries", what, waited_s)
                return result
    finally:
        health.clear(token)
