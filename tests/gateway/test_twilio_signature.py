"""The gateway's Twilio check accepts exactly what twilio's own `RequestValidator` accepts.

`gateway_auth.twilio` computes the HMAC itself (once, the second URL variant only on a miss);
here it is held against `RequestValidator.validate` over URLs with and without ports, default
and odd ports, queries, repeated and unicode parameters, and signatures made every way a sender
could make them (each URL variant, the URL as given, wrong, truncated, non-ASCII). Then the
same for requests signed with a SharedKey (`X-Twilio-Webhooks-Signature-Settings`): the
header's algorithm as the SDK reads it (`get_signature_algorithm`), the SharedKey secrets and
never the Auth Token, as twilio's own middleware chooses the secret.
"""

import itertools
import random
from urllib.parse import urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import MultiDict
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

from connectors import gateway_auth as auth
from operators.providers.twilio import first_values

TOKEN = "twilio-5ecret-auth-token-0002"
SHARED = ["shared-5ecret-new", "shared-5ecret-old"]
KEYS = auth.TwilioKeys.of(TOKEN, None)
BOTH = auth.TwilioKeys.of(TOKEN, " ".join(SHARED))
SETTINGS = [
    None,
    "",
    "key=webhooks_sharedkey_01,algorithm=HMAC_SHA256",
    "key=webhooks_sharedkey_01,algorithm=HMAC_SHA1",
    "algorithm=hmac_sha256, key=webhooks_sharedkey_02",
    "key=webhooks_sharedkey_01",  # no algorithm: HMAC_SHA1, as the SDK reads it
    "key=webhooks_sharedkey_01,algorithm=HMAC_SHA512",  # unsupported: refused
]

URLS = [
    "https://hooks.example.com/v1/hooks/twilio/status?prospect=p1",
    "https://hooks.example.com:443/v1/hooks/twilio/status?prospect=p1",
    "https://hooks.example.com:8443/v1/hooks/twilio/status",
    "http://127.0.0.1:8800/v1/hooks/twilio/status?prospect=p%C3%A9&command=c2",
    "http://127.0.0.1/v1/hooks/twilio/messages",
    "http://127.0.0.1:80/v1/hooks/twilio/calls?",
    "https://user@hooks.example.com/v1/hooks/twilio/calls?a=1&a=2#frag",
    "https://hooks.example.com/v1/hooks/twilio/status?bodySHA256=abc",
    "HTTPS://Hooks.Example.com:443/v1/hooks/twilio/status?prospect=p1#frag",
    "https://hooks.example.com/v1/hooks/twilio/status#frag?not=query",
    "https://hooks.example.com/v1/hooks/twilio/status;params?x=1",
    " https://hooks.example.com/v1/hooks/twilio/status?x=1\t",
]

FORMS: list[list[tuple[str, str]]] = [
    [],
    [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+15550001111")],
    [("Body", "héllo ✓"), ("From", "+15550002222"), ("Body", "again"), ("Body", "héllo ✓")],
    [("b", ""), ("a", "2"), ("a", "1"), ("A", "z"), ("ab", "")],
]


def _signatures(url: str, form: list[tuple[str, str]]) -> list[str]:
    sdk = RequestValidator(TOKEN)
    params = MultiDict(form)
    parsed = urlparse(url)
    made = [
        sdk.compute_signature(variant, params)
        for variant in (url, add_port(parsed), remove_port(parsed), url + "x")
    ]
    other = RequestValidator("another-token").compute_signature(url, params)
    return [*made, other, made[0][:-1], made[0] + "=", "", " ", "sïg", "A" * 28]


def test_accepts_exactly_what_the_sdk_accepts() -> None:
    sdk = RequestValidator(TOKEN)
    checked = accepted = 0
    for url, form in itertools.product(URLS, FORMS):
        for signature in _signatures(url, form):
            expected = sdk.validate(url, MultiDict(form), signature.strip())
            expected_check = "ok" if expected else "bad"
            if not signature.strip():
                expected_check = "missing"
            headers = {"x-twilio-signature": signature}
            assert auth.twilio(headers, url, form, KEYS) == expected_check, (url, form, signature)
            first = first_values(form)  # as the gateway passes it
            assert auth.twilio(headers, url, form, KEYS, first) == expected_check, (url, form)
            checked += 1
            accepted += expected
    assert accepted >= len(URLS) * len(FORMS) * 2  # both port variants always pass
    assert checked > accepted


def test_random_forms_agree_with_the_sdk() -> None:
    rng = random.Random(13)
    sdk = RequestValidator(TOKEN)
    alphabet = "aAbZ09 _-+é✓%&="
    for _ in range(300):
        form = [
            (
                "".join(rng.choices(alphabet, k=rng.randint(1, 4))),
                "".join(rng.choices(alphabet, k=rng.randint(0, 5))),
            )
            for _ in range(rng.randint(0, 6))
        ]
        url = rng.choice(URLS)
        variant = rng.choice([url, add_port(urlparse(url)), remove_port(urlparse(url))])
        good = sdk.compute_signature(variant, MultiDict(form))
        for signature in (good, good[::-1]):
            want = "ok" if sdk.validate(url, MultiDict(form), signature) else "bad"
            headers = {"x-twilio-signature": signature}
            assert auth.twilio(headers, url, form, KEYS) == want
            assert auth.twilio(headers, url, form, KEYS, first_values(form)) == want


_URL_PIECES = st.sampled_from(
    ["http", "https", "HTTPS", "://", "hooks.example.com", "127.0.0.1", ":80", ":443", ":8800",
     ":", "user@", "/v1/hooks/twilio/status", "/", ";p", "?", "prospect=p1", "&", "#", "frag",
     "?", "%20", " ", "\t", "\x01", "é"]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_URL_PIECES, min_size=1, max_size=12).map("".join))
def test_url_variants_are_the_sdks(url: str) -> None:
    try:
        parsed = urlparse(url)
        want = (remove_port(parsed), add_port(parsed))
    except ValueError:  # a port that is not a number: the SDK raises; the check says "bad"
        with pytest.raises(ValueError, match=r"[Pp]ort"):
            auth._url_variants(url)
        assert auth.twilio({"x-twilio-signature": "x"}, url, [], KEYS) == "bad"
        return
    assert auth._url_variants(url) == want
    assert auth._url_variants(url) == want  # and again, from the cache


def test_missing_header() -> None:
    assert auth.twilio({}, URLS[0], [], KEYS) == "missing"


def _sdk_accepts(settings: str | None, url: str, form: list[tuple[str, str]], sig: str) -> bool:
    """twilio's own choice: with a settings header, the header's algorithm and the SharedKey
    secrets (any of them); without one, the Auth Token and HMAC-SHA1."""
    params = MultiDict(form)
    if not settings:
        return bool(RequestValidator(TOKEN).validate(url, params, sig))
    algorithm = get_signature_algorithm(settings)
    return any(RequestValidator(key).validate(url, params, sig, algorithm) for key in SHARED)


def test_shared_key_signatures_agree_with_the_sdk() -> None:
    made_by = [(secret, algorithm) for secret in [TOKEN, *SHARED, "another-secret"]
               for algorithm in (HMAC_SHA1, HMAC_SHA256)]  # fmt: skip
    checked = accepted = 0
    for url, form, header in itertools.product(URLS, FORMS[1:], SETTINGS):
        parsed = urlparse(url)
        for (secret, algorithm), variant in itertools.product(
            made_by, (url, add_port(parsed), remove_port(parsed))
        ):
            signature = RequestValidator(secret).compute_signature(
                variant, MultiDict(form), algorithm
            )
            headers = {"x-twilio-signature": signature}
            if header is not None:
                headers[auth.SIGNATURE_SETTINGS_HEADER] = header
            want = "ok" if _sdk_accepts(header, url, form, signature) else "bad"
            assert auth.twilio(headers, url, form, BOTH) == want, (url, header, secret)
            checked += 1
            accepted += want == "ok"
    assert accepted >= len(URLS) * (len(FORMS) - 1) * 4  # each settings' own secret, 2 ports
    assert checked > 2 * accepted


def test_shared_key_request_without_shared_keys_configured() -> None:
    """Signed with a SharedKey, but only the Auth Token is set: refused, and flagged for a
    log line; the Auth Token never verifies a request that names a SharedKey."""
    url, form = URLS[0], FORMS[1]
    for secret in (SHARED[0], TOKEN):
        signature = RequestValidator(secret).compute_signature(url, MultiDict(form), HMAC_SHA256)
        headers = {"x-twilio-signature": signature, auth.SIGNATURE_SETTINGS_HEADER: SETTINGS[2]}
        assert auth.twilio(headers, url, form, KEYS) == "bad"
        assert auth.twilio_shared_key_unset(headers, KEYS)
        assert not auth.twilio_shared_key_unset(headers, BOTH)
    only_shared = auth.TwilioKeys.of(None, SHARED[1])
    plain = {"x-twilio-signature": RequestValidator(TOKEN).compute_signature(url, MultiDict(form))}
    assert auth.twilio(plain, url, form, only_shared) == "bad"
    assert not auth.twilio_shared_key_unset(plain, only_shared)
