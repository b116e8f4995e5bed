"""No secret of a Redis URL reaches a message, a log line or a health reason, wherever it sits.

Secrets sit in the userinfo (`redis://user:pw@host`) or the query (`?password=`, `?username=`,
which redis-py reads too), and may be percent-encoded or, pasted by hand, not.
"""

import logging
from collections.abc import Callable

import pytest
from redis.exceptions import ConnectionError

from connectors.health import Health
from connectors.redis_client import RedisUnavailableError, connect, has_secret, redacted
from connectors.redis_server import EmbeddedRedis
from connectors.retry import retrying

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("redis://u:pw@h:6379/0", "redis://u:***@h:6379/0"),
        ("rediss://:pw@h/1", "rediss://:***@h/1"),
        ("redis://h:6379", "redis://h:6379"),
        ("redis://h:6379/0?password=pw&db=2", "redis://h:6379/0?password=***&db=2"),
        ("redis://h/0?username=bob&password=pw", "redis://h/0?username=***&password=***"),
        ("redis://u:pw@h/0?password=pw2", "redis://u:***@h/0?password=***"),
        ("unix://:pw@/tmp/r.sock?db=1&password=pw", "unix://:***@/tmp/r.sock?db=1&password=***"),
        (
            "redis://h/0?auth_token=t&socket_timeout=3",
            "redis://h/0?auth_token=***&socket_timeout=3",
        ),
        ("redis://h/0?PASSWORD=pw", "redis://h/0?PASSWORD=***"),
        ("redis://h/0?pass%77ord=pw", "redis://h/0?pass%77ord=***"),
        # pasted unescaped: `@`, `/`, `?` or `#` inside the password
        ("redis://u:p@ss@h/0", "redis://u:***@h/0"),
        ("redis://u:ab/cd@h/0", "redis://u:***@h/0"),
        ("redis://u:ab?cd@h/0", "redis://u:***@h/0"),
        ("redis://u:ab#cd@h", "redis://u:***@h"),
        ("redis://u:pw@h/0?client_name=a@b", "redis://u:***@h/0?client_name=a@b"),
        (
            "Error connecting to redis://a:pw@c:1. Refused.",
            "Error connecting to redis://a:***@c:1. Refused.",
        ),
    ],
)
def test_redacted_hides_every_secret_of_a_url(url: str, safe: str) -> None:
    assert redacted(url) == safe
    assert has_secret(url) == (safe != url)


def test_a_url_without_secrets_is_left_alone() -> None:
    for url in ("redis://h:6379/0?db=1&socket_timeout=3", "unix:///tmp/a@b.sock", "redis://u@h"):
        assert redacted(url) == url
        assert not has_secret(url)


@pytest.mark.redis
def test_connect_failures_never_show_the_secret(
    embedded_redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = embedded_redis_factory(password="the-right-one")
    port = server.port
    urls = [
        f"redis://default:{SECRET}@127.0.0.1:{port}/0",  # wrong password, in the userinfo
        f"redis://127.0.0.1:{port}/0?password={SECRET}",  # wrong password, in the query
        f"redis://127.0.0.1:{port}/0?username={SECRET}&password={SECRET}",
        f"redis://u:{SECRET}@127.0.0.1:1/0?password={SECRET}",  # nobody listens
        f"redis://u:{SECRET}/x@127.0.0.1:{port}/0",  # unescaped `/`: an invalid port
        f"redis://u:{SECRET}#x@127.0.0.1:{port}/0",
        f"http://u:{SECRET}@127.0.0.1:{port}/0?password={SECRET}",  # wrong scheme
    ]
    for url in urls:
        with pytest.raises(RedisUnavailableError) as caught:
            connect(url)
        text = str(caught.value)
        assert SECRET not in text, text
        assert "Pa55" not in text, text  # nor a piece of it
        assert "***" in text, text


@pytest.mark.redis
def test_a_secret_in_the_query_alone_is_used_and_not_shown(
    embedded_redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = embedded_redis_factory(password=SECRET)
    r = connect(f"redis://127.0.0.1:{server.port}/0?password={SECRET}")
    try:
        assert r.ping()
    finally:
        r.close()
    with pytest.raises(RedisUnavailableError, match="needs a password") as caught:
        connect(f"redis://127.0.0.1:{server.port}/0")
    assert SECRET not in str(caught.value)


def test_retry_warnings_and_health_never_show_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """redis-py's own messages hold host and port only, but a message that quoted a URL must
    not carry its password into a log line or `/healthz`."""
    tries = iter(range(3))

    def flaky() -> str:
        if next(tries) < 2:
            url = f"redis://u:{SECRET}@h:1/0?password={SECRET}"
            msg = f"Error connecting to {url}. Connection refused."
            raise ConnectionError(msg)
        return "written"

    class Recorded(Health):
        def __init__(self) -> None:
            super().__init__()
            self.reasons: list[str] = []

        def report(self, token: object, reason: str, *, refusal: bool) -> None:
            self.reasons.append(reason)
            super().report(token, reason, refusal=refusal)

    health = Recorded()
    with caplog.at_level(logging.INFO):
        assert retrying("commands", flaky, lambda: False, health=health) == "written"
    reasons = health.reasons
    assert len(reasons) == 2
    assert all("redis://u:***@h:1/0?password=***" in why for why in reasons), reasons
    assert caplog.records
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Redis unavailable (commands)" in logged
    assert SECRET not in logged
    assert SECRET not in "".join(reasons)
    assert health.problem() is None
