"""The batch record (`Batch`, `Ready`, `Pending`: the spool's format) across versions: records
spooled before `Ready` and `Pending` carried their event's id still drain, each event under the
same dedupe marker as a record of today's format; a record of today's format is read by the
previous version; and the id `batch_of` carries is always the one in the event's JSON."""

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import Struct

from connectors.gateway import batch_of
from connectors.gateway_store import Batch, Pending, Ready, Store, _id, async_client
from connectors.identity import index_profiles
from connectors.spool import Spool
from operators.providers.common import Address, Draft, Mapped, Unreadable
from tests.gateway import harness as h


class OldReady(Struct, array_like=True, frozen=True, gc=False):
    """`Ready` as the previous version spooled it."""

    prospect: str
    type: str
    event: bytes


class OldPending(Struct, array_like=True, frozen=True, gc=False):
    kind: str
    address: str
    type: str
    event: bytes
    raw: bytes


class OldDead(Struct, array_like=True, frozen=True, gc=False):
    raw: bytes
    reason: str


class OldBatch(Struct, array_like=True, frozen=True, gc=False):
    provider: str
    ready: list[OldReady] = []
    pending: list[OldPending] = []
    dead: list[OldDead] = []


def _event(event_id: str, prospect: str) -> bytes:
    return f'{{"prospect":"{prospect}","id":"{event_id}","type":"delivered"}}'.encode()


def _streams(client: redis.Redis) -> list[bytes]:
    streams = client.keys(f"{h.KEYS.prefix}:events:*")
    return [fields[b"event"] for s in streams for _id, fields in client.xrange(s)]  # type: ignore[union-attr]


@pytest.mark.redis
def test_a_spool_of_the_previous_format_drains(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    index_profiles(redis_client, h.KEYS, [("p2", None, "+14155550111")])
    old = OldBatch(
        "twilio",
        ready=[OldReady("p1", "delivered", _event("e1", "p1"))],
        pending=[OldPending("phone", "+14155550111", "delivered", _event("e2", ""), b"{}")],
    )

    async def run() -> list[Any]:
        spool = Spool(tmp_path / "spool")
        spool.open()
        spool.append(msgspec.json.encode(old))
        store = Store(async_client(redis_test_url), h.KEYS, spool, dedupe_s=3600, parked_s=3600)
        await store._drain_chunk()
        drained = _streams(redis_client)
        # the same events in today's format, ids carried: the markers the old record set hold
        again = Batch(
            "twilio",
            ready=[Ready("p1", "delivered", _event("e1", "p1"), "e1")],
            pending=[Pending("phone", "+14155550111", "delivered", _event("e2", ""), b"{}", "e2")],
        )
        outcome = await store.commit(again)
        await store._r.aclose()
        spool.close()
        return [drained, outcome, spool.pending()]

    drained, outcome, pending = asyncio.run(run())
    assert sorted(drained) == [_event("e1", "p1"), _event("e2", "p2")]
    assert (outcome.appended, outcome.spooled) == (0, False)
    assert not pending
    assert redis_client.xlen(h.KEYS.dead) == 0


def test_the_previous_version_reads_a_record_of_today() -> None:
    batch = Batch(
        "twilio",
        ready=[Ready("p1", "delivered", b"{}", "e1")],
        pending=[Pending("phone", "+14155550111", "delivered", b"{}", b"raw", "e2")],
    )
    read = msgspec.json.decode(msgspec.json.encode(batch), type=OldBatch)
    assert read.ready == [OldReady("p1", "delivered", b"{}")]
    assert read.pending == [OldPending("phone", "+14155550111", "delivered", b"{}", b"raw")]
    today = msgspec.json.decode(msgspec.json.encode(batch), type=Batch)
    assert today == batch


_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
_FIELDS = st.dictionaries(
    st.sampled_from(["channel", "id", "type", "ts", "prospect", "text"]), _TEXT, max_size=3
)
_DRAFTS = st.builds(
    Draft,
    id=_TEXT,
    type=st.sampled_from(["delivered", "replied"]),
    ts=st.just("2024-01-01T00:00:00Z"),
    fields=_FIELDS,
    prospect=st.one_of(st.none(), _TEXT),
    address=st.one_of(st.none(), st.builds(Address, st.just("phone"), _TEXT)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_DRAFTS, max_size=4), st.lists(st.builds(Unreadable, st.binary(), _TEXT)))
def test_batch_of_carries_the_id_in_the_event(
    drafts: list[Draft], unreadable: list[Unreadable]
) -> None:
    batch = batch_of("twilio", Mapped(drafts=drafts, unreadable=unreadable))
    for item in [*batch.ready, *batch.pending]:
        assert item.event_id in ("", _id(item.event))
    # left to the decode only where a field named `id` may stand for the draft's
    ready = [d for d in drafts if d.prospect is not None]
    pending = [d for d in drafts if d.prospect is None and d.address is not None]
    for items, made in ((batch.ready, ready), (batch.pending, pending)):
        assert [i.event_id for i in items] == ["" if "id" in d.fields else d.id for d in made]
    assert [d.raw for d in batch.dead] == [u.raw for u in unreadable]
