"""The default policy encodes contract section 4; bad configs fail with the key path."""

import subprocess
import sys
from pathlib import Path

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
        ('[gap]\nhours = "x"', "- at `$.gap.hours`"),
        ('caps = [{name = "w", hours = 1, per_channel = {fax = 1}}]', "`$.caps[0].per_channel`"),
        ('caps = [{name = "w", hours = 0}]', "- at `$.caps[0].hours`"),
        ('[quiet_hours]\nstart = "8:00"', "- at `$.quiet_hours.start`"),
        ('[quiet_hours]\nstart = "22:00"', "- at `$.quiet_hours.end`"),
        (
            '[quiet_hours]\nfallback_timezones = ["UTC", "Nowhere/Land"]',
            "- at `$.quiet_hours.fallback_timezones[1]`",
        ),
        (
            '[quiet_hours.regions]\nX = {start = "21:00", end = "08:00"}',
            "`$.quiet_hours.regions.X.end`",
        ),
        ("typo_key = 1", "unknown field `typo_key` - at `$`"),
        ('caps = [{name = "w", hours = 1}, {name = "w", hours = 2}]', "- at `$.caps[1].name`"),
        ("caps = [", "not valid TOML"),
        ("caps = 3", "- at `$.caps`"),
        ("[[caps]]\nhours = 1", "missing required field `name` - at `$.caps[0]`"),
        ("[fatigue]\non_target = 9.0", "- at `$.fatigue.on_target`"),
        (
            '[sequences.x]\nsteps = [{channel = "fax", topic = "t"}]',
            "`$.sequences.x.steps[0].channel`",
        ),
    ],
)
def test_bad_config_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "my.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("invalid config my.toml: ")
    assert expected in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A dict key: msgspec alone says `$.caps[0].per_channel[...]`.
        (
            '[[caps]]\nname = "week"\nhours = 1\nper_channel = { email = 1, sms = -1 }',
            "Expected `int` >= 0 - at `$.caps[0].per_channel.sms`",
        ),
        # A region's __post_init__: msgspec alone says `$.quiet_hours.regions[...]`.
        (
            '[quiet_hours.regions]\n"US-FL" = { start = "20:00", end = "08:00" }',
            "start 20:00 must be before end 08:00 - at `$.quiet_hours.regions.US-FL.end`",
        ),
        (
            '[quiet_hours.regions]\n"US-FL" = { start = "08:00", end = "8pm" }',
            "- at `$.quiet_hours.regions.US-FL.end`",
        ),
        # A key that is not a plain word is quoted, so the path stays one unambiguous line.
        (
            '[quiet_hours.regions]\n"US FL" = { start = "08:00", end = "8pm" }',
            '- at `$.quiet_hours.regions["US FL"].end`',
        ),
        (
            "[preference.priors]\nretail = { sms = 1.5 }",
            "Expected `float` <= 1.0 - at `$.preference.priors.retail.sms`",
        ),
        # A cap is named by its place among the file's own [[caps]], not in the merged list
        # (where `month` comes third, after the default `week` and `day`).
        (
            '[[caps]]\nname = "month"\nhours = 720\nper_channel = { sms = -1 }',
            "- at `$.caps[0].per_channel.sms`",
        ),
        (
            '[[caps]]\nname = "day"\nhours = 24\n[[caps]]\nname = "month"\nhours = 0',
            "- at `$.caps[1].hours`",
        ),
    ],
)
def test_error_names_the_full_key_path(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "x.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_policy(config)
    assert str(info.value).startswith(f"invalid config {config}: ")
    assert str(info.value).endswith(message)
    assert "[...]" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe[gap]\nhours = 1\n", "[gap]\nhours = 1 # caf\u00e9\n".encode("latin-1")],
)
def test_non_utf8_config_is_one_line_naming_the_file(tmp_path: Path, data: bytes) -> None:
    config = tmp_path / "latin.toml"
    config.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_policy(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid config {config}: not UTF-8 text")


def test_utf8_bom_is_accepted() -> None:
    assert parse_policy(b"\xef\xbb\xbf[gap]\nhours = 12\n").gap.hours == 12


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[gap\nhours = 1\n")
    with pytest.raises(ConfigError) as info:
        load_policy(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid config {config}: not valid TOML: ")
    assert "line 1" in message


def test_cli_reports_a_non_utf8_config_in_one_line_naming_it(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"")
    config = tmp_path / "latin.toml"
    config.write_bytes(b"\xff\xfe[gap]\n")
    cmd = [sys.executable, "-m", "dataflows.cli", "replay", str(events), "--config", str(config)]
    run = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert run.returncode == 1  # a config error, not a usage error (2)
    assert run.stdout == b""
    assert run.stderr.count(b"\n") == 1
    assert str(config).encode() in run.stderr
    assert b"not UTF-8" in run.stderr


def test_missing_config_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^cannot read config /nonexistent/policy\.toml: "):
        load_policy("/nonexistent/policy.toml")
