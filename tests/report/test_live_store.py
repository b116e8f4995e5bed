"""The live scorecard in Redis: facts in the states' values, counts with the chunk that wrote
them.

A real Redis (the session's embedded server). The commit sink is given `Effects` as the live
flow's logic makes them (a state, its facts, the batch's counted fields); what a checkpoint
writes is read back through `connectors.scorecard_store`, as `report --redis` reads it.
"""

import time
from typing import Any

import pytest
import redis

from connectors.checkpoint import StateStore
from connectors.effects import Dirty, Effects
from connectors.keys import Keys
from connectors.metrics import Metrics
from connectors.redis_client import client
from connectors.redis_sink import CommitSink
from connectors.scorecard_store import (
    count_fields,
    counts_args,
    counts_of,
    prospects,
    read_counts,
    read_prospect,
    read_scorecard,
)
from connectors.state_value import join, split
from operators.scorecard_facts import (
    Counts,
    Fields,
    ProspectFacts,
    Recent,
    add_fields,
    counts_from,
    encode_facts,
)
from operators.state import ProspectState, decode_state, encode_state
from operators.timeutil import DAY_MS, parse_ts
from tests.report.helpers import POLICY

pytestmark = pytest.mark.redis
KEYS = Keys(prefix="sc*[x]", shards=2)  # glob characters: SCAN must match them literally
T0 = parse_ts("2026-03-02T15:00:00Z")


def delta(k: int) -> Fields:
    """A batch's counts, different for every `k` (so a count in the wrong place shows)."""
    c = Counts()
    c.touches[k % 5] += 1 + k % 3
    c.replies[(k + 1) % 5] += k % 2
    c.prospects_touched += 1
    c.campaigns[f"camp:{k % 4}"] = [1, k % 2, 0, 1 - k % 2]
    c.held_back["cap.week"] = [k % 2, 0]
    c.daily[(T0 + k * DAY_MS) // DAY_MS] = [1, 0, 0, 0, 0, 0, 0, 0, 0, k % 2]
    if k % 7 == 0:
        c.touches[0] -= 1  # a release: deltas may be negative
    return fields_of(c)


def fields_of(c: Counts) -> Fields:
    flat = count_fields(c)
    return {str(name): int(n) for name, n in zip(flat[::2], flat[1::2], strict=True)}


def facts_of(k: int) -> ProspectFacts:
    return ProspectFacts(touches=[k, 0, 0, 0, 0], decisions=[Recent(T0, 1, "r", 0)])


def effects(k: int, prospect: str, stream_ms: int, *, facts: int | None = None) -> Effects:
    """Batch `k` of `prospect`, with the facts `facts_of(facts)` (default: of `k`)."""
    state = encode_state(ProspectState(prospect=prospect, seq=k))
    data = encode_facts(facts_of(k if facts is None else facts))
    return Effects([], state, None, [], None, None, data, delta(k), stream_ms)


def total(deltas: list[Fields]) -> Counts:
    out: Fields = {}
    for d in deltas:
        add_fields(out, d)
    return counts_from(out.items())


def test_fields_round_trip_through_the_hash() -> None:
    c = total([delta(k) for k in range(12)])
    flat = count_fields(c)
    fields = {str(f).encode(): str(n).encode() for f, n in zip(flat[::2], flat[1::2], strict=True)}
    back, as_of = counts_of({**fields, b"as_of": b"12345", b"newer:field": b"3"})
    assert as_of == 12345
    assert back.touches == c.touches
    assert back.campaigns == c.campaigns
    assert back.daily == c.daily
    assert back.held_back == c.held_back
    assert back.prospects_touched == c.prospects_touched


def test_a_checkpoint_writes_facts_and_the_counts_of_its_states(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    names = [f"p{k}" for k in range(450)]  # three chunks
    try:
        part.write_batch([(p, effects(k, p, T0 + k)) for k, p in enumerate(names)])
        part.write_batch([("p3", effects(1000, "p3", T0 - 5))])  # a later batch of p3
        assert read_counts(redis_client, KEYS) is None, "nothing before the checkpoint"
        part.checkpoint()
    finally:
        part.close()
    found = read_counts(redis_client, KEYS)
    assert found is not None
    counts, as_of = found
    want = total([*(delta(k) for k in range(len(names))), delta(1000)])
    assert counts == want
    assert as_of == T0 + len(names) - 1
    state, facts = read_prospect(redis_client, KEYS, "p3") or (None, None)
    assert state is not None
    assert state.seq == 1000
    assert facts == ProspectFacts(touches=[1000, 0, 0, 0, 0], decisions=[Recent(T0, 1, "r", 0)])
    value: Any = redis_client.get(KEYS.state("p3"))
    assert split(value)[1] == encode_facts(facts), "in the state's value, after the state"
    assert decode_state(value).seq == 1000, "a reader that knows nothing of facts reads the state"
    assert not redis_client.exists(KEYS.facts("p3")), "no key of their own"
    assert sorted(p for p, _f, _s in prospects(redis_client, KEYS, batch=7)) == sorted(names)
    card = read_scorecard(redis_client, KEYS, POLICY)
    assert card is not None
    assert card["overall"]["touches"] == sum(want.touches)
    assert card["as_of"] == "2026-03-02T15:00:00.449Z"


def test_a_kill_between_chunks_leaves_exactly_the_written_states_counts(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Chunks are written one call at a time: the counts in Redis after any number of them are
    those of the states written, so a redelivery re-counts exactly what is not there."""
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    names = [f"p{k}" for k in range(450)]
    try:
        part.write_batch([(p, effects(k, p, T0)) for k, p in enumerate(names)])
        dirty = dict(part._dirty)
        first = dict(list(dirty.items())[:200])
        part._write_chunk(first, "c1")  # the process dies here, before the second chunk
    finally:
        part._closed.set()
        part._r.close()
    found = read_counts(redis_client, KEYS)
    assert found is not None
    written = [k for k, p in enumerate(names) if redis_client.exists(KEYS.state(p))]
    assert len(written) == 200
    assert found[0] == total([delta(k) for k in written])


def test_a_chunk_sent_again_after_a_lost_reply_adds_its_counts_once(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Redis ran the call, its reply was lost, the client sent it again (redis-py's retry, then
    `retrying`, with the same chunk id): states, acks and timers are the same either way, the
    counts are added once. The marker goes once the next chunk is written."""
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    names = [f"p{k}" for k in range(20)]
    try:
        part.write_batch([(p, effects(k, p, T0)) for k, p in enumerate(names)])
        dirty = dict(part._dirty)
        part._write_chunk(dirty, "c1")
        part._write_chunk(dirty, "c1")  # the same call, re-sent
        found = read_counts(redis_client, KEYS)
        assert found is not None
        assert found[0] == total([delta(k) for k in range(len(names))])
        part._counted = KEYS.counted("c1")  # c1's reply arrived: the next call deletes it
        part.write_batch([("q", effects(99, "q", T0 + 1))])
        part._write_chunk(dict(part._dirty), "c2")
        assert not redis_client.exists(KEYS.counted("c1"))
        assert redis_client.exists(KEYS.counted("c2"))
    finally:
        part._closed.set()
        part._r.close()


def test_a_refused_checkpoint_keeps_the_counts_with_their_states(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """A call that fails writes nothing, and the counts wait with the states for the next."""
    redis_client.set(KEYS.scorecard, "not a hash")
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    try:
        part.write_batch([("a", effects(1, "a", T0)), ("b", effects(2, "b", T0))])
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            part.checkpoint()
        assert not redis_client.exists(KEYS.state("a"))
        part.write_batch([("a", effects(3, "a", T0 + 9))])  # newer: keeps the older's counts
        redis_client.delete(KEYS.scorecard)
        part.checkpoint()
    finally:
        part.close()
    found = read_counts(redis_client, KEYS)
    assert found == (total([delta(1), delta(2), delta(3)]), T0 + 9)


def test_states_load_with_their_facts_and_old_states_with_empty_facts(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Facts come with the state, from Redis or from the sink; a state written before the
    scorecard has none; one written by the version that kept facts in a key of their own has
    them there (read, for those states alone, in a second MGET)."""
    redis_client.set(KEYS.state("old"), encode_state(ProspectState(prospect="old", seq=4)))
    redis_client.set(KEYS.state("kept"), encode_state(ProspectState(prospect="kept", seq=9)))
    redis_client.set(KEYS.facts("kept"), encode_facts(facts_of(9)))
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    try:
        part.write_batch([("new", effects(5, "new", T0)), ("held", effects(6, "held", T0))])
        part.checkpoint()
        part.write_batch([("held", effects(7, "held", T0))])  # not yet written: the sink's
        store = StateStore(redis_client, KEYS, Metrics(), saved=sink.saved, facts=True)
        store.prefetch(["old", "new", "kept"])
        cases = (("old", 4, None), ("new", 5, 5), ("held", 7, 7), ("kept", 9, 9))
        for name, seq, touches in cases:
            state = store.take(name)
            assert state is not None
            assert state.seq == seq
            facts, _encoded = store.take_facts(name)
            assert (facts.touches[0] if facts.touches else None) == touches, name
        assert store.take("nobody") is None
        assert store.take_facts("nobody") == (ProspectFacts(), None)
        found = [(p, f.touches) for p, f, _s in prospects(redis_client, KEYS)]
        assert sorted(found, key=str) == sorted(
            [
                ("old", None),
                ("new", [5, 0, 0, 0, 0]),
                ("held", [6, 0, 0, 0, 0]),
                ("kept", [9, 0, 0, 0, 0]),
            ],
            key=str,
        ), "prospects.csv reads the same (held: as checkpointed)"
        assert read_prospect(redis_client, KEYS, "kept") == (
            ProspectState(prospect="kept", seq=9),
            facts_of(9),
        )
    finally:
        part.close()
    state = encode_state(ProspectState(prospect="bad", seq=1))
    redis_client.set(KEYS.state("bad"), join(state, b"\xc1 not msgpack"))
    store = StateStore(redis_client, KEYS, Metrics(), facts=True)
    with pytest.raises(RuntimeError, match=r"state:bad is unreadable"):
        store.take("bad")


def test_counts_put_back_under_a_newer_state_are_kept(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """A checkpoint fails while a newer batch of the same prospect arrives: the newer state is
    written, with the counts of both (the older state's inputs are in it)."""
    sink = CommitSink(lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600)
    part = sink.build("commit", 0, 1)
    try:
        part.write_batch([("a", effects(1, "a", T0 + 5))])
        with part._lock:
            taken, part._dirty = part._dirty, {}  # a checkpoint takes them...
        part.write_batch([("a", effects(3, "a", T0))])  # ...a newer batch comes meanwhile...
        part._put_back(taken)  # ...and the checkpoint fails
        part.checkpoint()
    finally:
        part.close()
    assert read_counts(redis_client, KEYS) == (total([delta(1), delta(3)]), T0 + 5)
    state, _facts = read_prospect(redis_client, KEYS, "a") or (None, None)
    assert state is not None
    assert state.seq == 3


def test_a_chunks_counts_are_its_prospects_fields_summed_zeros_left_out() -> None:
    deltas = [{"touches:email": 2, "stopped": 1}, {"touches:email": -2, "daily:2026-03-02:x": 1}]
    assert counts_args(deltas, 77) == [2, 77, "stopped", 1, "daily:2026-03-02:x", 1]
    assert deltas[0] == {"touches:email": 2, "stopped": 1}, "the prospects' own are kept"
    assert counts_args([], 5) == [0, 5]


def test_a_prospect_that_comes_back_loads_its_newest_state_and_facts(
    redis_client: redis.Redis, redis_test_url: str
) -> None:
    """Wherever its newest checkpoint waits (in Redis, in the sink, in the checkpoint being
    written, or put back under a newer batch after that checkpoint failed), a prospect that
    comes back loads that state with the facts of the same batch."""
    sink = CommitSink(
        lambda: client(redis_test_url), KEYS, Metrics(), interval_s=3600, scorecard=True
    )
    part = sink.build("commit", 0, 1)
    try:
        part.write_batch([("a", effects(1, "a", T0)), ("b", effects(2, "b", T0))])
        part.checkpoint()
        part.write_batch([("b", effects(4, "b", T0 + 2))])
        with part._lock:
            writing, part._dirty = part._dirty, {}
            part._writing = writing  # a checkpoint is writing b's newer state...
        part.write_batch([("b", effects(6, "b", T0 + 4, facts=5))])  # ...b moves on
        store = StateStore(redis_client, KEYS, Metrics(), saved=sink.saved, facts=True)
        store.prefetch(["a", "b"])
        for name, seq, facts in (("a", 1, facts_of(1)), ("b", 6, facts_of(5))):
            state = store.take(name)
            assert state is not None
            assert state.seq == seq
            assert store.take_facts(name).facts == facts
        with part._lock:
            part._writing = {}
        part._put_back(writing)  # that checkpoint failed: b's newest stays on top
        saved = sink.saved("b")
        assert saved is not None
        assert saved.state == encode_state(ProspectState(prospect="b", seq=6))
        assert saved.facts == encode_facts(facts_of(5))
        part.checkpoint()
    finally:
        part.close()
    assert read_prospect(redis_client, KEYS, "b") == (
        ProspectState(prospect="b", seq=6),
        facts_of(5),
    )
    want = total([delta(k) for k in (1, 2, 4, 6)])
    assert read_counts(redis_client, KEYS) == (want, T0 + 4)


class _Calls:
    """A client that records the commands it is asked for (`report --redis` must not scan)."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.r, name)


def test_the_scorecard_is_one_hgetall_whatever_the_number_of_prospects(
    redis_client: redis.Redis,
) -> None:
    """Three years of per-day series, hundreds of campaigns and rules, thousands of prospects:
    one command, well under the issue's second (the prospects are never read)."""
    c = Counts()
    for day in range(3 * 365):
        c.daily[20_000 + day] = [day % 7 + 1] * 10
    for k in range(300):
        c.campaigns[f"campaign-{k}"] = [k, k, 1, 1]
        c.held_back[f"rule-{k % 40}"] = [1, 2]
    c.touches = [10**9, 2, 3, 4, 5]
    flat = count_fields(c)
    redis_client.hset(KEYS.scorecard, mapping=dict(zip(flat[::2], flat[1::2], strict=True)))
    pipe = redis_client.pipeline(transaction=False)
    for k in range(5_000):
        pipe.set(KEYS.state(f"p{k}"), b"x")
    pipe.execute()
    calls = _Calls(redis_client)
    started = time.perf_counter()
    card: Any = read_scorecard(calls, KEYS, POLICY)
    elapsed = time.perf_counter() - started
    assert calls.calls == ["hgetall"]
    assert card["channels"]["email"]["touches"] == 10**9
    assert len(card["daily"]) == 3 * 365
    assert len(card["campaigns"]) == 300
    assert elapsed < 0.5, elapsed


def test_report_and_inspect_redis_errors_are_one_line(
    redis_client: redis.Redis, redis_test_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing written yet, an unknown prospect, a key of the wrong type: status 1, one line."""
    from dataflows.inspect_cli import main as inspect_main
    from dataflows.report import main as report_main

    keys = Keys()  # the bundled config's prefix
    cases: list[tuple[Any, list[str], str]] = [
        (report_main, ["--redis", redis_test_url], "no live scorecard under prefix 'touchflow'"),
        (inspect_main, ["p", "--redis", redis_test_url], "no checkpointed state of prospect 'p'"),
    ]
    for main, argv, says in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"touchflow: {says}"), err
        assert len(err.splitlines()) == 1
    redis_client.set(keys.scorecard, "not a hash")
    assert report_main(["--redis", redis_test_url, "--json"]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("touchflow: reading the scorecard from Redis at redis://")
    assert "WRONGTYPE" in out.err
    assert len(out.err.splitlines()) == 1


def test_the_newest_batch_brings_the_facts_and_a_put_back_keeps_them() -> None:
    """The sink's `Dirty`: a newer batch's facts replace the older's; an unwritten older
    checkpoint put back under a newer one adds its acks and counts, never its facts."""
    dirty = Dirty(effects(1, "p", T0))
    dirty.newer(effects(2, "p", T0 + 1))
    assert dirty.facts == encode_facts(facts_of(2))
    newer = Dirty(effects(3, "p", T0 + 2))
    newer.older(Dirty(effects(1, "p", T0)))
    assert newer.facts == encode_facts(facts_of(3))
    assert newer.counts is not None
    assert counts_from(newer.counts.items()) == total([delta(1), delta(3)])


def test_with_the_scorecard_off_facts_in_a_state_are_neither_kept_nor_decoded(
    redis_client: redis.Redis,
) -> None:
    """A deployment that turns the scorecard off reads states written with facts: the states
    load, and their facts, which nobody will take, are not held (one per prospect, for the life
    of the process) nor decoded (damaged facts must not stop a flow that does not count)."""
    for name, facts in (("good", encode_facts(facts_of(3))), ("damaged", b"\xc1 not msgpack")):
        state = encode_state(ProspectState(prospect=name, seq=3))
        redis_client.set(KEYS.state(name), join(state, facts))
    store = StateStore(redis_client, KEYS, Metrics(), facts=False)
    store.prefetch(["good", "damaged"])
    for name in ("good", "damaged"):
        state = store.take(name)
        assert state is not None
        assert state.seq == 3
    assert store._taken_facts == {}
