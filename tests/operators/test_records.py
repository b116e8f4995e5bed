"""The named records of a prospect's state (issue 11): kinds, properties, the old layout."""

import sys

import msgspec
import pytest

from operators.policy import load_policy, parse_policy
from operators.rules import GAP, QUIET_HOURS, Rules
from operators.state_records import (
    AUTO,
    Candidate,
    Enrollment,
    Exempt,
    Kind,
    Pending,
    Props,
    Reply,
    Touch,
    from_legacy,
    legacy_tuple,
    props_of,
    waiting,
    with_props,
)


def _pending(kind: Kind, props: Props = Props.NONE, priority: int = 0) -> Pending:
    step = kind is Kind.STEP
    return Pending(
        channel=AUTO if kind is Kind.REQUEST else 1,
        kind=kind,
        reason="sequence:basic:3" if step else "r",
        topic="t",
        cause="c",
        first=10,
        priority=priority,
        props=props,
        sequence="basic" if step else None,
        step=2 if step else 0,
        due=20,
    )


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize(
    "props",
    [
        Props.NONE,
        Props.HELD,
        Props.TRANSACTIONAL | Props.ARBITRATING,
        Props.HELD | Props.PAUSED | Props.ANSWERED,
    ],
)
def test_every_kind_and_property_survives_the_old_layout(kind: Kind, props: Props) -> None:
    """A rollback's bytes (`legacy_tuple`) migrate back (`from_legacy`) to the same record."""
    item = _pending(kind, props, priority=7 if kind is Kind.REQUEST else 0)
    old = legacy_tuple(item)
    assert len(old) == 7
    assert from_legacy(old) == item


def test_a_step_is_named_by_its_fields_not_its_reason() -> None:
    old = legacy_tuple(_pending(Kind.STEP))
    step = from_legacy(old)
    assert (step.sequence, step.step) == ("basic", 2)  # the reason says `:3`, counted from 1


def test_only_a_trigger_answers_the_prospects_own_action_and_only_it_is_not_deferrable() -> None:
    for kind in Kind:
        c = _pending(kind)
        assert bool(c.exempt & Exempt.OWN_ACTION) == (kind is Kind.TRIGGER)
        assert c.deferrable == (kind is not Kind.TRIGGER)
    transactional = _pending(Kind.REQUEST, Props.TRANSACTIONAL | Props.HELD)
    assert transactional.exempt == Exempt.TRANSACTIONAL


def test_properties_are_set_and_cleared_as_flags_and_each_combination_is_one_member() -> None:
    p = with_props(Props.TRANSACTIONAL, int(Props.HELD) | int(Props.ARBITRATING))
    assert p == Props.TRANSACTIONAL | Props.HELD | Props.ARBITRATING
    assert with_props(p, drop=int(Props.ARBITRATING)) == Props.TRANSACTIONAL | Props.HELD
    assert props_of(int(p)) is props_of(int(p))
    assert type(p) is Props


def test_waiting_keeps_the_candidate_and_sets_its_due_time() -> None:
    c: Candidate = _pending(Kind.REQUEST, priority=9)
    w = waiting(c, 99, Props.HELD)
    assert (w.due, w.first, w.priority, w.props) == (99, c.first, 9, Props.HELD)
    assert waiting(c, 99, Props.HELD, first=50).first == 50


def test_touch_reply_and_enrollment_keep_the_tuples_bytes_and_are_smaller() -> None:
    """Same MessagePack bytes as the tuples they replaced (old checkpoints decode as they are),
    and fewer bytes in memory (no GC header: `gc=False`)."""
    for record, old in [
        (Touch(1, 2, 3, None), (1, 2, 3, None)),
        (Reply(1, 2, "positive", "ok"), (1, 2, "positive", "ok")),
        (Enrollment("basic", 1, 2, 3, "e"), ("basic", 1, 2, 3, "e")),
    ]:
        assert msgspec.msgpack.encode(record) == msgspec.msgpack.encode(old)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(old), type=type(record)) == record
        assert sys.getsizeof(record) < sys.getsizeof(old)


def test_capacity_rules_are_the_compiled_cap_windows_and_the_gap() -> None:
    """Which holds clear as touches age out is compiled from the caps, not read from names."""
    rules = Rules(load_policy())
    assert GAP in rules.capacity
    assert {"cap.email.week", "cap.total.week", "cap.total.day"} <= rules.capacity
    assert rules.channel_caps <= rules.capacity
    assert "cap.total.week" not in rules.channel_caps
    assert QUIET_HOURS not in rules.capacity  # it defers every touch, capacity or not
    custom = Rules(parse_policy('[[caps]]\nname = "fortnight"\nhours = 336\ntotal = 8\n'))
    assert "cap.total.fortnight" in custom.capacity
