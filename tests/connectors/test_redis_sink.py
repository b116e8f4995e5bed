"""The commit sink waits for Redis and never drops what it was given (a real server, restarted)."""

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from connectors.effects import Effects
from connectors.keys import Keys, shard_of
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_server import EmbeddedRedis
from connectors.redis_sink import CommitSink
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
        lasted: list[float] = []
        hold = threading.Thread(target=_debug_sleep, args=(blocker, lasted))
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
        assert lasted[0] > 0.5, "the server did not sleep: nothing was in flight"
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


def _debug_sleep(r: redis.Redis, lasted: list[float]) -> None:
    """Make the server answer nothing for 3 s (`lasted` gets how long it really did)."""
    started = time.monotonic()
    with contextlib.suppress(redis.ConnectionError):  # killed by the test while asleep
        r.execute_command("DEBUG", "SLEEP", "3")
    lasted.append(time.monotonic() - started)


def _command(n: int, prospect: str) -> Command:
    return Command(
        id=f"cmd-{n}",
        prospect=prospect,
        ts="2026-03-02T15:00:00Z",
        channel="sms" if n % 2 else "email",
        action="send",
        reason="request:c",
        topic=None,
        backup=None,
        context=Context([], [], None),
    )


def test_batches_write_each_command_once_and_checkpoint_every_state_with_its_acks(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """More prospects than one checkpoint transaction holds; each prospect's inputs arrive in two
    batches (so its acks accumulate); a command id repeated in a batch and across batches."""
    keys = Keys(prefix="bulk", shards=3)
    prospects = [f"p{n}" for n in range(450)]
    entry_ids: dict[str, list[bytes]] = {}
    for p in prospects:  # real pending entries, so the acknowledgements can be counted
        stream = keys.events(shard_of(p, keys.shards))
        entry_ids[p] = [redis_client.xadd(stream, {"event": b"{}"}) for _ in range(2)]
    for shard in range(keys.shards):
        redis_client.xgroup_create(keys.events(shard), keys.group, id="0")
        redis_client.xreadgroup(keys.group, "c", {keys.events(shard): ">"})
    sink = CommitSink(
        lambda: client(redis_test_url), keys, Metrics(), interval_s=3600, state_ttl_s=1000
    )
    part = sink.build("commit", 0, 1)
    try:
        for batch in (0, 1):
            items = []
            for n, p in enumerate(prospects):
                ack = (shard_of(p, keys.shards), entry_ids[p][batch])
                due = 1_800_000_000_000 + n if (n % 3 == 0 and batch == 1) else None
                state = encode_state(ProspectState(prospect=p, seq=10 * n + batch))
                outputs: list[Any] = (
                    [(0, 0, _command(n, p))] * (2 if n == 0 else 1) if n < 50 else []
                )
                items.append((p, Effects(outputs, state, due, [ack], None)))
            part.write_batch(items)
        part.checkpoint()
    finally:
        part.close()
    sent = [
        msgspec.json.decode(f[b"command"])["id"]
        for channel in ("email", "sms")
        for _i, f in redis_client.xrange(keys.commands(channel))
    ]
    assert sorted(sent) == sorted(f"cmd-{n}" for n in range(50))
    for n, p in enumerate(prospects):
        saved = redis_client.get(keys.state(p))
        assert saved is not None
        assert msgspec.msgpack.decode(saved)[2] == 10 * n + 1
        assert 0 < redis_client.ttl(keys.state(p)) <= 1000
        score = redis_client.zscore(keys.timers(shard_of(p, keys.shards)), p)
        assert score == (1_800_000_000_000 + n if n % 3 == 0 else None)
    for shard in range(keys.shards):
        assert redis_client.xpending(keys.events(shard), keys.group)["pending"] == 0


def test_one_state_including_thousands_of_inputs_acks_them_all(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """A backlog replayed onto one prospect: more acks than one command inside the checkpoint
    script may carry (Lua's unpack limit), so they are split, and none is left pending."""
    keys = Keys(prefix="many", shards=1)
    stream = keys.events(0)
    ids = [redis_client.xadd(stream, {"event": b"{}"}) for _ in range(2_500)]
    redis_client.xgroup_create(stream, keys.group, id="0")
    redis_client.xreadgroup(keys.group, "c", {stream: ">"})
    part = CommitSink(lambda: client(redis_test_url), keys, Metrics(), interval_s=3600).build(
        "commit", 0, 1
    )
    try:
        state = encode_state(ProspectState(prospect="p", seq=1))
        part.write_batch([("p", Effects([], state, 5, [(0, i) for i in ids], None))])
        part.checkpoint()
    finally:
        part.close()
    assert redis_client.xpending(stream, keys.group)["pending"] == 0
    assert redis_client.zscore(keys.timers(0), "p") == 5
    assert redis_client.get(keys.state("p")) == state


def test_a_write_redis_refuses_fails_the_batch_and_leaves_nothing_that_drops_its_command(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """An error that retrying cannot fix (here the command stream's key holds a string) fails
    the batch: its state is never checkpointed (its inputs stay pending and come back after a
    restart), and no marker is left behind that would drop the command when they do (Redis does
    not undo a script that fails half-way)."""
    keys = _refusing_email_commands(redis_client, "refused")
    sink = CommitSink(lambda: client(redis_test_url), keys, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        part.write_batch([("p", _effects(1))])
    part.close()
    assert redis_client.get(keys.state("p")) is None
    assert not redis_client.exists(keys.sent_marker("cmd-1"))


def _refusing_email_commands(r: redis.Redis, prefix: str) -> Keys:
    """Keys under `prefix` whose email command stream Redis refuses to XADD to (it is a string)."""
    keys = Keys(prefix=prefix, shards=1)
    r.set(keys.commands("email"), "not a stream")
    return keys


_REFUSED_FLOW = """
import sys
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_sink import CommitSink
from tests.connectors.test_redis_sink import _effects

url, prefix = sys.argv[1], sys.argv[2]
flow = Dataflow("refused")
items = op.input("in", flow, TestingSource([("p", _effects(n)) for n in range(1, 4)], 1))

op.output("out", items, CommitSink(lambda: client(url), Keys(prefix=prefix, shards=1), Metrics()))
try:
    run_main(flow)
except Exception as exc:
    print("raised:", type(exc).__name__, exc)
    sys.exit(3)
"""


def test_a_refused_write_inside_bytewax_fails_the_run_with_an_error_not_an_abort(
    redis_client: redis.Redis, redis_test_url: str, tmp_path: Path
) -> None:
    """Bytewax closes the sink while it unwinds from the sink's error; an error raised again
    there aborts the whole process (a Rust panic in a destructor: no cleanup, an embedded Redis
    left running). A real run, in a child process."""
    prefix = _refusing_email_commands(redis_client, "refused-flow").prefix
    script = tmp_path / "flow.py"
    script.write_text(_REFUSED_FLOW)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(script), redis_test_url, prefix],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "raised:" in done.stdout
