"""The front's request URL is exactly Starlette's (`str(URL(scope=...))`): a Twilio signature is
checked against it, so any difference would refuse genuine callbacks or accept forged URLs."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import URL

from connectors.gateway_http import Incoming


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF, exclude_characters="\x7f"),
    max_size=12,
)
_HOSTS = st.one_of(
    st.none(),
    st.sampled_from(["127.0.0.1:8800", "example.com", "[::1]:443", "a:b:c", "h:99999", ":80"]),
    st.text(  # header bytes are latin-1
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=12,
    ),
)
_SERVERS = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["127.0.0.1", "::1", "gw.local"]), st.sampled_from([80, 443, 8800])),
)


@settings(max_examples=500, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https"]),
    host=_HOSTS,
    server=_SERVERS,
    path=st.one_of(st.sampled_from(["/v1/hooks/twilio/status", "//x", "/a?b#c\\d"]), _TEXT),
    query=st.one_of(st.just(b""), st.binary(max_size=20).filter(_utf8), _TEXT.map(str.encode)),
)
def test_the_url_is_starlettes(
    scheme: str, host: str | None, server: tuple[str, int] | None, path: str, query: bytes
) -> None:
    raw_headers = [] if host is None else [(b"host", host.encode("latin-1"))]
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": scheme,
        "server": server,
        "path": path,
        "query_string": query,
        "headers": raw_headers,
    }
    headers = {} if host is None else {"host": host}
    incoming = Incoming(scope, headers, path, query.decode("latin-1"))
    assert incoming.url() == str(URL(scope=scope))
    assert incoming.url() == str(URL(scope=scope))  # the cached origin too
