"""Damaged bytes in a real spool segment cost only the requests they touch.

A real gateway spools requests while Redis is away and is killed; bytes in the middle of its
segment are then damaged (a payload byte of one record, the length field of another, as bit rot
would). At the restart, with Redis back, every intact record must still reach the streams,
exactly once (across a further restart too), and each damaged stretch must be dead-lettered with
its bytes and reported in the log, not silently dropped with the records after it.
"""

import base64
import time
from pathlib import Path

import httpx
import msgspec
import orjson
import pytest
import redis

from connectors.spool_frame import Intact, scan
from tests.conftest import EmbeddedRedisFactory
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis

REQUESTS = 14
SEGMENT = "seg-000000000000.log"


def _request(gateway: Gateway, n: int) -> tuple[str, bytes, dict[str, str]]:
    """Request `n`: a first-party page view (even) or a Twilio delivered callback (odd)."""
    prospect = f"p{n % 4}"
    if n % 2 == 0:
        event = {"id": f"ev-{n}", "type": "page_view", "prospect": prospect,
                 "ts": "2024-05-01T10:00:00Z", "url": f"https://x.test/{n}"}  # fmt: skip
        return "/v1/events", orjson.dumps(event), h.bearer()
    sid = f"SM{n:032d}"
    params = samples.twilio_status("delivered", MessageSid=sid, SmsSid=sid)
    query = {"prospect": prospect, "command": f"cmd-{n}"}
    return h.twilio_request(gateway, "/v1/hooks/twilio/status", params, query)


def _event_ids(payload: bytes) -> list[str]:
    """The event ids a spooled batch carries (its `ready` events: base64 JSON, array-like)."""
    batch = msgspec.json.decode(payload)
    return [orjson.loads(base64.b64decode(ready[2]))["id"] for ready in batch[1]]


def _wait_drained(gateway: Gateway) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.base}/healthz").text != "ok":
        assert time.monotonic() < deadline, "the spool did not drain"
        time.sleep(0.05)


def test_damaged_records_are_dead_lettered_and_the_rest_delivered_once(
    embedded_redis_factory: EmbeddedRedisFactory, tmp_path: Path
) -> None:
    server = embedded_redis_factory()
    gateway = Gateway(server.url, tmp_path).start()
    server.stop()
    try:
        for n in range(REQUESTS):
            path, body, headers = _request(gateway, n)
            answer = gateway.post(path, body, headers)
            assert answer.status_code == 200, answer.text
        assert httpx.get(f"{gateway.base}/healthz").text.startswith("ok (spooling")
    finally:
        gateway.kill()

    segment = gateway.spool / SEGMENT
    data = bytearray(segment.read_bytes())
    with segment.open("rb") as file:
        records = list(scan(file, 0, len(data), tail=True))
    assert all(isinstance(r, Intact) for r in records)
    assert len(records) == REQUESTS
    intact = [r for r in records if isinstance(r, Intact)]
    acked = [i for r in intact for i in _event_ids(r.payload)]
    assert len(acked) == REQUESTS
    hit_payload, hit_header = intact[4], intact[9]
    data[(hit_payload.start + hit_payload.end) // 2] ^= 0x10  # a byte in the middle of a payload
    data[hit_header.start + 6] ^= 0x01  # the length field: a reader that trusts it loses the rest
    segment.write_bytes(bytes(data))
    lost = {*_event_ids(hit_payload.payload), *_event_ids(hit_header.payload)}

    server.start()
    gateway.start()
    try:
        _wait_drained(gateway)
        gateway.stop()
        gateway.start()  # a further restart re-sends nothing
        _wait_drained(gateway)
    finally:
        gateway.stop()

    client = redis.Redis.from_url(server.url)
    try:
        ids = [e["id"] for e in h.stream_events(client)]
        dead = h.dead_letters(client)
    finally:
        client.close()
    assert sorted(ids) == sorted(i for i in acked if i not in lost), "every intact record, once"
    assert [d["provider"] for d in dead] == [b"spool", b"spool"]
    assert all(d["reason"].startswith(b"damaged spool record") for d in dead)
    assert [d["event"] for d in dead] == [
        bytes(data[hit_payload.start : hit_payload.end]),
        bytes(data[hit_header.start : hit_header.end]),
    ]
    log = gateway.log.read_text()
    assert log.count("damaged bytes in seg-000000000000.log") == 2
    assert "spool drained into Redis" in log
