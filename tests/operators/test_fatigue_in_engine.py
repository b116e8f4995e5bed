"""Fatigue wired into decisions: unanswered touches saturate, then pause; engagement relieves."""

import msgspec

from operators.fatigue import FatigueConfig
from operators.policy import Policy, load_policy
from tests.harness import T0, D, H, Prospect, immediate, request


def _policy(fatigue_toml: str) -> Policy:
    """The default policy with the given fatigue settings (other fatigue keys at defaults)."""
    cfg = msgspec.toml.decode(fatigue_toml, type=FatigueConfig)
    return immediate(msgspec.structs.replace(load_policy(), fatigue=cfg))


def test_unanswered_touches_pause_campaign_touches_but_not_triggers() -> None:
    p = Prospect(_policy("on_target = 0.5\nsaturated = 1.5\npause = 2.0"))
    p.ready()
    for day in (0, 2, 4):  # three emails, never answered
        assert request(p, T0 + day * D, "email", campaign=f"c{day}").verdict == "sent"
    # Windows close 72 h after each touch (days 3, 5, 7), each miss adds 1.0 and the score halves
    # weekly: 1 -> 1 * 2^(-2/7) + 1 = 1.82 -> 1.82 * 2^(-2/7) + 1 = 2.49 -> 2.25 on day 8.
    held = request(p, T0 + 8 * D, "linkedin")
    assert (held.verdict, held.rule) == ("blocked", "fatigue")
    # A trigger is not paused, but a saturated prospect's caps are halved (total 5 -> 2) and the
    # emails of days 2 and 4 fill it: the trigger passes the fatigue check and meets the cap.
    [trigger] = p.send("page_view", T0 + 8 * D + H, url="/pricing")
    assert (trigger.verdict, trigger.rule) == ("blocked", "cap.total.week")


def test_saturated_prospects_get_lower_caps() -> None:
    # The email's miss (1.0 on day 3) decays to 0.82 by day 5: still above 0.7.
    p = Prospect(_policy("on_target = 0.5\nsaturated = 0.7\npause = 50"))
    p.ready()
    request(p, T0, "email")
    request(p, T0 + 4 * D, "linkedin")  # the email's window closed unanswered: saturated
    # The email cap (3 a week) is halved to 1; the email 4 days ago still counts.
    assert request(p, T0 + 5 * D, "email").rule == "cap.email.week"


def test_engagement_relieves_fatigue() -> None:
    p = Prospect(_policy("on_target = 0.5\nsaturated = 1.5\npause = 2.0"))
    p.ready()
    for day in (0, 2, 4):
        request(p, T0 + day * D, "email", campaign=f"c{day}")
    p.send("opened", T0 + 4 * D + H, channel="email")  # answers the last email
    p.send("clicked", T0 + 5 * D, channel="email", url="https://x.example")
    assert request(p, T0 + 8 * D, "linkedin").verdict == "sent"


def test_default_policy_leaves_an_engaged_prospect_undersaturated() -> None:
    p = Prospect()
    p.ready()
    for week in range(3):
        request(p, T0 + week * 7 * D, "email")
        p.send("opened", T0 + week * 7 * D + H, channel="email")
    assert p.state.fatigue is not None
    assert p.state.fatigue[0] == 0
