"""`claim_shards`: the shard count under a prefix is fixed once streams exist there."""

import logging
import urllib.parse

import pytest
import redis

from connectors.keys import Keys, shard_of
from connectors.redis_client import client
from connectors.shard_count import claim_shards
from operators.errors import ConfigError

pytestmark = pytest.mark.redis
PROSPECTS = [f"p{n}" for n in range(40)]


def _publish(r: redis.Redis, keys: Keys) -> None:
    for prospect in PROSPECTS:
        event = b'{"id":"1","type":"chat_started","prospect":"%s"}' % prospect.encode()
        r.xadd(keys.events(shard_of(prospect, keys.shards)), {"event": event})


def test_the_first_claim_records_the_count_and_the_same_count_passes(
    redis_client: redis.Redis,
) -> None:
    keys = Keys(prefix="sc", shards=4)
    claim_shards(redis_client, keys)
    assert redis_client.get(keys.shard_count) == b"4"
    _publish(redis_client, keys)
    claim_shards(redis_client, keys)
    redis_client.delete(keys.shard_count)  # streams from before the count was recorded
    claim_shards(redis_client, keys)
    assert redis_client.get(keys.shard_count) == b"4"


@pytest.mark.parametrize("configured", [1, 2, 3, 5, 8, 16])
@pytest.mark.parametrize("recorded", [True, False])
def test_another_count_is_refused_in_one_line_naming_the_key(
    redis_client: redis.Redis, configured: int, recorded: bool
) -> None:
    """With the count recorded, or (upgrade) only the streams themselves to go by."""
    _publish(redis_client, Keys(prefix="sc", shards=4))
    if recorded:
        redis_client.set("sc:shards", 4)
    with pytest.raises(ConfigError) as refused:
        claim_shards(redis_client, Keys(prefix="sc", shards=configured))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"streams.shards is {configured}, but the streams under prefix")
    assert ("split 4 ways" in message) == recorded
    assert "sc:shards" in message
    assert redis_client.get("sc:shards") == (b"4" if recorded else None)


def test_a_value_that_is_not_a_count_is_a_clear_error(redis_client: redis.Redis) -> None:
    redis_client.set("sc:shards", "four")
    with pytest.raises(ConfigError, match="sc:shards holds b'four', not a shard count"):
        claim_shards(redis_client, Keys(prefix="sc", shards=4))


def test_without_permission_on_the_key_the_check_is_skipped_with_a_warning(
    redis_client: redis.Redis, redis_test_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A tight ACL that only lets a producer touch the event streams still lets it publish."""
    redis_client.acl_setuser(
        "sc-producer", enabled=True, passwords=["+pw"], keys=["sc:events:*"], commands=["+@all"]
    )
    parts = urllib.parse.urlsplit(redis_test_url)
    if parts.scheme not in ("redis", "rediss"):
        pytest.skip("needs a TCP Redis URL to log in as another user")
    url = parts._replace(netloc=f"sc-producer:pw@{parts.hostname}:{parts.port or 6379}").geturl()
    producer = client(url)
    try:
        with caplog.at_level(logging.WARNING):
            claim_shards(producer, Keys(prefix="sc", shards=4))
        assert "no permission on sc:shards" in caplog.text
        assert redis_client.get("sc:shards") is None
    finally:
        producer.close()
        redis_client.acl_deluser("sc-producer")
