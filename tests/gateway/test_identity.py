"""The identity index and the redrive of unknown prospects, against a real Redis and a real
gateway: an event for an address nobody holds is dead-lettered and parked; `index_profiles`
appends it, once, to every prospect indexed with that address in the same call."""

import orjson
import pytest
import redis

from connectors.identity import ProfileAddresses, index_profiles, lookup, parked_key
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis


def test_lookup_follows_the_merged_profile(redis_client: redis.Redis) -> None:
    index_profiles(redis_client, h.KEYS, [("p1", "A@Example.com ", "+14155550111")])
    index_profiles(redis_client, h.KEYS, [ProfileAddresses("p2", "a@example.com")])
    assert lookup(redis_client, h.KEYS, "email", "a@EXAMPLE.com") == {"p1", "p2"}
    assert lookup(redis_client, h.KEYS, "phone", "+14155550111") == {"p1"}
    # a later profile without an email keeps the earlier one; a new email replaces it
    index_profiles(redis_client, h.KEYS, [("p1", None, None)])
    assert lookup(redis_client, h.KEYS, "email", "a@example.com") == {"p1", "p2"}
    index_profiles(redis_client, h.KEYS, [("p1", "new@example.com", None)])
    assert lookup(redis_client, h.KEYS, "email", "a@example.com") == {"p2"}
    assert lookup(redis_client, h.KEYS, "email", "new@example.com") == {"p1"}
    assert lookup(redis_client, h.KEYS, "email", "not an address") == set()
    # in a pipeline (as the live flow's checkpoint would), queued with the rest
    with redis_client.pipeline(transaction=True) as pipe:
        index_profiles(pipe, h.KEYS, [("p3", None, "+14155550122")])
        pipe.execute()
    assert lookup(redis_client, h.KEYS, "phone", "+1 415 555 0122") == {"p3"}


def test_unknown_prospect_is_parked_then_redriven_once(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    stop = samples.twilio_inbound(Body="STOP", OptOutType="STOP")
    path, body, headers = h.twilio_request(gateway, "/v1/hooks/twilio/messages", stop)
    assert gateway.post(path, body, headers).status_code == 200
    assert gateway.post(path, body, headers).status_code == 200  # Twilio's retry
    assert not h.stream_events(redis_client)
    dead = h.dead_letters(redis_client)
    assert [d["reason"] for d in dead] == [b"unknown prospect", b"unknown prospect"]
    assert {d["address"] for d in dead} == {b"+14155550111"}
    assert all(orjson.loads(d["event"])["MessageSid"] == stop["MessageSid"] for d in dead)
    parked = redis_client.lrange(parked_key(h.KEYS, "phone", "+14155550111"), 0, -1)
    assert len(parked) == 2  # replied and opt_out, once each despite the retry
    assert all(orjson.loads(p)["prospect"] == "" for p in parked)

    # a profile for that number arrives: two prospects share it, both get the STOP
    moved = index_profiles(
        redis_client, h.KEYS, [("p-a", None, "+14155550111"), ("p-b", None, "+14155550111")]
    )
    assert moved == 4
    events = h.stream_events(redis_client)
    assert sorted((e["prospect"], e["type"]) for e in events) == [
        ("p-a", "opt_out"),
        ("p-a", "replied"),
        ("p-b", "opt_out"),
        ("p-b", "replied"),
    ]
    assert not redis_client.exists(parked_key(h.KEYS, "phone", "+14155550111"))
    # a retried call, and a retried provider request, append nothing twice
    assert index_profiles(redis_client, h.KEYS, [("p-a", None, "+14155550111")]) == 0
    assert gateway.post(path, body, headers).status_code == 200
    assert len(h.stream_events(redis_client)) == 4
    # same ids as a direct delivery would have had
    direct = {e["id"] for e in events}
    assert direct == {
        f"twilio:{stop['MessageSid']}:replied",
        f"twilio:{stop['MessageSid']}:opt_out",
    }
