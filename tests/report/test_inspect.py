"""`operators.inspect_view` on hand-built states: next allowed times and the rules behind them."""

from operators import fatigue
from operators.events import CHANNEL_INDEX
from operators.inspect_view import inspect, preferred_channel, settled
from operators.rules import Rules
from operators.state import ProspectState, encode_state
from operators.state_records import Exempt, Touch
from operators.timeutil import DAY_MS, HOUR_MS, format_ts, parse_ts
from tests.report.helpers import POLICY

RULES = Rules(POLICY)
T0 = parse_ts("2026-03-02T15:00:00Z")  # 10:00 in New York
EMAIL = CHANNEL_INDEX["email"]


def test_a_fatigued_prospect_is_allowed_again_when_the_score_decays_below_pause() -> None:
    state = ProspectState(prospect="p", clock=T0, fatigue=(9_000, T0))
    found = inspect(state, RULES, T0)
    email = found["channels"]["email"]
    assert email["rule"] == fatigue.RULE
    when = parse_ts(email["next_allowed"])
    assert RULES.verdict(state, EMAIL, when, Exempt.NONE)[0] is None
    assert RULES.verdict(state, EMAIL, when - 60_000, Exempt.NONE)[0] == fatigue.RULE
    assert found["fatigue"] == {"score": 9.0, "class": "saturated"}


def test_rules_are_followed_from_one_to_the_next() -> None:
    """A complaint cooldown, then the week cap of the touches before it, then quiet hours."""
    state = ProspectState(
        prospect="p",
        clock=T0,
        timezone="America/New_York",
        consent=1 << CHANNEL_INDEX["sms"],
        complaint_until=T0 + 2 * DAY_MS,
        touches=[
            Touch(T0 - 4 * DAY_MS + 11 * HOUR_MS, 1, 1, None),
            Touch(T0 - 84 * HOUR_MS, 1, 2, None),
        ],
    )
    sms = inspect(state, RULES, T0)["channels"]["sms"]
    assert sms["rule"] == "cooldown.complaint"
    # The cooldown ends on the 4th at 10:00 local, when both texts are still in the week (cap
    # 2); the first leaves it on the 5th at 21:00 local, in quiet hours: 08:00 local (13:00Z).
    assert sms["next_allowed"] == "2026-03-06T13:00:00Z"
    assert sms["held_by"] == "quiet_hours"


def test_inspect_leaves_the_state_unchanged_and_settles_a_copy() -> None:
    state = ProspectState(
        prospect="p",
        clock=T0,
        open_touches=(T0, -1, -1, -1, -1, 0),  # an email awaiting an answer
    )
    before = encode_state(state)
    later = T0 + 10 * DAY_MS
    answers, tired = settled(state, later, POLICY)
    assert answers is not None
    assert answers[1] == 1  # the email settled as a miss
    assert tired is not None
    assert tired[0] > 0
    found = inspect(state, RULES, later)
    assert found["fatigue"]["score"] > 0
    email = next(r for r in found["ranking"] if r["channel"] == "email")
    assert email["misses"] == 1
    assert email["estimate"] == (0.387 * 10 + 0) / (10 + 0 + 1)  # below the prior now
    assert encode_state(state) == before
    assert preferred_channel(state, later, POLICY) == "email"  # still first, for now
    assert found["as_of"] == format_ts(later)
