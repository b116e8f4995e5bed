"""Never lost, never doubled: Redis stopped mid-load, the gateway SIGKILLed once, providers
retrying until they get a 2xx. Every acknowledged request's events end up on the streams exactly
once by event id, in the order each prospect's requests were accepted."""

import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from tests.conftest import EmbeddedRedisFactory
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis

REQUESTS = 160
PROSPECTS = 5


def _request(gateway: Gateway, n: int) -> tuple[str, bytes, dict[str, str], str]:
    """Request `n`: a first-party event (odd) or a Twilio status callback (even); its event id."""
    prospect = f"p{n % PROSPECTS}"
    if n % 2:
        event = {"id": f"ev-{n}", "type": "page_view", "prospect": prospect,
                 "ts": "2024-05-01T10:00:00Z", "url": f"https://x.test/{n}"}  # fmt: skip
        return "/v1/events", orjson.dumps(event), h.bearer(), f"ev-{n}"
    sid = f"SM{n:032d}"
    params = samples.twilio_status("delivered", MessageSid=sid, SmsSid=sid)
    query = {"prospect": prospect, "command": f"cmd-{n}"}
    path, body, headers = h.twilio_request(gateway, "/v1/hooks/twilio/status", params, query)
    return path, body, headers, f"twilio:{sid}.delivered:delivered"


def test_outage_and_kill_lose_and_double_nothing(
    embedded_redis_factory: EmbeddedRedisFactory, tmp_path: Path
) -> None:
    server = embedded_redis_factory(appendonly=True, appendfsync="always")
    gateway = Gateway(server.url, tmp_path).start()
    client = redis.Redis.from_url(server.url)
    acked: list[str] = []  # event ids of requests answered 2xx, in order
    spooled = 0
    done = threading.Event()

    def load() -> None:
        nonlocal spooled
        deadline = time.monotonic() + 90
        for n in range(REQUESTS):
            path, body, headers, event_id = _request(gateway, n)
            while time.monotonic() < deadline:  # a provider retries until it gets a 2xx
                try:
                    answer = httpx.post(
                        gateway.base + path, content=body, headers=headers, timeout=10
                    )
                except httpx.TransportError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    acked.append(event_id)
                    spooled += answer.headers["content-type"].startswith(
                        "application/json"
                    ) and bool(answer.json().get("spooled"))
                    break
                time.sleep(0.05)
            time.sleep(0.01)
        done.set()

    loader = threading.Thread(target=load, daemon=True)
    try:
        loader.start()
        _wait_for(lambda: len(acked) >= 30)
        server.stop()  # Redis away mid-load
        _wait_for(lambda: len(acked) >= 60)
        gateway.kill()  # SIGKILL while requests are spooled and arriving
        time.sleep(0.3)
        gateway.start()  # recovers the spool, Redis still away
        _wait_for(lambda: len(acked) >= 100)
        server.start()
        assert done.wait(120), "the load did not finish"
        _wait_for(lambda: httpx.get(f"{gateway.base}/healthz").text == "ok", timeout=30)
        # every request once more, as a provider that never saw our answers would send it
        for n in range(0, REQUESTS, 7):
            path, body, headers, _ = _request(gateway, n)
            assert httpx.post(gateway.base + path, content=body, headers=headers).status_code == 200
    finally:
        gateway.stop()
        client.close()
    assert len(acked) == REQUESTS
    assert spooled >= 20, "the outage should have been bridged by the spool"
    client = redis.Redis.from_url(server.url)
    try:
        events = h.stream_events(client)
    finally:
        client.close()
    ids = [e["id"] for e in events]
    assert sorted(ids) == sorted(set(acked)), "every acknowledged event, exactly once"
    for p in range(PROSPECTS):  # each prospect's events in the order they were accepted
        mine = [e["id"] for e in events if e["prospect"] == f"p{p}"]
        assert mine == [i for i in acked if i in set(mine)]
    log = gateway.log.read_text()
    assert "spooling requests until it is back" in log
    assert "spool drained into Redis" in log


def _wait_for(condition: object, timeout: float = 60) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
