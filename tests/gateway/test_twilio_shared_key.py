"""Twilio requests signed with a SharedKey, end to end through a real gateway process.

A Webhook Rule (Twilio's Webhooks configuration API) makes Twilio sign a URL's webhooks with a
SharedKey secret and an algorithm instead of the Auth Token, and name both in
`X-Twilio-Webhooks-Signature-Settings`. The gateway takes the secrets from
`TOUCHFLOW_TWILIO_SHARED_KEYS` (space-separated, so a rotation's old and new key both verify).
"""

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = pytest.mark.redis

NEW, OLD = h.SECRETS["TOUCHFLOW_TWILIO_SHARED_KEYS"].split()
KEY_ID = "webhooks_sharedkey_01jxyzabcdefghjkmnpqrstvw"


def _status(gateway: Gateway, sid: str, **signing: Any) -> tuple[str, bytes, dict[str, str]]:
    params = samples.twilio_status("delivered", MessageSid=sid, SmsSid=sid)
    return h.twilio_request(
        gateway, "/v1/hooks/twilio/status", params, {"prospect": "p-sk"}, **signing
    )


def _ids(client: redis.Redis) -> list[str]:
    return sorted(e["id"] for e in h.stream_events(client))


def test_shared_key_signatures_both_algorithms_and_a_rotation(
    gateway: Gateway, redis_client: redis.Redis
) -> None:
    accepted = []
    for n, (secret, algorithm) in enumerate(
        [(NEW, "HMAC_SHA256"), (OLD, "HMAC_SHA256"), (NEW, "HMAC_SHA1")]
    ):
        sid = f"SMshared{n:026d}"
        answer = gateway.post(*_status(gateway, sid, shared=(KEY_ID, secret, algorithm)))
        assert answer.status_code == 200, (algorithm, answer.text)
        assert answer.headers["content-type"].startswith("text/xml")
        accepted.append(f"twilio:{sid}.delivered:delivered")
    assert _ids(redis_client) == sorted(accepted)


@pytest.mark.parametrize(
    "case", ["auth token with the header", "shared key without the header", "algorithm unknown"]
)
def test_shared_key_refusals(gateway: Gateway, redis_client: redis.Redis, case: str) -> None:
    if case == "auth token with the header":  # the header names a SharedKey: the token is no key
        path, body, headers = _status(gateway, "SMrefused1")
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key={KEY_ID},algorithm=HMAC_SHA1"
    elif case == "shared key without the header":
        path, body, headers = _status(gateway, "SMrefused2", shared=(KEY_ID, NEW, "HMAC_SHA1"))
        del headers["X-Twilio-Webhooks-Signature-Settings"]
    else:
        path, body, headers = _status(gateway, "SMrefused3", shared=(KEY_ID, NEW, "HMAC_SHA256"))
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key={KEY_ID},algorithm=HMAC_SHA512"
    answer = gateway.post(path, body, headers)
    assert answer.status_code == 401, answer.text
    assert not h.stream_events(redis_client)
    assert not h.dead_letters(redis_client)


def test_only_shared_keys_set(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The endpoints are on with only the SharedKey secrets (no 404); the Auth Token's
    signature then verifies nothing."""
    secrets = {"TOUCHFLOW_TWILIO_SHARED_KEYS": NEW}
    alone = Gateway(redis_test_url, tmp_path, secrets=secrets).start()
    try:
        plain = alone.post(*_status(alone, "SMplain"))
        assert plain.status_code == 401, plain.text
        signed = alone.post(*_status(alone, "SMsigned", shared=(KEY_ID, NEW, "HMAC_SHA256")))
        assert signed.status_code == 200, signed.text
    finally:
        alone.stop()
    assert _ids(redis_client) == ["twilio:SMsigned.delivered:delivered"]


def test_shared_key_request_when_none_is_set_says_so_in_the_log(
    redis_test_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    secrets = {"TOUCHFLOW_TWILIO_AUTH_TOKEN": h.SECRETS["TOUCHFLOW_TWILIO_AUTH_TOKEN"]}
    token_only = Gateway(redis_test_url, tmp_path, secrets=secrets).start()
    try:
        for n in range(3):
            answer = token_only.post(
                *_status(token_only, f"SMunset{n}", shared=(KEY_ID, NEW, "HMAC_SHA256"))
            )
            assert answer.status_code == 401, answer.text
        assert token_only.post(*_status(token_only, "SMtoken")).status_code == 200
    finally:
        token_only.stop()
    log = token_only.log.read_text()
    assert log.count("TOUCHFLOW_TWILIO_SHARED_KEYS is not set") == 1  # once a minute at most
    assert NEW[:12] not in log
    assert _ids(redis_client) == ["twilio:SMtoken.delivered:delivered"]
