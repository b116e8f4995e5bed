"""Priority: requests competing inside the arbitration window are decided by priority."""

from operators.policy import load_policy
from operators.records import Command
from tests.harness import T0, D, Prospect

S = 1000


def _prospect() -> Prospect:
    p = Prospect(load_policy())  # the default policy: a 60 s arbitration window
    p.ready()
    return p


def test_the_higher_priority_request_gets_the_last_capacity_of_the_day() -> None:
    p = _prospect()
    assert p.send("touch_request", T0, channel="email", campaign="newsletter", priority=1) == []
    p.send("touch_request", T0 + 30 * S, channel="email", campaign="renewal", priority=8)
    out = p.send("page_view", T0 + 61 * S, url="/blog")  # any later event closes the window
    [sent] = [r for r in out if isinstance(r, Command)]
    assert (sent.reason, sent.ts) == ("request:renewal", "2026-03-02T15:01:00Z")
    held = [r for r in out if not isinstance(r, Command) and r.verdict == "deferred"]
    assert [(d.reason, d.rule) for d in held] == [("request:newsletter", "cap.total.day")]


def test_equal_priorities_keep_arrival_order() -> None:
    p = _prospect()
    p.send("touch_request", T0, channel="email", campaign="first", priority=5)
    p.send("touch_request", T0 + S, channel="email", campaign="second", priority=5)
    p.fire(T0 + 60 * S)
    assert [c.reason for c in p.commands] == ["request:first"]


def test_a_request_after_the_window_starts_a_new_one() -> None:
    p = _prospect()
    p.send("touch_request", T0, channel="email", campaign="a", priority=0)
    p.send("touch_request", T0 + 2 * D, channel="email", campaign="b", priority=9)
    assert [c.reason for c in p.commands] == ["request:a"]  # decided when its window closed
    p.fire(T0 + 2 * D + 60 * S)
    assert [c.ts for c in p.commands] == ["2026-03-02T15:01:00Z", "2026-03-04T15:01:00Z"]


def test_transactional_requests_never_wait() -> None:
    p = _prospect()
    [command, _decision] = p.send(
        "touch_request", T0, channel="email", campaign="receipt", transactional=True
    )
    assert isinstance(command, Command)
    assert command.ts == "2026-03-02T15:00:00Z"


def test_triggers_never_wait_for_arbitration() -> None:
    p = _prospect()
    p.send("touch_request", T0, channel="email", campaign="c", priority=3)
    out = p.send("page_view", T0 + 10 * S, url="/pricing")
    assert [(c.channel, c.ts) for c in out if isinstance(c, Command)] == [
        ("chat", "2026-03-02T15:00:10Z")
    ]
