"""The commit sink waits for Redis and never drops what it was given (a real server, restarted)."""

import contextlib
import threading
import time
from collections.abc import Callable

import msgspec
import pytest
import redis

from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_server import EmbeddedRedis
from connectors.redis_sink import CommitSink
from operators.logic import Effects
from operators.records import Command, Context
from operators.state import ProspectState, encode_state

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="sink", shards=1)


def _effects(n: int) -> Effects:
    command = Command(
        id=f"cmd-{n}",
        prospect="p",
        ts="2026-03-02T15:00:00Z",
        channel="email",
        action="send",
        reason="request:c",
        topic=None,
        backup=None,
        context=Context([], [], None),
    )
    state = encode_state(ProspectState(prospect="p", seq=n))
    return Effects([(0, n, command)], state, None, [(0, b"1-%d" % n)], None)


def test_a_write_cut_off_in_flight_is_retried_whole_once_redis_is_back(
    embedded_redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    """Redis dies with a write in flight and stays down past the client's retries: the write and
    the checkpoint land once it is back, nothing lost, nothing twice.

    (The sink rebuilds its pipeline on every try because redis-py can empty a pipeline whose
    execute failed; this test covers the outage, it did not reproduce that emptying.)"""
    server = embedded_redis_factory(appendonly=True, appendfsync="always")
    sink = CommitSink(lambda: client(server.url, retries=1), KEYS, Metrics(), interval_s=0.2)
    part = sink.build("commit", 0, 1)
    try:
        part.write_batch([("p", _effects(1))])
        blocker = redis.Redis.from_url(server.url)
        hold = threading.Thread(target=_debug_sleep, args=(blocker,))
        hold.start()  # the server answers nothing for 3 s
        time.sleep(0.2)
        writer = threading.Thread(target=part.write_batch, args=([("p", _effects(2))],))
        writer.start()  # its pipeline is now in flight, waiting behind the sleep
        time.sleep(0.5)
        server.kill()  # the connection dies with the pipeline in flight
        hold.join()
        blocker.close()
        time.sleep(1.5)  # down longer than the client's own retries: the sink must retry
        server.start()
        writer.join(timeout=60)
        assert not writer.is_alive()
        part.checkpoint()
        check = redis.Redis.from_url(server.url)
        commands = [f[b"command"] for _i, f in check.xrange(KEYS.commands("email"))]
        assert [msgspec.json.decode(c)["id"] for c in commands] == ["cmd-1", "cmd-2"]
        saved = check.get(KEYS.state("p"))
        assert saved is not None
        assert msgspec.msgpack.decode(saved)[2] == 2  # the newest state (seq 2) was checkpointed
        check.close()
    finally:
        part.close()


def _debug_sleep(r: redis.Redis) -> None:
    with contextlib.suppress(redis.RedisError):
        r.execute_command("DEBUG", "SLEEP", "3")
