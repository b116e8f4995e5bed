"""Issue 15 in the engine: behaviour moves the channel, `auto` touches wait for the best channel
when it opens soon, and every engine-chosen touch says why (`context.preference`)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec

from operators.policy import Policy, load_policy, parse_policy
from operators.preference import WAIT, estimates, priors_for
from operators.records import ENCODER, Command, Decision
from operators.state import decode_state, encode_state
from operators.timeutil import format_ts, to_ms
from tests.harness import T0, D, H, M, Prospect, immediate, request

NY = ZoneInfo("America/New_York")
# 22:00 in New York on Monday 2026-03-02 (EST): sms and phone are in quiet hours until 08:00.
NIGHT = to_ms(datetime(2026, 3, 2, 22, 0, tzinfo=NY))
MORNING = to_ms(datetime(2026, 3, 3, 8, 0, tzinfo=NY))  # the reference opening, by zoneinfo


def _policy(toml: str = "", **preference: object) -> Policy:
    base = parse_policy(toml) if toml else load_policy()
    pref = msgspec.structs.replace(base.preference, **preference)
    return immediate(msgspec.structs.replace(base, preference=pref))


def _native(policy: Policy | None = None, segment: str = "digital_native") -> Prospect:
    p = Prospect(policy or _policy())
    p.ready("sms", "phone")
    p.send("profile", T0 - D, segment=segment)
    return p


# -- behaviour chooses the channel ---------------------------------------------------------------


def test_an_answer_on_another_channel_moves_the_next_auto_touch_there() -> None:
    """An adopter (email first) emailed answers by text: the next `auto` touch is a text, and
    its command says the prospect's own evidence chose it. Without the evidence: email."""
    for weight in (0.0, _policy().preference.chosen_weight):
        p = _native(_policy(chosen_weight=weight), segment="digital_adopter")
        request(p, T0, "auto")
        assert p.commands[-1].channel == "email"
        p.send("replied", T0 + 20 * M, channel="sms", text="text me instead", sentiment="neutral")
        request(p, T0 + 2 * D, "auto")
        last = p.commands[-1]
        if weight == 0:
            assert last.channel == "email"
            continue
        assert last.channel == "sms"
        why = last.context.preference
        assert isinstance(why, msgspec.Struct)
        assert (why.basis, why.hits, why.misses, why.weight) == ("evidence", 0, 0, weight)
        assert why.ranking[0] == "sms"
        assert why.estimate == round(
            estimates(p.state.answers, "digital_adopter", p.engine.policy.preference)[1], 4
        )


def test_a_chat_the_prospect_opens_is_evidence_for_chat() -> None:
    p = _native(segment="traditional")
    before = estimates(p.state.answers, "traditional", p.engine.policy.preference)
    p.send("chat_started", T0)
    after = estimates(p.state.answers, "traditional", p.engine.policy.preference)
    chat = 3
    assert after[chat] > before[chat]
    assert [a for i, a in enumerate(after) if i != chat] == [
        b for i, b in enumerate(before) if i != chat
    ]


def test_a_negative_reply_is_no_choice_of_channel() -> None:
    p = _native(segment="traditional")
    p.send("replied", T0, channel="sms", text="do not text me", sentiment="negative")
    assert p.state.answers is None or sum(p.state.answers) == 0


def test_an_explicit_preference_beats_the_strongest_behaviour() -> None:
    p = _native(segment="traditional")
    for i in range(10):
        p.send("replied", T0 + i * M, channel="sms", text="ok", sentiment="neutral")
    p.send("preference", T0 + H, channel="sms", stance="avoid")
    request(p, T0 + 2 * D, "auto")
    assert p.commands[-1].channel != "sms"


# -- waiting for the right channel ---------------------------------------------------------------


def test_a_night_auto_request_waits_for_the_morning_text() -> None:
    """A native's best channel (sms) is in quiet hours: the request waits for it rather than
    taking LinkedIn now, says so, and goes out as a text when the window opens."""
    p = _native()
    held = request(p, NIGHT, "auto")
    assert (held.verdict, held.channel, held.rule) == ("deferred", "sms", WAIT)
    assert held.until == format_ts(MORNING)
    assert not isinstance(held.preference, msgspec.UnsetType)
    assert (held.preference.basis, held.preference.held) == ("segment", "quiet_hours")
    fired = p.fire(MORNING + H)
    [cmd] = [r for r in fired if isinstance(r, Command)]
    assert (cmd.channel, cmd.ts) == ("sms", format_ts(MORNING))
    assert not isinstance(cmd.context.preference, msgspec.UnsetType)
    assert cmd.context.preference.basis == "segment"


def test_without_waiting_the_night_request_takes_the_next_channel_now() -> None:
    """`wait_hours = 0` is the behaviour before issue 15: the best channel allowed now."""
    p = _native(_policy(wait_hours=0))
    request(p, NIGHT, "auto")
    [cmd] = p.commands
    assert (cmd.channel, cmd.ts) == ("linkedin", format_ts(NIGHT))
    assert not isinstance(cmd.context.preference, msgspec.UnsetType)
    assert (cmd.context.preference.basis, cmd.context.preference.held) == (
        "fallback",
        "quiet_hours",
    )


def test_no_wait_beyond_wait_hours() -> None:
    hours_to_open = (MORNING - NIGHT) // H
    p = _native(_policy(wait_hours=hours_to_open - 1))
    request(p, NIGHT, "auto")
    assert p.commands[-1].channel == "linkedin"
    p = _native(_policy(wait_hours=hours_to_open))
    assert request(p, NIGHT, "auto").rule == WAIT


def test_no_wait_when_the_best_is_not_clearly_better() -> None:
    """sms 0.40 against email 0.38: a 5 % edge, under `wait_min_gain`; 0.45 is over it."""
    for sms, waits in ((0.40, False), (0.45, True)):
        toml = f"[preference.priors]\nclose = {{ sms = {sms}, email = 0.38 }}\n"
        cfg = _policy(toml).preference
        assert (sms >= 0.38 * (1 + cfg.wait_min_gain)) is waits
        assert priors_for("close", cfg)[1] == sms
        p = _native(_policy(toml), segment="close")
        decision = request(p, NIGHT, "auto")
        assert (decision.rule == WAIT) is waits
        if not waits:
            assert p.commands[-1].channel == "email"


def test_a_stated_preference_waits_even_against_the_estimates() -> None:
    p = _native(segment="traditional")  # email 0.52, sms 0.19
    p.send("preference", T0 - D, channel="sms", stance="prefer")
    held = request(p, NIGHT, "auto")
    assert (held.rule, held.channel) == (WAIT, "sms")
    [cmd] = [r for r in p.fire(MORNING) if isinstance(r, Command)]
    assert cmd.channel == "sms"
    assert not isinstance(cmd.context.preference, msgspec.UnsetType)
    assert cmd.context.preference.basis == "stance.prefer"


def test_waits_for_its_own_channel_cap_to_free_within_wait_hours() -> None:
    """Two texts this week fill the sms cap; the first leaves the window 6 h after the request:
    the request waits for it. A day and a half before, it takes LinkedIn at once."""
    p = _native()
    request(p, T0, "sms")
    request(p, T0 + D + H, "sms")
    frees = T0 + 7 * D
    early = request(p, frees - 36 * H, "auto")
    assert (early.verdict, early.channel) == ("sent", "linkedin")
    held = request(p, frees + D - 6 * H, "auto")  # the LinkedIn touch holds the gap until then
    assert held.verdict == "deferred"
    q = _native()
    request(q, T0, "sms")
    request(q, T0 + D + H, "sms")
    held = request(q, frees - 6 * H, "auto")
    assert (held.verdict, held.channel, held.rule, held.until) == (
        "deferred",
        "sms",
        WAIT,
        format_ts(frees),
    )
    assert not isinstance(held.preference, msgspec.UnsetType)
    assert held.preference.held == "cap.sms.week"


def test_a_preferred_sequence_step_waits_too() -> None:
    toml = '[sequences.pick]\nsteps = [{ after_hours = 0, channel = "preferred", topic = "hi" }]\n'
    p = _native(_policy(toml))
    out = p.send("enroll", NIGHT, sequence="pick")
    [held] = [r for r in out if isinstance(r, Decision)]
    assert (held.verdict, held.channel, held.rule) == ("deferred", "sms", WAIT)
    [cmd] = [r for r in p.fire(MORNING) if isinstance(r, Command)]
    assert (cmd.channel, cmd.reason) == ("sms", "sequence:pick:1")


# -- the record says why; other records stay as they were ----------------------------------------


def test_only_engine_chosen_touches_carry_a_preference() -> None:
    p = _native()
    request(p, T0, "email")
    request(p, T0 + 2 * D, "auto")
    fixed, chosen = p.commands
    assert b'"preference"' not in ENCODER.encode(fixed)
    assert b'"preference"' not in ENCODER.encode(p.decisions[0])
    assert b'"preference":{"basis":"segment"' in ENCODER.encode(chosen)
    assert b'"preference":{"basis":"segment"' in ENCODER.encode(p.decisions[-1])
    assert msgspec.json.decode(ENCODER.encode(chosen), type=Command) == chosen


def test_a_replay_is_byte_identical_and_the_state_round_trips() -> None:
    def run() -> tuple[bytes, bytes]:
        p = _native()  # explicit ids: the harness numbers the others from a global counter
        request(p, NIGHT, "auto", id="r1")
        p.send("replied", NIGHT + H, id="r2", channel="sms", text="hi", sentiment="positive")
        p.fire(MORNING + D)
        request(p, MORNING + 2 * D, "auto", id="r3")
        return b"\n".join(ENCODER.encode(r) for r in p.records), encode_state(p.state)

    first, again = run(), run()
    assert first[0] == again[0]  # (the states' dedupe rings differ: the harness's ids do)
    assert encode_state(decode_state(first[1])) == first[1]


def test_a_checkpoint_from_before_behaviour_decodes_and_learns_on() -> None:
    """`answers` written before issue 15 holds only (hits, misses): it decodes, keeps its
    counts, and the first behavioural evidence extends it."""
    p = _native(segment="traditional")
    old = (1, 2, 0, 3, 0, 0, 0, 0, 0, 1)  # as an older checkpoint holds it
    p.state.answers = old
    p.state = decode_state(encode_state(p.state))
    assert p.state.answers == old
    p.send("replied", T0, channel="sms", text="text me", sentiment="positive")
    assert p.state.answers is not None
    assert p.state.answers[: len(old)] == old
    assert len(p.state.answers) > len(old)
