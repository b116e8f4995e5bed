"""Each definition of the scorecard (CONTRACT.md section 8) on a hand-made history."""

import itertools
from pathlib import Path
from typing import Any

import msgspec
import pytest

from operators.engine import command_id
from operators.policy import parse_policy
from operators.scorecard import Counts, ProspectFacts
from operators.scorecard_view import scorecard
from operators.timeutil import DAY_MS, HOUR_MS, format_ts, parse_ts
from tests.report.helpers import card_of, write_events

# Requests decided at once (no arbitration window): the histories read more simply.
POLICY = parse_policy("[requests]\narbitration_seconds = 0\n")
T0 = parse_ts("2026-03-02T15:00:00Z")  # 10:00 in New York
_ids = itertools.count(1)


def ev(kind: str, at: int, prospect: str = "p", **fields: Any) -> dict[str, Any]:
    event = {"id": f"e{next(_ids)}", "type": kind, "prospect": prospect, "ts": format_ts(at)}
    return event | fields


def ready(prospect: str = "p", *channels: str) -> list[dict[str, Any]]:
    """A profile in New York and consent for `channels`, a month before T0."""
    at = T0 - 30 * DAY_MS
    out = [ev("profile", at, prospect, timezone="America/New_York")]
    return out + [ev("consent", at, prospect, channel=c, granted=True) for c in channels]


def request(at: int, channel: str, prospect: str = "p", campaign: str = "c") -> tuple[dict, str]:
    """A touch request and the id of the command it gets if sent."""
    e = ev("touch_request", at, prospect, channel=channel, campaign=campaign)
    return e, command_id(prospect, e["id"], channel, f"request:{campaign}")


def card(tmp_path: Path, events: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return card_of(write_events(tmp_path / "events.jsonl", events), POLICY, **kw)[0]


def ch(c: dict[str, Any], channel: str) -> dict[str, Any]:
    row: dict[str, Any] = c["channels"][channel]
    return row


# -- touches --------------------------------------------------------------------------------------


def test_a_touch_reported_on_the_backup_channel_counts_there(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    events = [
        *ready("p", "sms"),
        req,
        ev("touch_sent", T0 + 60_000, channel="sms", command=cid),
        ev("delivered", T0 + 120_000, channel="sms", command=cid),
    ]
    c = card(tmp_path, events)
    assert ch(c, "email")["touches"] == 0
    assert ch(c, "sms")["touches"] == 1
    assert ch(c, "sms")["delivered"] == 1
    assert ch(c, "sms")["delivery_rate"] == 1.0
    assert c["overall"]["touches"] == 1


def test_delivered_and_opened_before_the_fallback_move_with_it(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    events = [
        req,
        ev("delivered", T0 + 60_000, channel="email", command=cid),
        ev("opened", T0 + 90_000, channel="email", command=cid),
        ev("touch_sent", T0 + 120_000, channel="linkedin", command=cid),
    ]
    c = card(tmp_path, events)
    assert (ch(c, "email")["delivered"], ch(c, "email")["opened"]) == (0, 0)
    assert (ch(c, "linkedin")["delivered"], ch(c, "linkedin")["opened"]) == (1, 1)


def test_touch_failed_releases_the_command_once(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    failed = [ev("touch_failed", T0 + 60_000 * k, channel="email", command=cid) for k in (1, 2)]
    c = card(tmp_path, [req, *failed])
    assert ch(c, "email")["touches"] == 0
    assert c["overall"]["prospects_touched"] == 0
    assert c["overall"]["delivery_rate"] is None  # no touch: no rate


def test_a_callback_before_its_command_names_nothing(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    early = ev("touch_failed", T0 - 60_000, channel="email", command=cid)
    c = card(tmp_path, [early, req])
    assert ch(c, "email")["touches"] == 1


def test_manual_touches_count_and_handoffs_do_not(tmp_path: Path) -> None:
    events = [
        ev("touch_sent", T0, channel="linkedin", by="rep"),
        ev("replied", T0 + HOUR_MS, channel="email", sentiment="positive"),  # a handoff
    ]
    c = card(tmp_path, events)
    assert ch(c, "linkedin")["touches"] == 1
    assert c["overall"]["touches"] == 1  # the handoff (channel rep) is not a touch


def test_delivered_opened_answered_count_distinct_commands(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    call, call_id = request(T0 + 2 * DAY_MS, "phone", campaign="calls")
    events = [
        *ready("p", "phone"),
        req,
        ev("delivered", T0 + 60_000, channel="email", command=cid),
        ev("delivered", T0 + 61_000, channel="email", command=cid),
        ev("opened", T0 + HOUR_MS, channel="email", command=cid),
        ev("opened", T0 + 2 * HOUR_MS, channel="email", command=cid),
        ev("opened", T0 + 3 * HOUR_MS, channel="email"),  # names no command
        call,
        ev("call_outcome", T0 + 2 * DAY_MS + 60_000, outcome="answered", command=call_id),
        ev("call_outcome", T0 + 2 * DAY_MS + 90_000, outcome="answered", command=call_id),
    ]
    c = card(tmp_path, events)
    assert (ch(c, "email")["delivered"], ch(c, "email")["opened"]) == (1, 1)
    assert ch(c, "email")["open_rate"] == 1.0
    assert ch(c, "phone")["answered"] == 1
    assert ch(c, "phone")["answer_rate"] == 1.0


# -- replies and opt-outs -------------------------------------------------------------------------


def test_stop_reported_both_ways_is_one_opt_out_and_no_reply(tmp_path: Path) -> None:
    events = [
        *ready("p", "sms"),
        ev("replied", T0, channel="sms", text=" stop "),
        ev("opt_out", T0 + 1000, channel="sms"),
        *ready("q", "sms"),
        ev("opt_out", T0, "q", channel="sms"),
        ev("opt_out", T0 + 1000, "q", channel="all"),
        ev("do_not_contact", T0 + 2000, "q"),
    ]
    c = card(tmp_path, events)
    assert ch(c, "sms")["opt_outs"] == 2  # p once, q once
    assert ch(c, "sms")["replies"] == 0
    assert c["overall"]["opt_outs"] == 3  # and q's full stop, once
    assert c["overall"]["prospects_replied"] == 0


def test_keywords_and_out_of_office_are_not_replies(tmp_path: Path) -> None:
    events = [
        ev("replied", T0, channel="sms", text="yes"),  # no opt-out before: a real reply
        ev("replied", T0 + 1000, channel="sms", text="STOP"),
        ev("replied", T0 + 2000, channel="sms", text="YES"),  # lifts the STOP: a keyword
        ev("replied", T0 + 3000, channel="sms", text="START"),
        ev("replied", T0 + 4000, channel="email", sentiment="out_of_office"),
        ev("replied", T0 + 5000, channel="email", sentiment="negative"),  # counts
    ]
    c = card(tmp_path, events)
    assert ch(c, "sms")["replies"] == 1
    assert ch(c, "email")["replies"] == 1
    assert ch(c, "sms")["opt_outs"] == 1


def test_a_redelivered_event_counts_once(tmp_path: Path) -> None:
    reply = ev("replied", T0, channel="email", sentiment="positive")
    c = card(tmp_path, [reply, dict(reply), dict(reply)])
    assert ch(c, "email")["replies"] == 1


# -- conversions ----------------------------------------------------------------------------------


def _converting(prospect: str, after: int) -> list[dict[str, Any]]:
    req, _ = request(T0, "email", prospect)
    return [req, ev("meeting_booked", T0 + after, prospect)]


def test_a_conversion_30_days_after_the_touch_is_not_credited(tmp_path: Path) -> None:
    c = card(tmp_path, _converting("late", 30 * DAY_MS) + _converting("in", 30 * DAY_MS - 1))
    assert ch(c, "email")["conversions"] == 1  # 30 days less a millisecond: in
    assert c["overall"]["conversions"] == 1


def test_a_conversion_goes_to_the_last_touch_strictly_before_it(tmp_path: Path) -> None:
    req, _ = request(T0, "email")
    events = [
        req,
        ev("page_view", T0 + 2 * DAY_MS, url="https://x.example/pricing"),  # a chat invite
        ev("deal_closed", T0 + 2 * DAY_MS, won=True),  # same instant as the invite: not before
        ev("meeting_booked", T0 + 3 * DAY_MS),
        ev("deal_closed", T0 + 4 * DAY_MS, won=False),  # lost: no conversion
    ]
    c = card(tmp_path, events)
    assert ch(c, "email")["conversions"] == 1
    assert ch(c, "chat")["conversions"] == 1
    assert ch(c, "chat")["conversion_share"] == 0.5


def test_a_later_release_moves_a_conversions_credit(tmp_path: Path) -> None:
    req, _ = request(T0, "email")
    pricing = ev("page_view", T0 + DAY_MS, url="/pricing")
    invite = command_id("p", pricing["id"], "chat", "trigger:pricing_page")
    events = [
        req,
        pricing,
        ev("meeting_booked", T0 + 2 * DAY_MS),
        ev("touch_failed", T0 + 3 * DAY_MS, channel="chat", command=invite),
    ]
    c = card(tmp_path, events)
    assert (ch(c, "chat")["conversions"], ch(c, "email")["conversions"]) == (0, 1)


# -- prospects ------------------------------------------------------------------------------------


def test_touches_before_the_first_reply_and_channel_mix(tmp_path: Path) -> None:
    first, _ = request(T0, "email", "p")
    pricing = ev("page_view", T0 + DAY_MS, "p", url="/pricing")
    late = ev("replied", T0 + 2 * DAY_MS, "p", channel="email", sentiment="neutral")
    second, _ = request(T0 + 5 * DAY_MS, "email", "p")  # after the reply: not before it
    single, _ = request(T0, "email", "q")
    events = [first, pricing, late, second, single, ev("touch_sent", T0, "r", channel="email")]
    events.append(ev("replied", T0 + HOUR_MS, "r", channel="email"))
    c = card(tmp_path, events)
    o = c["overall"]
    assert (o["prospects_touched"], o["prospects_replied"]) == (3, 2)
    assert o["avg_touches_to_reply"] == (2 + 1) / 2  # p: email + chat; r: its manual email
    assert o["multichannel_reply_rate"] == 1.0  # p
    assert o["single_channel_reply_rate"] == 0.5  # q no, r yes


def test_a_release_after_the_reply_lowers_the_touches_before_it(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    events = [
        req,
        ev("replied", T0 + HOUR_MS, channel="email"),
        ev("touch_failed", T0 + 2 * HOUR_MS, channel="email", command=cid),
    ]
    assert card(tmp_path, events)["overall"]["avg_touches_to_reply"] == 0.0


def test_complaints_per_thousand_touches(tmp_path: Path) -> None:
    reqs = [request(T0 + k * 3 * DAY_MS, "email", campaign=f"c{k}")[0] for k in range(3)]
    c = card(tmp_path, [*reqs, ev("complaint", T0 + 10 * DAY_MS, channel="email")])
    assert c["overall"]["complaints_per_1000_touches"] == 1000 / 3


# -- sequences, campaigns, held back --------------------------------------------------------------


def test_sequences_enrolled_completed_exited_by_reply(tmp_path: Path) -> None:
    events = [
        *ready("a"),
        ev("enroll", T0, "a", sequence="basic"),
        ev("enroll", T0 + HOUR_MS, "a", sequence="basic"),  # already running: nothing
        ev("replied", T0 + 2 * HOUR_MS, "a", channel="email", sentiment="positive"),
        ev("enroll", T0 + 3 * DAY_MS, "a", sequence="basic"),  # a new run; runs to its end
        *ready("b"),
        ev("enroll", T0, "b", sequence="surround"),
        ev("deal_closed", T0 + DAY_MS, "b", won=True),  # ends it, not by a reply
        ev("enroll", T0 + 2 * DAY_MS, "b", sequence="surround"),  # refused: a customer
    ]
    c = card(tmp_path, events, until=T0 + 60 * DAY_MS)
    assert c["sequences"]["basic"] == {
        "enrolled": 2,
        "completed": 1,
        "exited_by_reply": 1,
        "reply_rate": 0.5,
    }
    assert c["sequences"]["surround"]["enrolled"] == 1
    assert c["sequences"]["surround"]["completed"] == 0
    assert c["sequences"]["surround"]["exited_by_reply"] == 0
    assert c["sequences"]["sms_first"]["reply_rate"] is None  # nobody enrolled
    assert c["held_back"]["sequence.customer"]["blocked"] == 1


def test_a_sequence_that_ends_at_once_is_enrolled_then_completed(tmp_path: Path) -> None:
    policy = parse_policy(
        '[sequences.ping]\nsteps = [{ after_hours = 0, channel = "email", topic = "hi" }]\n'
    )
    events = [ev("enroll", T0, sequence="ping"), ev("enroll", T0 + HOUR_MS, sequence="ping")]
    c = card_of(write_events(tmp_path / "e.jsonl", events), policy)[0]
    assert c["sequences"]["ping"]["enrolled"] == 2
    assert c["sequences"]["ping"]["completed"] == 2


def test_campaigns_and_held_back(tmp_path: Path) -> None:
    night = parse_ts("2026-03-03T03:00:00Z")  # 22:00 in New York: quiet hours for sms
    events = [
        *ready("p", "sms"),
        request(T0, "email", campaign="spring")[0],
        request(T0 + HOUR_MS, "email", campaign="spring")[0],  # cap.total.day: deferred
        request(night, "phone", campaign="calls")[0],  # no consent: blocked
        *ready("q", "sms"),
        request(night, "sms", "q", campaign="texts")[0],  # quiet hours: deferred to 08:00
    ]
    c = card(tmp_path, events, until=T0 + 10 * DAY_MS)
    spring = c["campaigns"]["spring"]
    assert spring["requested"] == 2
    assert spring["sent"] == 2  # the deferred one went a day later
    assert spring["deferred"] >= 1
    assert c["campaigns"]["calls"] == {"requested": 1, "sent": 0, "deferred": 0, "blocked": 1}
    assert c["held_back"]["consent.phone"] == {"deferred": 0, "blocked": 1}
    assert c["held_back"]["quiet_hours"] == {"deferred": 1, "blocked": 0}
    assert c["campaigns"]["texts"] == {"requested": 1, "sent": 1, "deferred": 1, "blocked": 0}


# -- shape, merging, encoding ---------------------------------------------------------------------

CONTRACT_CHANNEL_KEYS = {
    "touches",
    "delivered",
    "opened",
    "answered",
    "replies",
    "opt_outs",
    "conversions",
    "delivery_rate",
    "open_rate",
    "answer_rate",
    "reply_rate",
    "opt_out_rate",
    "conversion_rate",
    "conversion_share",
}
CONTRACT_OVERALL_EXTRA = {
    "prospects_touched",
    "prospects_replied",
    "avg_touches_to_reply",
    "complaints_per_1000_touches",
    "multichannel_reply_rate",
    "single_channel_reply_rate",
}


def test_every_key_is_present_with_zero_or_null_on_an_empty_input(tmp_path: Path) -> None:
    c = card(tmp_path, [])
    assert set(c) == {"channels", "overall", "sequences", "campaigns", "held_back", "daily"}
    assert c["daily"] == {}
    assert list(c["channels"]) == ["email", "sms", "phone", "chat", "linkedin"]
    for row in c["channels"].values():
        assert set(row) == CONTRACT_CHANNEL_KEYS
        assert all(row[k] is None for k in CONTRACT_CHANNEL_KEYS if k.endswith(("rate", "share")))
    assert set(c["overall"]) == CONTRACT_CHANNEL_KEYS | CONTRACT_OVERALL_EXTRA
    assert c["overall"]["avg_touches_to_reply"] is None
    assert set(c["sequences"]) == set(POLICY.sequences)
    for row in c["sequences"].values():
        assert row == {"enrolled": 0, "completed": 0, "exited_by_reply": 0, "reply_rate": None}
    assert c["campaigns"] == {}
    assert c["held_back"] == {}


def test_partial_counts_merge_by_addition(tmp_path: Path) -> None:
    from tests.report.helpers import closed_loop

    events = closed_loop(120, seed=3)
    prospects = sorted({e["prospect"] for e in events})
    half = set(prospects[::2])
    until = T0 + 40 * DAY_MS
    whole = card_of(write_events(tmp_path / "all.jsonl", events), until=until)[1].tally.counts
    left = [e for e in events if e["prospect"] in half]
    right = [e for e in events if e["prospect"] not in half]
    a = card_of(write_events(tmp_path / "a.jsonl", left), until=until)[1].tally.counts
    b = card_of(write_events(tmp_path / "b.jsonl", right), until=until)[1].tally.counts
    merged = a.merge(b)
    assert merged == whole
    assert scorecard(merged) == scorecard(whole)


def test_facts_and_counts_survive_messagepack(tmp_path: Path) -> None:
    req, cid = request(T0, "email")
    events = [
        req,
        ev("opened", T0 + HOUR_MS, channel="email", command=cid),
        ev("enroll", T0 + 2 * HOUR_MS, sequence="basic"),
        ev("meeting_booked", T0 + 3 * HOUR_MS),
    ]
    _, lane = card_of(write_events(tmp_path / "e.jsonl", events), POLICY)
    facts = lane.facts["p"]
    data = msgspec.msgpack.encode(facts)
    assert msgspec.msgpack.decode(data, type=ProspectFacts) == facts
    # The scorecard's part stays small; inspect's last decisions cost a few dozen bytes each.
    assert facts.decisions is not None
    recent = len(facts.decisions)
    assert recent == 3  # the request, the sequence's first step, its end by the meeting
    counting = msgspec.msgpack.encode(msgspec.structs.replace(facts, decisions=None))
    assert len(counting) < 120, len(counting)
    assert len(data) - len(counting) < 50 * recent, len(data)
    counts = lane.tally.counts
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(counts), type=Counts) == counts


@pytest.mark.parametrize(("days", "touches"), [(44, 1), (46, 2)])
def test_callbacks_past_the_ledger_are_not_matched(tmp_path: Path, days: int, touches: int) -> None:
    """Bounded facts: a command older than the ledger keeps (45 days before the prospect's
    latest time, by default) is forgotten: a callback naming it then matches nothing."""
    req, cid = request(T0, "email")
    later = request(T0 + days * DAY_MS, "email", campaign="later")[0]  # moves the clock on
    failed = ev("touch_failed", T0 + days * DAY_MS + HOUR_MS, channel="email", command=cid)
    path = write_events(tmp_path / "e.jsonl", [req, later, failed])
    c = card_of(path, POLICY, ledger_days=45, ledger_max=64)[0]
    assert ch(c, "email")["touches"] == touches


def test_the_ledger_keeps_at_most_ledger_max_entries(tmp_path: Path) -> None:
    first, cid = request(T0, "email")
    manual = [ev("touch_sent", T0 + k * 1000, channel="linkedin") for k in range(1, 4)]
    failed = ev("touch_failed", T0 + HOUR_MS, channel="email", command=cid)
    path = write_events(tmp_path / "e.jsonl", [first, *manual, failed])
    c = card_of(path, POLICY, ledger_days=45, ledger_max=3)[0]
    assert ch(c, "email")["touches"] == 1  # forgotten, so not released
