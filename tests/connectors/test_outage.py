"""A Redis that refuses writes is an outage to wait out, never a crash, never a lost or early ack.

Each test makes a real Redis of its own refuse, the ways production ones do: out of memory under
`noeviction` (`maxmemory 1`), read-only (a replica of a master that is not there), busy with a
long script. The writer must wait, report itself unhealthy with the reason, write nothing and
acknowledge nothing meanwhile, and land its write exactly once when Redis accepts again.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest
import redis
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    ExecAbortError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from connectors.checkpoint import StateStore
from connectors.dead_letters import DeadLetterSink
from connectors.effects import Effects
from connectors.health import HEALTH
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client, is_refusal, refusal
from connectors.redis_server import EmbeddedRedis
from connectors.redis_sink import CommitSink
from connectors.retry import retrying
from operators.records import Command, Context, DeadLetter
from operators.state import ProspectState, encode_state

KEYS = Keys(prefix="out", shards=1)
OOM = "OOM command not allowed when used memory > 'maxmemory'."
RO = "READONLY You can't write against a read only replica."


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), OOM),
        # Redis 6 wraps an error met inside a script; redis-py 8 annotates pipeline errors.
        (
            ResponseError(
                "Error running script (call to f_82cd): @user_script:1: @user_script: 1: "
                "-OOM command not allowed when used memory > 'maxmemory'."
            ),
            OOM,
        ),
        (
            ResponseError(
                "Command # 1 (EVAL local ttl ... 3 out:sent:x OOM) of pipeline caused error: "
                "Error running script (call to f_82cd): @user_script:1: @user_script: 1: "
                "-READONLY You can't write against a read only replica."
            ),
            RO,
        ),
        (
            OutOfMemoryError(  # Redis 7 keeps the code of an error met inside a script
                "command not allowed when used memory > 'maxmemory'. script: 1f0e, on "
                "@user_script:4."
            ),
            "OOM command not allowed when used memory > 'maxmemory'. script: 1f0e, on "
            "@user_script:4.",
        ),
        (
            ExecAbortError(f"Transaction discarded because of: {OOM}"),
            OOM,
        ),
        (
            ReadOnlyError(
                "Command # 1 (XADD out:dead * event {}) of pipeline caused error: "
                "You can't write against a read only replica."
            ),
            RO,
        ),
        (
            ResponseError("MISCONF Redis is configured to save RDB snapshots, but..."),
            "MISCONF Redis is configured to save RDB snapshots, but...",
        ),
        (
            ResponseError("BUSY Redis is busy running a script."),
            "BUSY Redis is busy running a script.",
        ),
        (
            BusyLoadingError("Redis is loading the dataset in memory"),
            "LOADING Redis is loading the dataset in memory",
        ),
        (
            ResponseError("NOREPLICAS Not enough good replicas to write."),
            "NOREPLICAS Not enough good replicas to write.",
        ),
        (MasterDownError("Link with MASTER is down"), "MASTERDOWN Link with MASTER is down"),
        (TryAgainError("Multiple keys request during rehashing"), "TRYAGAIN Multiple keys..."),
    ],
)
def test_refusals_are_recognised_in_every_shape_redis_gives_them(
    exc: Exception, expected: str
) -> None:
    got = refusal(exc)
    assert got is not None
    assert got == expected or (expected.endswith("...") and got.startswith(expected[:-3]))
    assert is_refusal(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("BUSYGROUP Consumer Group name already exists"),
        ResponseError("NOGROUP No such key 'out:events:0' or consumer group"),
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError(  # a refusal's code in the command's own arguments is not a refusal
            "Command # 2 (XADD s * event -OOM READONLY: -OOM x) of pipeline caused error: "
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ),
        ResponseError("ERR Error running script (call to f_1): @user_script:1: bad argument"),
        ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        ValueError("OOM"),
    ],
)
def test_other_errors_are_not_refusals(exc: Exception) -> None:
    assert refusal(exc) is None
    assert not is_refusal(exc)


def test_an_error_that_is_no_outage_is_raised_at_once() -> None:
    """A wrong type or a bug must stop the flow, not be retried for ever."""
    calls = []

    def wrong_type() -> None:
        calls.append(1)
        msg = "WRONGTYPE Operation against a key holding the wrong kind of value"
        raise ResponseError(msg)

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        retrying("commands", wrong_type, lambda: False)
    assert calls == [1]
    assert HEALTH.problem() is None


# -- against a real Redis that refuses -----------------------------------------------------------


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory()


@pytest.fixture
def admin(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(server.url)
    yield r
    r.close()


def _refuse_for_memory(r: redis.Redis) -> None:
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", 1)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_trouble(text: str, thread: threading.Thread) -> str:
    """The health reason once it mentions `text`; fails if the writer ended (or crashed) first."""
    deadline = time.monotonic() + 10
    while True:
        why = HEALTH.problem()
        if why is not None and text in why:
            return why
        assert thread.is_alive(), "the writer ended instead of waiting for Redis"
        assert time.monotonic() < deadline, f"no trouble reported with {text!r}: {why!r}"
        time.sleep(0.02)


class _Run(threading.Thread):
    """A call on a thread of its own, keeping what it raised."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._call = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._call()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=30)
        assert not self.is_alive(), "the writer did not finish once Redis accepted writes"
        assert self.error is None, repr(self.error)


def _command(n: int) -> Command:
    return Command(
        id=f"cmd-{n}",
        prospect=f"p{n}",
        ts="2026-03-02T15:00:00Z",
        channel="email",
        action="send",
        reason="request:c",
        topic=None,
        backup=None,
        context=Context([], [], None),
    )


def _pending(r: redis.Redis) -> int:
    return int(r.xpending(KEYS.events(0), KEYS.group)["pending"])


@pytest.mark.redis
def test_commit_sink_waits_out_an_out_of_memory_redis_writes_once_and_acks_after(
    server: EmbeddedRedis, admin: redis.Redis
) -> None:
    admin.xgroup_create(KEYS.events(0), KEYS.group, id="0", mkstream=True)
    entries = [admin.xadd(KEYS.events(0), {"event": b"{}"}) for _ in range(3)]
    admin.xreadgroup(KEYS.group, "c", {KEYS.events(0): ">"})  # delivered, not acknowledged
    metrics = Metrics()
    sink = CommitSink(lambda: client(server.url), KEYS, metrics, interval_s=3600)
    part = sink.build("commit", 0, 1)
    items = [
        (
            f"p{n}",
            Effects(
                outputs=[(0, n, _command(n))],
                state=encode_state(ProspectState(prospect=f"p{n}", seq=n)),
                next_due=None,
                acks=[(0, entries[n])],
                first_seen_ms=None,
            ),
        )
        for n in range(3)
    ]
    try:
        _refuse_for_memory(admin)
        writer = _Run(lambda: part.write_batch(items))
        writer.start()
        why = _wait_for_trouble("OOM", writer)
        assert why.startswith("Redis refuses writes (commands): OOM command not allowed")
        assert b"touchflow_redis_refusing 1.0" in _exposition(metrics)
        time.sleep(0.5)  # a few retries
        assert admin.xlen(KEYS.commands("email")) == 0
        admin.config_set("maxmemory", 0)
        writer.finish()
        assert HEALTH.problem() is None
        assert b"touchflow_redis_refusing 0.0" in _exposition(metrics)

        _refuse_for_memory(admin)
        checkpoint = _Run(part.checkpoint)
        checkpoint.start()
        why = _wait_for_trouble("OOM", checkpoint)
        assert why.startswith("Redis refuses writes (checkpoint): OOM")
        time.sleep(0.5)
        assert _pending(admin) == 3, "an input was acknowledged before its state was written"
        assert admin.exists(*(KEYS.state(f"p{n}") for n in range(3))) == 0
        admin.config_set("maxmemory", 0)
        checkpoint.finish()
    finally:
        admin.config_set("maxmemory", 0)
        part.close()
    commands = [f[b"command"] for _i, f in admin.xrange(KEYS.commands("email"))]
    assert [msgspec.json.decode(c)["id"] for c in commands] == ["cmd-0", "cmd-1", "cmd-2"]
    assert _pending(admin) == 0
    for n in range(3):
        saved = admin.get(KEYS.state(f"p{n}"))
        assert saved is not None
        assert msgspec.msgpack.decode(saved)[2] == n
    assert HEALTH.problem() is None


@pytest.mark.redis
def test_dead_letters_wait_out_a_read_only_replica_and_ack_only_with_the_letter(
    server: EmbeddedRedis, admin: redis.Redis
) -> None:
    admin.xgroup_create(KEYS.events(0), KEYS.group, id="0", mkstream=True)
    entry = admin.xadd(KEYS.events(0), {"event": b"not json"})
    admin.xreadgroup(KEYS.group, "c", {KEYS.events(0): ">"})
    sink = DeadLetterSink(lambda: client(server.url), KEYS, Metrics())
    part = sink.build("dead", 0, 1)
    letter = DeadLetter(event="not json", reason="malformed JSON")
    try:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(_dead_port()))  # now read-only
        writer = _Run(lambda: part.write_batch([(letter, (0, entry))]))
        writer.start()
        why = _wait_for_trouble("READONLY", writer)
        assert why.startswith("Redis refuses writes (dead letters): READONLY")
        time.sleep(0.5)
        assert admin.xlen(KEYS.dead) == 0
        assert _pending(admin) == 1
        admin.execute_command("REPLICAOF", "NO", "ONE")
        writer.finish()
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
        part.close()
    dead = admin.xrange(KEYS.dead)
    assert [(f[b"event"], f[b"entry"]) for _i, f in dead] == [(b"not json", entry)]
    assert _pending(admin) == 0
    assert HEALTH.problem() is None


@pytest.mark.redis
def test_state_loads_wait_out_a_redis_busy_with_a_script(
    server: EmbeddedRedis, admin: redis.Redis
) -> None:
    """A state that cannot be read now is waited for: never taken for a fresh prospect."""
    admin.set(KEYS.state("p"), encode_state(ProspectState(prospect="p", seq=7)))
    admin.config_set("lua-time-limit", 10)  # others get BUSY after 10 ms of a script
    store = StateStore(client(server.url), KEYS, Metrics())
    busy = redis.Redis.from_url(server.url)
    spinning = _Run(lambda: busy.eval("while true do end", 0))
    loaded: list[ProspectState | None] = []
    try:
        spinning.start()
        time.sleep(0.1)
        store.request("p")
        reader = _Run(lambda: loaded.append(store.take("p")))
        reader.start()
        why = _wait_for_trouble("BUSY", reader)
        assert why.startswith("Redis refuses reads (load states): BUSY")
        admin.script_kill()
        reader.finish()
    finally:
        spinning.join(timeout=10)
        busy.close()
    assert isinstance(spinning.error, ResponseError), "the script should have been killed"
    assert loaded[0] is not None
    assert loaded[0].seq == 7
    assert HEALTH.problem() is None


def _exposition(metrics: Metrics) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry)
