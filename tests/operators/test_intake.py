"""The one reader of input: every bad shape becomes a reason, never an exception (issue 10)."""

import msgspec
import pytest

from operators.events import PageView, Replied, TouchRequest
from operators.intake import EventReader
from operators.policy import load_policy
from tests.harness import T0, Prospect

POLICY = load_policy()
READER = EventReader(POLICY.limits, frozenset(POLICY.sequences))


def line(**fields: object) -> bytes:
    doc = {"id": "e1", "type": "opened", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
    doc.update({"channel": "email"} if fields.get("type", "opened") == "opened" else {})
    doc.update(fields)
    return msgspec.json.encode(doc)


def rejected(raw: bytes) -> str:
    got = READER.read(raw)
    assert isinstance(got, str), got
    return got


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_a_thousand_deep_is_a_reason_not_a_recursion_error(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * 1000 + ("1" if opener != "[" else "") + closer * 1000
    raw = line()[:-1] + b',"extra":' + nested.encode() + b"}"
    assert "nested too deeply" in rejected(raw)


@pytest.mark.parametrize(
    "ts",
    [
        "9999-12-31T23:59:59-05:00",  # overflowed timeutil and quiet_hours
        "0001-01-01T00:00:00Z",  # yielded commands stamped 1970
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",  # the upper bound is exclusive
    ],
)
def test_timestamps_outside_the_configured_range_are_rejected(ts: str) -> None:
    reason = rejected(line(ts=ts))
    assert "outside 2000-01-01 … 2100-01-01" in reason
    assert "`$.ts`" in reason


@pytest.mark.parametrize("ts", ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999Z"])
def test_the_range_edges_inside_are_accepted(ts: str) -> None:
    assert not isinstance(READER.read(line(ts=ts)), str)


def test_an_event_over_the_size_limit_is_rejected_before_it_is_parsed() -> None:
    limit = POLICY.limits.event_bytes
    raw = line(type="page_view", url="/x" + "a" * limit)
    assert rejected(raw).startswith(f"event too large: {len(raw)} bytes")
    # Invalid JSON of the same size is rejected for its size too: nothing parses it.
    assert rejected(b"{" * (limit + 1)).startswith("event too large")


def test_a_byte_order_mark_is_skipped() -> None:
    got = READER.read(b"\xef\xbb\xbf" + line())
    assert not isinstance(got, str)
    assert got.id == "e1"


def test_unknown_sequences_and_empty_lines_are_named() -> None:
    assert "unknown sequence 'nope'" in rejected(line(type="enroll", sequence="nope"))
    assert rejected(b"   ") == "empty event"


def test_long_urls_and_texts_are_truncated_to_their_limits() -> None:
    lim = POLICY.limits
    view = READER.read(line(type="page_view", url="/pricing" + "x" * 10_000))
    assert isinstance(view, PageView)
    assert len(view.url) == lim.url_chars
    assert view.url.startswith("/pricing")
    ask = READER.read(line(type="touch_request", channel="email", campaign="c", topic="t" * 999))
    assert isinstance(ask, TouchRequest)
    assert ask.topic == "t" * lim.text_chars


def test_a_stop_padded_with_whitespace_stays_a_stop() -> None:
    """Cutting the text must never cut a keyword away: it is trimmed before it is cut."""
    raw = line(type="replied", channel="sms", text=" " * 5_000 + "STOP" + "\n" * 5_000)
    reply = READER.read(raw)
    assert isinstance(reply, Replied)
    assert reply.text == "STOP"


def test_a_huge_page_view_no_longer_swells_every_later_command() -> None:
    """The reproduction: a 10 MB url was copied into `context.pages` of every later command."""
    lim = POLICY.limits
    big = msgspec.json.encode(
        {"id": "v", "type": "page_view", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
        | {"url": "/pricing/" + "x" * 3_000}
    )
    view = READER.read(big)
    assert isinstance(view, PageView)
    p = Prospect()
    p.engine.apply(p.state, view)
    commands = p.send("touch_request", T0 + 3_600_000, channel="email", campaign="c")
    encoded = [msgspec.json.encode(r) for r in commands]
    assert encoded
    assert all(len(e) < 2 * lim.url_chars + 1_000 for e in encoded)
