"""Clients from `connectors.redis_client` parse replies the way the code reading them expects."""

import time

import pytest
import redis

from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import READ_TIMEOUT_S, client
from dataflows.live import record_lag
from tests.connectors.stall import stalled

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="cli", shards=2)


@pytest.mark.parametrize("query", ["", "protocol=3"])
def test_replies_have_their_resp2_shapes_whatever_the_url_says(
    redis_client: redis.Redis, redis_test_url: str, query: str
) -> None:
    r = client(_with_query(redis_test_url, query))
    try:
        r.zadd("z", {"p": 1795371977821})
        assert r.zscore("z", "p") == 1795371977821.0
        assert r.zrangebyscore("z", "-inf", "+inf", withscores=True) == [(b"p", 1795371977821.0)]
        r.xgroup_create("s", "g", id="0", mkstream=True)
        r.xadd("s", {"event": b"{}"})
        (group,) = r.xinfo_groups("s")
        assert group["name"] == b"g"
        assert group["pending"] == 0
        assert r.connection_pool.make_connection().protocol == 2
    finally:
        r.close()


def test_consumer_lag_counts_undelivered_and_unacknowledged_entries(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    for shard in range(KEYS.shards):
        redis_client.xgroup_create(KEYS.events(shard), KEYS.group, id="0", mkstream=True)
    for _ in range(3):
        redis_client.xadd(KEYS.events(1), {"event": b"{}"})
    redis_client.xreadgroup(KEYS.group, "c", {KEYS.events(1): ">"}, count=1)  # 1 pending
    metrics = Metrics()
    r = client(redis_test_url)
    try:
        record_lag(r, KEYS, metrics)
    finally:
        r.close()
    lag = {s: metrics.lag.labels(str(s))._value.get() for s in range(KEYS.shards)}
    info = redis_client.info("server")
    undelivered_known = int(info["redis_version"].split(".")[0]) >= 7  # 6.2 has no `lag` field
    assert lag == {0: 0, 1: 3 if undelivered_known else 1}


def test_a_command_that_times_out_is_retried_until_redis_answers(redis_test_url: str) -> None:
    """A Redis that stops answering for a while (a long command, a stalled host) makes commands
    time out with redis-py's own TimeoutError, which is not Python's: the client must retry it
    like a dropped connection, not hand it to the flow as a failure."""
    default = client(redis_test_url)
    assert default.connection_pool.connection_kwargs["socket_timeout"] == READ_TIMEOUT_S
    default.close()
    r = client(_with_query(redis_test_url, "socket_timeout=0.3"))  # the URL's wins over the default
    assert r.ping()  # connected before the stall: the command itself must time out
    sleeper = stalled(redis_test_url, 1.0)
    try:
        started = time.monotonic()
        assert r.set("after-the-stall", b"1")
        assert time.monotonic() - started > 0.5, "the command did not wait out the stall"
    finally:
        sleeper.join()
        r.close()


def test_closing_a_client_closes_its_connections(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Every partition and sink closes its client when it stops; a client that kept its pool's
    sockets open would leave one Redis connection per restart of a partition behind."""
    r = client(redis_test_url)
    own = r.client_id()
    assert own in _client_ids(redis_client)
    r.close()
    deadline = time.monotonic() + 5
    while own in _client_ids(redis_client):
        assert time.monotonic() < deadline, "the closed client's connection is still open"
        time.sleep(0.05)


def _client_ids(r: redis.Redis) -> set[int]:
    return {int(c["id"]) for c in r.client_list()}


def _with_query(url: str, query: str) -> str:
    """`url` with `query` (`name=value`, or nothing) added to whatever query it already has."""
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query
