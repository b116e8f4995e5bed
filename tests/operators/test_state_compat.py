"""Checkpoints written by older code still decode and behave (issues 12 and 11).

ProspectState is checkpointed to Redis as MessagePack, positionally (`array_like`). Rules 13 and
14 added two fields at the end (`paused_until`, `shifted`: older arrays decode with their
defaults) and flag bits to the then 7-tuple `Pending` (PAUSED, ANSWERED; a request's priority
kept in the flags through deferrals). Issue 11 named the records: touches, replies and
enrollments kept their arity and order, so they decode unchanged; a pending item is now a
`Pending` Struct of 11 fields (kind, priority and properties apart), and an old 7-tuple is
migrated when the state is read (`operators.state_legacy`). `NIGHT_STATE` and `SEQUENCE_STATE`
were written by the code of bd96afc (35 fields), `EVERY_KIND_STATE` by caa4a0d (37 fields),
from the events named.
"""

import hashlib

import msgspec
import pytest

from operators.engine import Engine
from operators.events import CHANNELS
from operators.policy import load_policy
from operators.records import ENCODER, Command, Decision
from operators.state import ProspectState, decode_state, encode_state
from operators.state_legacy import encode_legacy
from operators.state_records import AUTO, Kind, Props
from operators.timeutil import format_ts, parse_ts
from tests.harness import T0, D, H, event

# Profile America/New_York and sms, phone consent; at 22:00 New York time (2026-03-03T03:00Z) a
# phone request (campaign "calls", id "call"), then 2 minutes later a proposal view (id "view"):
# both held for the 08:00 opening, the call first in the queue.
NIGHT_STATE = bytes.fromhex(
    "dc0023a170cf0000019cb1a5344002c4289f6566910330ed1baece687edbad36a20e0e4f44492a7a12da2ad2"
    "83ad3e175f2c622af1d043f3afc09297cf0000019cb3c8b08002ad726571756573743a63616c6c73c0a46361"
    "6c6c14cf0000019cb1a449e097cf0000019cb3c8b08001b5747269676765723a70726f706f73616c5f766965"
    "77a571756f7465a47669657711cf0000019cb1a5344006000000c2c2000000ffffb0416d65726963612f4e65"
    "775f596f726bc0c0c0c0c0c00000000000c2930000cf0000019cb1a53440c0c0c0c0"
)
# Profile America/New_York and sms, phone consent; enroll basic at T0 (id "b4": its intro went
# out), the intro opened at T0 + 1 h (id "b5": an sms follow-up due at T0 + 49 h), a priority-7
# email request at T0 + 2 h (id "b6") in its arbitration window; step 2 due at T0 + 2 days.
SEQUENCE_STATE = bytes.fromhex(
    "dc0023a170cf0000019caf7e0e8002c430992e9a7e321efcda3feb5270a374a9ef6b84688fa8bf89b92ce4be"
    "6fd22232a29da171c91204cf7ba51ac3e513e4c3c39194cf0000019caf10318000cf38930b64d63ef851a569"
    "6e74726f9397cf0000019caf7ef8e000af726571756573743a72656e6577616cc0a26236cd0724cf0000019c"
    "af7ef8e097cf0000019cb95ce98000b073657175656e63653a62617369633a32a576616c7565a262340ccf00"
    "00019cb95ce98097cf0000019cb993d80001ae657363616c6174696f6e3a736d73a5696e74726fd920346136"
    "386161373537626265356533616164386632323932303439313562383844cf0000019cb993d80006000000c2"
    "c2000000ffffb0416d65726963612f4e65775f596f726bc0c0c0c0c09195a5626173696301cf0000019caf10"
    "3180cf0000019caf103180a26234cf0000019caf47200000000000c2c0c09a0100000000000000000096ffff"
    "ffffff019200cf0000019caf472000"
)
OPENS = parse_ts("2026-03-03T13:00:00Z")


def _records(engine: Engine, state: ProspectState, until: int) -> list[tuple[str, ...]]:
    out: list[tuple[int, int, Command | Decision]] = []
    engine.fire_due(state, until, out)
    return [
        (r.ts, r.reason, "command" if isinstance(r, Command) else f"{r.verdict} {r.rule}")
        for _t, _s, r in out
    ]


def test_an_old_checkpoint_decodes_with_the_new_fields_at_their_defaults() -> None:
    state = decode_state(NIGHT_STATE)
    assert len(msgspec.msgpack.decode(NIGHT_STATE)) == 35  # the layout of bd96afc
    assert (state.prospect, state.timezone, state.paused_until, state.shifted) == (
        "p",
        "America/New_York",
        0,
        None,
    )
    assert [(p.due, p.reason, p.kind, p.props, p.priority) for p in state.pending or ()] == [
        (OPENS, "request:calls", Kind.REQUEST, Props.HELD, 0),  # old flags 20: its priority
        (OPENS, "trigger:proposal_view", Kind.TRIGGER, Props.HELD, 0),  # was dropped; 17
    ]
    again = decode_state(encode_state(state))
    assert again == state


def test_an_old_checkpoint_is_decided_in_the_new_order() -> None:
    """The queue holds the call first; rule 13 decides the text first and holds the call."""
    state = decode_state(NIGHT_STATE)
    assert _records(Engine(load_policy()), state, OPENS) == [
        ("2026-03-03T13:00:00Z", "trigger:proposal_view", "command"),
        ("2026-03-03T13:00:00Z", "trigger:proposal_view", "sent None"),
        ("2026-03-03T13:00:00Z", "request:calls", "deferred cap.total.day"),
    ]


def test_an_old_checkpoints_steps_follow_ups_and_window_are_paused_and_ranked() -> None:
    state = decode_state(SEQUENCE_STATE)
    engine = Engine(load_policy())
    [window, step, follow_up] = state.pending or []
    assert (window.kind, window.props, window.priority) == (Kind.REQUEST, Props.ARBITRATING, 7)
    assert (step.kind, step.sequence, step.step) == (Kind.STEP, "basic", 1)
    assert follow_up.kind is Kind.FOLLOW_UP
    engine.apply(state, event("replied", T0 + 20 * H, channel="email", sentiment="out_of_office"))
    renewal = next(p for p in state.pending or () if p.reason == "request:renewal")
    assert (renewal.props, renewal.priority) == (Props.HELD, 7)  # the priority is kept
    assert state.shifted == {"basic": 7 * D}
    moved = {p.reason: p.due for p in state.pending or ()}
    assert moved["sequence:basic:2"] == step.due + 7 * D
    assert moved["escalation:sms"] == follow_up.due + 7 * D
    assert [
        (ts, reason)
        for ts, reason, what in _records(engine, state, T0 + 30 * D)
        if what == "command"
    ] == [
        (format_ts(T0 + D), "request:renewal"),
        (format_ts(T0 + 9 * D), "sequence:basic:2"),
        (format_ts(T0 + 10 * D), "escalation:sms"),  # due T0 + 9 d 1 h, held a day by the cap
        (format_ts(T0 + 11 * D), "sequence:basic:3"),  # spacing kept: day 5 + 7
        (format_ts(T0 + 13 * D), "sequence:basic:4"),
        (format_ts(T0 + 16 * D), "sequence:basic:5"),
        (format_ts(T0 + 18 * D), "sequence:basic:6"),
    ]


def test_a_checkpoint_for_a_rollback_decodes_in_the_old_layout() -> None:
    """A rollback past issue 11 reads `encode_legacy`'s bytes: the old 35-field struct ignores
    the trailing fields, and its 7-tuples are the ones the old code wrote."""
    state = decode_state(SEQUENCE_STATE)
    engine = Engine(load_policy())
    engine.apply(state, event("replied", T0 + 20 * H, channel="email", sentiment="out_of_office"))
    fields = [(name, object, None) for name in ProspectState.__struct_fields__[:35]]
    old = msgspec.defstruct("Old", fields, array_like=True)
    decoded = msgspec.msgpack.decode(encode_legacy(state), type=old)
    # The old bits: EXEMPT 1, DEFERRABLE 4, SEQUENCE 8, HELD 16, BRANCH 64, PAUSED 128,
    # priority at bits 8-11.
    old_flags = (4 | 16 | 7 << 8, 8 | 4 | 128, 64 | 4 | 128)  # request, step, follow-up
    assert decoded.pending == [  # type: ignore[attr-defined]
        [p.due, p.channel, p.reason, p.topic, p.cause, flags, p.first]
        for p, flags in zip(state.pending or (), old_flags, strict=True)
    ]
    assert decode_state(encode_legacy(state)) == state  # and it migrates back unchanged


def test_a_new_checkpoint_without_pending_items_decodes_in_the_old_layout_too() -> None:
    """Touches, replies and enrollments kept their arity and order as named records."""
    state = decode_state(SEQUENCE_STATE)
    state.pending = None
    fields = [(name, object, None) for name in ProspectState.__struct_fields__[:35]]
    old = msgspec.defstruct("Old", fields, array_like=True)
    decoded = msgspec.msgpack.decode(encode_state(state), type=old)
    assert decoded.sequences == [  # type: ignore[attr-defined]
        [e.sequence, e.step, e.started, e.last_sent, e.cause] for e in state.sequences or ()
    ]
    assert decoded.touches == [  # type: ignore[attr-defined]
        [t.ts, t.channel, t.command, t.topic] for t in state.touches or ()
    ]


# Written by the code of caa4a0d (37 fields, 7-tuple pending items), from: profile New York with
# phone +13055550123 and sms, phone consent at T0 - 1 day; enroll basic at T0 (its intro went
# out); the intro opened at T0 + 1 h and clicked at T0 + 2 h; a priority-7 email request at
# T0 + 3 h and an `auto` one a minute later (topic pricing), both in the arbitration window; an
# out-of-office email reply at T0 + 5 h ("back soon": every follow-up moves 7 days); at 03:00 New
# York time a transactional sms request, then a proposal view (both held for 08:00).
EVERY_KIND_STATE = bytes.fromhex(
    "dc0025a171cf0000019cb1a449e006c4581e772e25d011b20de7837aa50ee280686a1d8ee949a4246a49c2cb"
    "d8fecab4211ad1b0347ab7d5547940ea489d9ab0000fe6439aff77d19be2661dffdc28b0eacec1da492695d3"
    "47156484441a5dfb5b18be3ea67a15c52e9194cf0000019caf10318000cf91c8a0c650bf2e72a5696e74726f"
    "9697cf0000019cb3c8b08001b3726571756573743a74786e2d72656365697074c0a2713916cf0000019cb1a3"
    "5f8097cf0000019cb3c8b08001b5747269676765723a70726f706f73616c5f76696577a571756f7465a37131"
    "3011cf0000019cb1a449e097cf0000019cb4368d8000af726571756573743a72656e6577616cc0a27136cd07"
    "14cf0000019cafb5e76097cf0000019cb4368d80ffae726571756573743a737072696e67a770726963696e67"
    "a2713714cf0000019cafb6d1c097cf0000019cdd696d8000b073657175656e63653a62617369633a32a57661"
    "6c7565a27133cc8ccf0000019cdd696d8097cf0000019cdda05c0001ae657363616c6174696f6e3a736d73a5"
    "696e74726fd9203535643933393661363264616664636433633630663934353135343438656637cd10c4cf00"
    "00019cdda05c0006000000c2c2000000ffffb0416d65726963612f4e65775f596f726bac2b31333035353535"
    "30313233c0c091b368747470733a2f2f782e6578616d706c652f619400cf0000019cb022da00ad6f75745f6f"
    "665f6f6666696365a96261636b20736f6f6e9195a5626173696301cf0000019caf103180cf0000019caf1031"
    "80a27133cf0000019caf7e0e80cf0000019caf7e0e80000000c2930000cf0000019cb1a449e0c09a01000000"
    "00000000000096ffffffffff019200cf0000019caf7e0e80cf0000019cd42f5e0081a56261736963ce240c84"
    "00"
)
# sha256 of the records the code of caa4a0d wrote firing that state's timers to T0 + 40 days.
EVERY_KIND_RECORDS = "777feba74abb4277503b6d66c5f8fe33f9a6a473ddafc49cd213fe794a593053"


def test_an_old_checkpoint_of_every_kind_decodes_into_named_records_with_the_same_meaning() -> None:
    """Pending items of each kind (trigger, request, step, follow-up) held, paused or answered
    (`SEQUENCE_STATE` has one arbitrating), an enrollment, a reply, a touch: same meaning."""
    raw = msgspec.msgpack.decode(EVERY_KIND_STATE)
    assert len(raw) == 37
    assert all(len(p) == 7 for p in raw[5])
    state = decode_state(EVERY_KIND_STATE)
    pending = [
        (p.reason, p.kind, p.props, p.priority, p.sequence, p.step) for p in state.pending or ()
    ]
    assert pending == [
        ("request:txn-receipt", Kind.REQUEST, Props.TRANSACTIONAL | Props.HELD, 0, None, 0),
        ("trigger:proposal_view", Kind.TRIGGER, Props.HELD, 0, None, 0),
        ("request:renewal", Kind.REQUEST, Props.HELD, 7, None, 0),  # its window closed: held
        ("request:spring", Kind.REQUEST, Props.HELD, 0, None, 0),  # auto, held likewise
        ("sequence:basic:2", Kind.STEP, Props.PAUSED, 0, "basic", 1),
        ("escalation:sms", Kind.FOLLOW_UP, Props.PAUSED | Props.ANSWERED, 0, None, 0),
    ]
    for item, old in zip(state.pending or (), raw[5], strict=True):
        assert (item.due, item.channel, item.topic, item.cause, item.first) == (
            old[0], old[1], old[3], old[4], old[6],
        )  # fmt: skip
    assert state.pending is not None
    assert state.pending[3].channel == AUTO
    [enrollment] = state.sequences or []
    assert (enrollment.sequence, enrollment.step, enrollment.cause) == ("basic", 1, "q3")
    assert enrollment.started == enrollment.last_sent == T0
    assert state.last_reply is not None
    assert (state.last_reply.sentiment, state.last_reply.text) == ("out_of_office", "back soon")
    [touch] = state.touches or []
    assert (touch.ts, CHANNELS[touch.channel], touch.topic) == (T0, "email", "intro")
    assert decode_state(encode_state(state)) == state  # written back in the new layout


def test_an_old_checkpoint_of_every_kind_decides_as_the_old_code_did() -> None:
    state = decode_state(EVERY_KIND_STATE)
    out: list[tuple[int, int, Command | Decision]] = []
    Engine(load_policy()).fire_due(state, T0 + 40 * D, out)
    written = b"".join(ENCODER.encode(r) + b"\n" for _t, _s, r in out)
    assert hashlib.sha256(written).hexdigest() == EVERY_KIND_RECORDS


def test_a_checkpoint_in_neither_layout_is_refused_with_the_current_layouts_reason() -> None:
    raw = msgspec.msgpack.decode(EVERY_KIND_STATE)
    raw[5][0] = [1, 2, 3]  # a pending item of neither 7 nor 11 fields
    with pytest.raises(msgspec.ValidationError, match=r"length 11.*at `\$\[5\]\[0\]`"):
        decode_state(msgspec.msgpack.encode(raw))
