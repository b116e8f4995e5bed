"""The default policy encodes contract section 4; bad configs fail with the key path."""

import pytest

from operators.errors import ConfigError
from operators.policy import load_policy, parse_policy


def test_default_policy_matches_the_contract() -> None:
    p = load_policy()
    week, day = p.caps
    assert (week.hours, week.total, day.hours, day.total) == (168, 5, 24, 1)
    assert week.per_channel == {"email": 3, "sms": 2, "phone": 1, "linkedin": 2, "chat": 2}
    assert (week.exempt_own_action, day.exempt_own_action) == (False, True)
    assert (p.gap.hours, p.gap.exempt_own_action) == (24, True)
    qh = p.quiet_hours
    assert (qh.channels, qh.start, qh.end) == (["sms", "phone"], "08:00", "21:00")
    assert {r: (h.start, h.end) for r, h in qh.regions.items()} == {
        "US-FL": ("08:00", "20:00"),
        "US-OK": ("08:00", "20:00"),
        "US-MD": ("08:00", "20:00"),
    }
    assert p.consent.required == ["sms", "phone"]
    assert set(p.keywords.stop) == {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
    }
    assert (p.cooldowns.complaint_days, p.cooldowns.negative_reply_days) == (90, 90)
    assert p.cooldowns.sequence_days == 30
    assert (p.triggers.form_submit, p.triggers.pricing_page, p.triggers.proposal_view) == (
        ["email", "phone"],
        ["chat"],
        ["sms"],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('caps = []\n[gap]\nhours = "x"', "$.gap.hours"),
        ('caps = [{name = "w", hours = 1, per_channel = {fax = 1}}]', "$.caps[0].per_channel"),
        ('caps = [{name = "w", hours = 0}]', "$.caps[0].hours"),
        ('caps = []\n[quiet_hours]\nstart = "8:00"', "$.quiet_hours.start"),
        ('caps = []\n[quiet_hours]\nfallback_timezones = ["Nowhere/Land"]', "$.quiet_hours"),
        ('caps = []\n[quiet_hours.regions]\nX = {start = "21:00", end = "08:00"}', "regions"),
        ("caps = []\ntypo_key = 1", "typo_key"),
        ('caps = [{name = "w", hours = 1}, {name = "w", hours = 2}]', "$.caps"),
        ("[gap]\nhours = 1", "`caps`"),
        ("caps = [", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "my.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("invalid config my.toml: ")
    assert expected in message


def test_missing_config_file_is_a_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_policy("/nonexistent/policy.toml")
