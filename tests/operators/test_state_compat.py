"""Checkpoints written before rules 13 and 14 still decode and behave (issue 12, item 2).

ProspectState is checkpointed to Redis as MessagePack, positionally (`array_like`). Rules 13 and
14 added two fields at the end (`paused_until`, `shifted`: older arrays decode with their
defaults) and flag bits (`FLAG_PAUSED`, `FLAG_ANSWERED`; a request's priority now stays in the
flags through deferrals, at `PRIORITY_SHIFT` as before); the 7-tuple `Pending` is unchanged.
The bytes below were written by the code of bd96afc (35 fields), from the events named.
"""

import msgspec

from operators.engine import Engine
from operators.policy import load_policy
from operators.records import Command, Decision
from operators.state import (
    FLAG_ARBITRATE,
    FLAG_HELD,
    PRIORITY_MASK,
    PRIORITY_SHIFT,
    ProspectState,
    decode_state,
    encode_state,
)
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
    assert [(p[0], p[2], p[5]) for p in state.pending or ()] == [
        (OPENS, "request:calls", 20),  # FLAG_DEFERRABLE | FLAG_HELD: its priority was dropped
        (OPENS, "trigger:proposal_view", 17),  # FLAG_EXEMPT | FLAG_HELD
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
    assert window[5] & (FLAG_ARBITRATE | PRIORITY_MASK) == FLAG_ARBITRATE | 7 << PRIORITY_SHIFT
    engine.apply(state, event("replied", T0 + 20 * H, channel="email", sentiment="out_of_office"))
    renewal = next(p for p in state.pending or () if p[2] == "request:renewal")
    assert renewal[5] & (FLAG_HELD | PRIORITY_MASK) == FLAG_HELD | 7 << PRIORITY_SHIFT  # kept
    assert state.shifted == {"basic": 7 * D}
    moved = {p[2]: p[0] for p in state.pending or ()}
    assert moved["sequence:basic:2"] == step[0] + 7 * D
    assert moved["escalation:sms"] == follow_up[0] + 7 * D
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


def test_a_new_checkpoint_decodes_in_the_old_layout_too() -> None:
    """A rollback reads a new checkpoint: the old 35-field struct ignores the trailing fields."""
    state = decode_state(SEQUENCE_STATE)
    engine = Engine(load_policy())
    engine.apply(state, event("replied", T0 + 20 * H, channel="email", sentiment="out_of_office"))
    fields = [(name, object, None) for name in ProspectState.__struct_fields__[:35]]
    old = msgspec.defstruct("Old", fields, array_like=True)
    decoded = msgspec.msgpack.decode(encode_state(state), type=old)
    assert decoded.pending == [list(p) for p in state.pending or ()]  # type: ignore[attr-defined]
