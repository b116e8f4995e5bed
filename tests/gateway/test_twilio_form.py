"""`twilio.parse_form_pairs` reads a form exactly as `urllib.parse.parse_qsl` does: the pairs the
signature is computed over must not differ by one byte from what the SDK's users would read."""

import urllib.parse

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.providers.twilio import parse_form_pairs, parse_pairs

# bytes a form body is made of, and the ones that need care: escapes, bad escapes, `+`, `=`,
# `&`, empty parts, bytes that are not UTF-8
_PIECES = st.sampled_from(
    [b"a", b"Z", b"0", b"=", b"&", b"&&", b"+", b"%", b"%2B", b"%20", b"%3D", b"%26", b"%C3%A9",
     b"%E2%9C%93", b"%ZZ", b"%4", b"%FF", b"\xc3\xa9", b"\xff", b" ", b";", b"MessageSid"]
)  # fmt: skip


def _reference(body: bytes) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=24).map(b"".join))
def test_same_pairs_as_parse_qsl(body: bytes) -> None:
    assert parse_form_pairs(body) == _reference(body)


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=24).map(b"".join))
def test_a_query_string_as_starlette_reads_it(raw: bytes) -> None:
    text = raw.decode("latin-1")  # an ASGI query string, as Starlette decodes it
    assert parse_pairs(text) == urllib.parse.parse_qsl(text, keep_blank_values=True)


def test_a_real_callback() -> None:
    body = urllib.parse.urlencode(
        [("Body", "Stop ✓ 100% & more"), ("From", "+14155550100"), ("Body", ""), ("To", "a=b")]
    ).encode()
    assert parse_form_pairs(body) == _reference(body)
    assert parse_form_pairs(body)[0] == ("Body", "Stop ✓ 100% & more")


# `%2B` next to what could make a wrong unescape of it show: a `+` (a space, unlike `%2B`), bare
# `%` and `2B` around it, the lower-case escape, and non-ASCII text (the `%2B`-only fast path
# does not look at the rest of the text)
_PLUS_PIECES = st.sampled_from(
    [b"%2B", b"%2B", b"+", b"%", b"2B", b"%2b", b"B", b"=", b"&", b"a", b"\xc3\xa9", b"\xff",
     b"%C3%A9", b"%20"]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PLUS_PIECES, max_size=16).map(b"".join))
def test_plus_escapes_as_parse_qsl_reads_them(body: bytes) -> None:
    assert parse_form_pairs(body) == _reference(body)
    text = body.decode("latin-1")
    assert parse_pairs(text) == urllib.parse.parse_qsl(text, keep_blank_values=True)


def test_a_callback_of_numbers() -> None:
    """Phone numbers only (the usual Twilio form): `%2B` is `+`, a `+` is a space."""
    body = b"To=%2B14155550111&From=%2B14155550100&Body=a+b%2B&x=%2B%2B"
    assert parse_form_pairs(body) == _reference(body)
    assert parse_form_pairs(body)[2] == ("Body", "a b+")
