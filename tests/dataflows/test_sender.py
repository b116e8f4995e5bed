"""The simulated sender: its answers, its consumer groups, and the flow confirming its touches,
whether the sender appends them itself or posts them as signed callbacks through a gateway."""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_server import EmbeddedRedis
from dataflows.demo.answers import CONFIRM_ONLY, Behaviour, plan
from dataflows.demo.gateway_wire import CallbackSecrets, GatewayWire
from dataflows.demo.sender import Sender, group_name
from dataflows.demo.wire import Wire
from operators.state import command_key, decode_state
from operators.timeutil import format_ts
from tests.dataflows import live_harness as h
from tests.gateway.harness import Gateway

KEYS = Keys(prefix="tft", shards=4)
AT_ONCE = Behaviour(delay_scale=0.0)


def _command(cid: str, channel: str = "email", prospect: str = "p1") -> dict[str, Any]:
    return {"id": cid, "prospect": prospect, "channel": channel, "topic": "launch"}


def test_plan_starts_with_touch_sent_naming_the_command() -> None:
    for n in range(300):
        answers = plan(_command(f"c{n}"), seed=1, behaviour=Behaviour())
        first = answers[0][1]
        assert first["type"] in ("touch_sent", "touch_failed")
        assert first["command"] == f"c{n}"
        assert answers[0][0] == min(at for at, _ in answers), "nothing before the send"
        assert all(e["id"] == f"c{n}:{e['type']}" for _, e in answers)
        assert all(e.get("command", f"c{n}") == f"c{n}" for _, e in answers)


def test_plan_is_a_function_of_seed_and_command() -> None:
    assert plan(_command("x"), seed=3, behaviour=Behaviour()) == plan(
        _command("x"), seed=3, behaviour=Behaviour()
    )
    kinds = {
        tuple(e["type"] for _, e in plan(_command(f"c{n}"), seed=s, behaviour=Behaviour()))
        for n in range(50)
        for s in (1, 2)
    }
    assert len(kinds) > 3, "answers vary from command to command"


def test_plan_rates_are_plausible() -> None:
    counts: Counter[str] = Counter()
    for n in range(4000):
        counts.update(e["type"] for _, e in plan(_command(f"c{n}"), seed=0, behaviour=Behaviour()))
    assert counts["touch_sent"] + counts["touch_failed"] == 4000
    assert 60 <= counts["touch_failed"] <= 200  # 3 %
    assert 100 <= counts["bounce"] <= 260  # 4 % of emails
    assert counts["delivered"] > 3300
    assert 0.3 < counts["opened"] / counts["delivered"] < 0.5
    assert 80 <= counts["replied"] <= 300
    assert counts["opt_out"] == 0, "unsubscribes are opt-in"


def test_the_unsubscribe_is_drawn_last_so_turning_it_on_changes_no_other_answer() -> None:
    unsubscribing = Behaviour(unsubscribed=0.05)
    counts: Counter[str] = Counter()
    for n in range(4000):
        with_it = plan(_command(f"c{n}"), seed=2, behaviour=unsubscribing)
        rest = [a for a in with_it if a[1]["type"] != "opt_out"]
        assert rest == plan(_command(f"c{n}"), seed=2, behaviour=Behaviour())
        assert [at for at, _ in with_it] == sorted(at for at, _ in with_it), "in time order"
        counts.update(e["type"] for _, e in with_it)
    assert 0.02 < counts["opt_out"] / counts["opened"] < 0.09  # 5 % of opens unsubscribe


def test_plan_by_channel() -> None:
    assert plan(_command("h", "rep"), seed=0, behaviour=Behaviour()) == [], "handoffs: no answer"
    phone = Behaviour(failed=0.0)
    calls = [plan(_command(f"c{n}", "phone"), seed=0, behaviour=phone) for n in range(20)]
    assert all([e["type"] for _, e in a] == ["touch_sent", "call_outcome"] for a in calls)
    confirm = plan(_command("s", "sms"), seed=0, behaviour=CONFIRM_ONLY)
    assert [e["type"] for _, e in confirm] == ["touch_sent"]
    with pytest.raises(ValueError, match="probabilities"):
        Behaviour(failed=1.5)


@pytest.fixture
def published(redis_client: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        out = []
        for shard in range(KEYS.shards):
            out += [orjson.loads(f[b"event"]) for _, f in redis_client.xrange(KEYS.events(shard))]
        return out

    return read


@pytest.mark.redis
def test_sender_answers_acks_and_keeps_a_group_per_channel(
    redis_client: redis.Redis, published: Callable[[], list[dict[str, Any]]]
) -> None:
    cmd = _command("cmd-1", "sms", prospect="p7")
    redis_client.xadd(KEYS.commands("sms"), {"command": orjson.dumps(cmd)})
    handoff = _command("cmd-2", "rep", prospect="p7")
    redis_client.xadd(KEYS.commands("rep"), {"command": orjson.dumps(handoff)})
    sender = Sender(redis_client, KEYS, behaviour=Behaviour(failed=0.0, delay_scale=0.0))
    assert sender.step() >= 1
    events = published()
    sent = [e for e in events if e["type"] == "touch_sent"]
    assert [(e["command"], e["channel"], e["prospect"]) for e in sent] == [("cmd-1", "sms", "p7")]
    shard = shard_of("p7", KEYS.shards)
    assert redis_client.xlen(KEYS.events(shard)) == len(events), "on the prospect's shard"
    for channel in ("email", "sms", "phone", "chat", "linkedin", "rep"):
        groups = redis_client.xinfo_groups(KEYS.commands(channel))
        assert [g["name"].decode() for g in groups] == [group_name(KEYS, channel)]
        assert all(g["pending"] == 0 for g in groups), f"{channel}: carried out and acked"
    counts = sender.stats.snapshot()
    assert (counts.commands["sms"], counts.commands["rep"], counts.acked) == (1, 1, 2)
    assert counts.answers["touch_sent"] == 1
    assert counts.requests == {("redis", "ok"): 1}, "one pipeline round, no gateway"


@pytest.mark.redis
def test_a_restarted_sender_answers_its_pending_commands_with_the_same_ids(
    redis_client: redis.Redis, published: Callable[[], list[dict[str, Any]]]
) -> None:
    for n in range(3):
        cmd = orjson.dumps(_command(f"c{n}"))
        redis_client.xadd(KEYS.commands("email"), {"command": cmd})
    first = Sender(redis_client, KEYS, seed=5, behaviour=AT_ONCE)
    assert first.poll() == 3  # read, then "crashed" before answering: nothing acked
    assert redis_client.xpending(KEYS.commands("email"), group_name(KEYS, "email"))["pending"] == 3
    second = Sender(redis_client, KEYS, seed=5, behaviour=AT_ONCE)
    assert second.poll() == 3, "its own pending entries first"
    second.flush()
    ids = [e["id"] for e in published()]
    assert len(ids) == len(set(ids))
    first.flush()  # the crashed one's answers, were it to come back: the same ids
    again = [e["id"] for e in published()]
    assert sorted(set(again)) == sorted(ids)
    assert redis_client.xpending(KEYS.commands("email"), group_name(KEYS, "email"))["pending"] == 0


# Requests only (no caps by day, no gap, no deferral): a request is sent while the email cap (3 a
# week) has room and blocked once it is full, so counts are visible in the verdicts.
CONFIRM_CONFIG = """
[[caps]]
name = "week"
hours = 168
total = 5
per_channel = { email = 3, sms = 2, phone = 1, linkedin = 2, chat = 2 }

[[caps]]
name = "day"
hours = 24
total = 5

[gap]
hours = 0

[requests]
max_defer_hours = 0
arbitration_seconds = 0

[streams]
prefix = "tft"
shards = 4
checkpoint_interval_ms = 200
claim_idle_ms = 1000
"""


@pytest.fixture
def server(embedded_redis_factory: Callable[..., EmbeddedRedis]) -> EmbeddedRedis:
    return embedded_redis_factory()


@pytest.fixture
def r(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


def _sent(r: redis.Redis) -> int:
    events = [f[b"event"] for _, f in r.xrange(KEYS.events(shard_of("p1", KEYS.shards)))]
    return sum(b'"touch_sent"' in e for e in events)


def _decisions(r: redis.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"decision"]) for _, f in r.xrange(KEYS.decisions)]


@pytest.fixture(params=["redis", "gateway"])
def wire(
    request: pytest.FixtureRequest, server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Wire | None]:
    """The sender's two wires: its own XADDs (None: the default), or a real gateway process."""
    if request.param == "redis":
        yield None
        return
    secrets = CallbackSecrets.generate()
    gateway = Gateway(server.url, tmp_path, secrets=secrets.gateway_env(), config=CONFIRM_CONFIG)
    gateway.start()
    try:
        yield GatewayWire(gateway.base, secrets)
    finally:
        gateway.stop()


@pytest.mark.slow
@pytest.mark.redis
def test_flow_confirms_the_senders_touch_sent_and_counts_it_once(
    server: EmbeddedRedis, r: redis.Redis, tmp_path: Path, wire: Wire | None
) -> None:
    config = tmp_path / "confirm.toml"
    config.write_text(CONFIRM_CONFIG)
    proc = h.start_run(server.url, config, log=tmp_path / "run.log")
    halt = threading.Event()
    sender_client = redis.Redis.from_url(server.url)
    quick = Behaviour(failed=0.0, bounce={}, replied={}, unsubscribed=0.0, delay_scale=0.2)
    sender = Sender(sender_client, KEYS, behaviour=quick, wire=wire)
    thread = threading.Thread(target=sender.run, args=(halt,))
    thread.start()
    try:
        for n in range(4):
            request = {"channel": "email", "campaign": "launch", "topic": "launch"}
            ts = format_ts(int(time.time() * 1000))
            event = {"id": f"req-{n}", "type": "touch_request", "prospect": "p1", "ts": ts}
            h.publish(r, KEYS, [event | request])
            # Before the next request: the decision, the sender's touch_sent, the flow's ack.
            deadline = time.monotonic() + 20
            while (
                len(_decisions(r)) <= n
                or _sent(r) < sum(d["verdict"] == "sent" for d in _decisions(r))
                or sender.scheduled
                or not h.drained(r, KEYS)
            ):
                assert time.monotonic() < deadline, "no decision, answer or ack in time"
                time.sleep(0.05)
    finally:
        halt.set()
        thread.join()
        sender.close()
        sender_client.close()
        assert h.stop(proc) == 0
    decisions = _decisions(r)
    # Counted once each: the 3rd request fits the cap of 3, the 4th does not. Were a confirmed
    # touch counted again, the 3rd would already be blocked.
    assert [(d["verdict"], d["rule"]) for d in decisions] == [
        ("sent", None),
        ("sent", None),
        ("sent", None),
        ("blocked", "cap.email.week"),
    ]
    commands = [d["command"] for d in decisions[:3]]
    shard = KEYS.events(shard_of("p1", KEYS.shards))
    events = [orjson.loads(f[b"event"]) for _, f in r.xrange(shard)]
    confirmed = [e["command"] for e in events if e["type"] == "touch_sent"]
    assert confirmed == commands, "the sender named each command it carried out"
    if wire is not None:  # the deliveries and opens came as SendGrid events
        callbacks = [e for e in events if e["type"] in ("delivered", "opened")]
        assert callbacks
        assert all(e["id"].startswith("sendgrid:") for e in callbacks)
        assert sender.stats.snapshot().requests["sendgrid", "200"] > 0
    state = r.get(KEYS.state("p1"))
    assert state is not None
    touches = decode_state(state).touches or []
    assert sorted(t.command for t in touches) == sorted(command_key(c) for c in commands)
