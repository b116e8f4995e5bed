"""The gateway's Twilio check accepts exactly what twilio's own `RequestValidator` accepts.

`gateway_auth.twilio` computes the HMAC itself (once, the second URL variant only on a miss);
here it is held against `RequestValidator.validate` over URLs with and without ports, default
and odd ports, queries, repeated and unicode parameters, and signatures made every way a sender
could make them (each URL variant, the URL as given, wrong, truncated, non-ASCII).
"""

import itertools
import random
from urllib.parse import urlparse

from starlette.datastructures import MultiDict
from twilio.request_validator import RequestValidator, add_port, remove_port

from connectors import gateway_auth as auth

TOKEN = "twilio-5ecret-auth-token-0002"

URLS = [
    "https://hooks.example.com/v1/hooks/twilio/status?prospect=p1",
    "https://hooks.example.com:443/v1/hooks/twilio/status?prospect=p1",
    "https://hooks.example.com:8443/v1/hooks/twilio/status",
    "http://127.0.0.1:8800/v1/hooks/twilio/status?prospect=p%C3%A9&command=c2",
    "http://127.0.0.1/v1/hooks/twilio/messages",
    "http://127.0.0.1:80/v1/hooks/twilio/calls?",
    "https://user@hooks.example.com/v1/hooks/twilio/calls?a=1&a=2#frag",
    "https://hooks.example.com/v1/hooks/twilio/status?bodySHA256=abc",
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
            assert auth.twilio(headers, url, form, TOKEN) == expected_check, (url, form, signature)
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
            assert auth.twilio({"x-twilio-signature": signature}, url, form, TOKEN) == want


def test_missing_header() -> None:
    assert auth.twilio({}, URLS[0], [], TOKEN) == "missing"
