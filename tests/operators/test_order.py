"""Rule 13: one instant, one decision order (issue 12, item 2).

When several candidate touches of a prospect come due at the same instant, own-action touches
are decided first, then transactional requests, then the rest by priority (sequence steps and
follow-ups at `orchestration.sequence_priority`), then by when each was first due; a request's
priority holds through every deferral.
"""

from typing import Any

import msgspec

from operators.engine import Engine
from operators.order import next_index, rank
from operators.policy import Policy, load_policy
from operators.records import Command, Decision
from operators.state import ProspectState
from operators.state_records import Kind, Pending, Props
from operators.timeutil import format_ts, parse_ts
from tests.harness import T0, D, H, Prospect

NIGHT = parse_ts("2026-03-03T03:00:00Z")  # 22:00 in New York
OPENS = "2026-03-03T13:00:00Z"  # 08:00 in New York: quiet hours end
S = 1000


def _prospect(policy: Policy | None = None) -> Prospect:
    p = Prospect(policy or load_policy())  # the default policy: a 60 s arbitration window
    p.ready("sms", "phone")
    return p


def _at(p: Prospect, ts: str) -> list[tuple[str, str, str | None]]:
    """The decisions of instant `ts`, in the order they were made."""
    return [(d.reason, d.verdict, d.rule) for d in p.decisions if d.ts == ts]


def test_the_own_action_touch_goes_first_when_quiet_hours_open() -> None:
    """The issue's case: a call request and a proposal view at night, both held for 08:00.
    In queue order the call went out, then the text: a call and a text at 08:00."""
    p = _prospect()
    p.send("touch_request", NIGHT, channel="phone", campaign="calls")
    p.send("proposal_view", NIGHT + 120 * S, document="quote")
    p.fire(parse_ts(OPENS))
    assert _at(p, OPENS) == [
        ("trigger:proposal_view", "sent", None),
        ("request:calls", "deferred", "cap.total.day"),
    ]
    assert [(c.channel, c.ts) for c in p.commands] == [("sms", OPENS)]


def test_transactional_requests_go_before_the_rest_and_after_own_actions() -> None:
    p = _prospect()
    p.send("touch_request", NIGHT, channel="phone", campaign="renewal", priority=9)
    p.send("touch_request", NIGHT + 30 * S, channel="sms", campaign="receipt", transactional=True)
    p.send("proposal_view", NIGHT + 120 * S)
    p.fire(parse_ts(OPENS))
    assert _at(p, OPENS) == [
        ("trigger:proposal_view", "sent", None),
        ("request:receipt", "sent", None),  # transactional: no cap, no gap
        ("request:renewal", "deferred", "cap.total.day"),
    ]


def test_priority_holds_through_a_deferral() -> None:
    """The issue's case: a priority-0 LinkedIn request held by the day's cap took the next
    day's slot ahead of a priority-9 renewal held until the same instant."""
    p = _prospect()
    p.send("touch_sent", T0, channel="email")  # a rep's email fills the day
    p.send("touch_request", T0 + H, channel="linkedin", campaign="promo")
    p.send("touch_request", T0 + 2 * H, channel="email", campaign="renewal", priority=9)
    p.fire(T0 + 3 * D)
    slot = format_ts(T0 + D)
    assert _at(p, slot) == [
        ("request:renewal", "sent", None),
        ("request:promo", "deferred", "cap.total.day"),
    ]
    assert [(c.reason, c.ts) for c in p.commands] == [
        ("request:renewal", slot),
        ("request:promo", format_ts(T0 + 2 * D)),
    ]


def _steps_and_requests(policy: Policy) -> Prospect:
    """An sms step, a call request of priority 7 and a text one of priority 3, all held for
    the same opening."""
    p = _prospect(policy)
    p.send("enroll", NIGHT, sequence="sms_first")
    p.send("touch_request", NIGHT + 10 * S, channel="phone", campaign="high", priority=7)
    p.send("touch_request", NIGHT + 20 * S, channel="sms", campaign="low", priority=3)
    p.fire(parse_ts(OPENS))
    return p


def test_a_sequence_step_ranks_at_the_configured_sequence_priority() -> None:
    p = _steps_and_requests(load_policy())  # sequence_priority 5: between the two requests
    assert [(reason, verdict) for reason, verdict, _rule in _at(p, OPENS)] == [
        ("request:high", "sent"),
        ("sequence:sms_first:1", "deferred"),
        ("request:low", "deferred"),
    ]
    policy = load_policy()
    orchestration = msgspec.structs.replace(policy.orchestration, sequence_priority=9)
    first = _steps_and_requests(msgspec.structs.replace(policy, orchestration=orchestration))
    assert [reason for reason, _verdict, _rule in _at(first, OPENS)] == [
        "sequence:sms_first:1",
        "request:high",
        "request:low",
    ]


def test_equal_priorities_go_by_when_each_was_first_due() -> None:
    """Two requests of one priority held by the day's cap until one instant: the one that was
    due first goes, though the other was held last... and first in the queue."""
    p = _prospect()
    p.send("touch_sent", T0, channel="email")
    p.send("touch_request", T0 + H, channel="email", campaign="older", priority=4)
    p.send("touch_request", T0 + 2 * H, channel="email", campaign="newer", priority=4)
    p.fire(T0 + D)
    assert [c.reason for c in p.commands] == ["request:older"]


def _item(
    kind: Kind,
    props: Props = Props.NONE,
    *,
    priority: int = 0,
    first: int = 0,
    due: int = 100,
) -> Pending:
    return Pending(0, kind, "r", None, "c", first, priority, props, None, 0, due)


def test_rank_orders_own_action_transactional_priority_then_first() -> None:
    request, held = Kind.REQUEST, Props.HELD
    items = {
        "low": _item(request, held, priority=1),
        "step": _item(Kind.STEP, first=5),
        "follow-up": _item(Kind.FOLLOW_UP, first=6),
        "high, later": _item(request, held, priority=9, first=50),
        "high": _item(request, Props.ARBITRATING, priority=9, first=40),
        "transactional": _item(request, held | Props.TRANSACTIONAL, first=90),
        "own action": _item(Kind.TRIGGER, held, first=99),
    }
    ordered = sorted(items, key=lambda name: rank(items[name], 5))
    assert ordered == [
        "own action",
        "transactional",
        "high",
        "high, later",
        "step",
        "follow-up",
        "low",
    ]


def test_next_index_looks_only_at_the_earliest_instant_and_keeps_queue_order_on_ties() -> None:
    pending = [
        _item(Kind.REQUEST, due=100),
        _item(Kind.REQUEST, due=100),  # a tie: the first in the queue keeps its turn
        _item(Kind.TRIGGER, due=101),  # better ranked, but not due yet
    ]
    assert next_index(pending, 5) == 0
    pending.insert(1, _item(Kind.REQUEST, Props.TRANSACTIONAL, due=100))
    assert next_index(pending, 5) == 1


def test_fire_next_fires_one_item_and_drop_next_drops_exactly_that_one() -> None:
    engine = Engine(load_policy())
    twins: list[ProspectState] = []
    for _ in range(2):
        p = _prospect()
        p.send("touch_request", NIGHT, id="call", channel="phone", campaign="c", priority=9)
        p.send("proposal_view", NIGHT + 120 * S, id="view")
        twins.append(p.state)
    fired, dropped = twins
    out: list[Any] = []
    engine.fire_next(fired, out)
    [item] = engine.drop_next(dropped)
    assert item.reason == "trigger:proposal_view"  # the own-action touch, not the head of the queue
    assert [r.reason for _t, _s, r in out if isinstance(r, Command)] == ["trigger:proposal_view"]
    assert fired.pending == dropped.pending  # the call is left, in both
    assert [d.reason for _t, _s, d in out if isinstance(d, Decision)] == ["trigger:proposal_view"]
