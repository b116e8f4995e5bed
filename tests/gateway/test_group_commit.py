"""Group commit: concurrent batches share script calls, each still answered with its own counts
only once its entries are in Redis; a stale identity check in one batch holds back no other."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from connectors.gateway_commit import _pack
from connectors.gateway_store import Batch, Pending, Ready, Store, async_client
from connectors.identity import index_profiles
from connectors.spool import Spool
from tests.gateway import harness as h


def _event(event_id: str, prospect: str) -> bytes:
    return (f'{{"prospect":"{prospect}","id":"{event_id}","type":"delivered"}}').encode()


def _store(url: str, tmp: Path) -> tuple[Store, list[int]]:
    client = async_client(url)
    spool = Spool(tmp / "spool")
    spool.open()
    store = Store(client, h.KEYS, spool, dedupe_s=3600, parked_s=3600)
    calls: list[int] = []  # the number of keys of each script call
    script = store._group._script

    async def counted(keys: list[str], argv: list[object]) -> object:
        calls.append(len(keys))
        return await script(keys, argv)

    store._group._script = counted  # type: ignore[method-assign]
    return store, calls


@pytest.mark.redis
def test_concurrent_batches_share_calls_and_keep_their_own_counts(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    batches = [
        Batch("twilio", ready=[Ready(f"p{i % 8}", "delivered", _event(f"e{i % 40}", f"p{i % 8}"))])
        for i in range(80)
    ]  # events 40..79 repeat 0..39 for the same prospect: a provider's retries

    async def run() -> list[Any]:
        store, calls = _store(redis_test_url, tmp_path)
        outcomes = await asyncio.gather(*(store.commit(b) for b in batches))
        await store._r.aclose()
        return [outcomes, calls]

    outcomes, calls = asyncio.run(run())
    assert sum(o.appended for o in outcomes) == 40
    assert all(not o.spooled for o in outcomes)
    first = {o.appended for o in outcomes[:40]}
    assert first == {1}  # the first of each event id is the one appended, in order
    assert {o.appended for o in outcomes[40:]} == {0}
    assert len(calls) < len(batches)  # grouped
    streams = redis_client.keys(f"{h.KEYS.prefix}:events:*")
    assert sum(redis_client.xlen(s) for s in streams) == 40


@pytest.mark.redis
def test_a_stale_check_holds_back_no_other_batch(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    index_profiles(redis_client, h.KEYS, [("p1", "a@example.com", None)])
    index_profiles(redis_client, h.KEYS, [(f"q{i}", f"b{i}@example.com", None) for i in range(5)])
    pending = Pending("email", "a@example.com", "delivered", b'{"prospect":"","id":"x1"}', b"{}")
    stale = Batch("sendgrid", pending=[pending])
    others = [
        Batch(
            "sendgrid",
            pending=[
                Pending("email", f"b{i}@example.com", "delivered", b'{"prospect":"","id":"o"}', b"")
            ],
        )
        for i in range(5)
    ]  # resolved by address too: all six reach the queue together

    async def run() -> list[Any]:
        store, calls = _store(redis_test_url, tmp_path)
        holders = store._holders
        moved = False
        read = 0
        all_read = asyncio.Event()

        async def racing(wanted: list[Pending]) -> dict[tuple[str, str], list[str]]:
            nonlocal moved, read
            found = await holders(wanted)
            read += 1
            if read == 6:
                all_read.set()
            await all_read.wait()  # all six then reach the queue in the same turn
            if wanted and not moved:  # index_profiles runs between the read and the write
                moved = True
                index_profiles(redis_client, h.KEYS, [("p3", "a@example.com", None)])
            return found

        store._holders = racing  # type: ignore[method-assign]
        outcomes = await asyncio.gather(*(store.commit(b) for b in [stale, *others]))
        await store._r.aclose()
        return [outcomes, calls]

    outcomes, calls = asyncio.run(run())
    assert [o.appended for o in outcomes] == [2, 1, 1, 1, 1, 1]  # p1 and p3 both get x1
    # one call for all six (stale: nothing written), then each alone, then x1 again
    assert calls[0] == 6 * 3
    assert len(calls) == 1 + 6 + 1
    assert redis_client.xlen(h.KEYS.dead) == 0


@pytest.mark.redis
def test_a_lost_connection_is_replaced_not_spooled(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The script's connection is held between calls; when Redis drops it (a restart, an idle
    timeout), the next call goes out on a fresh one instead of sending the batch to the spool."""

    async def run() -> list[Any]:
        store, calls = _store(redis_test_url, tmp_path)
        first = await store.commit(
            Batch("twilio", ready=[Ready("p1", "delivered", _event("k1", "p1"))])
        )
        killed = redis_client.client_kill_filter(_type="normal", skipme=True)
        second = await store.commit(
            Batch("twilio", ready=[Ready("p1", "delivered", _event("k2", "p1"))])
        )
        await store._r.aclose()
        return [first, killed, second, calls]

    first, killed, second, calls = asyncio.run(run())
    assert killed >= 1
    assert len(calls) == 2
    assert (first.appended, first.spooled) == (1, False)
    assert (second.appended, second.spooled) == (1, False)
    stream = redis_client.keys(f"{h.KEYS.prefix}:events:*")
    assert sum(redis_client.xlen(s) for s in stream) == 2


_ARGS = st.one_of(
    st.text(max_size=40),  # non-ASCII too: its UTF-8 length, not its length in characters
    st.binary(max_size=40),
    st.binary(min_size=1020, max_size=1030),  # around the largest length whose head is kept
    st.integers(-(2**70), 2**70),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=6), st.lists(_ARGS, max_size=8))
def test_a_call_is_packed_as_redis_py_packs_it(keys: list[str], argv: list[object]) -> None:
    packer = PythonRespSerializer(1 << 30, Encoder("utf-8", "strict", False).encode)
    expected = b"".join(packer.pack(b"EVALSHA", b"5ha", len(keys), *keys, *argv))
    assert _pack(b"EVALSHA", b"5ha", keys, argv) == expected
