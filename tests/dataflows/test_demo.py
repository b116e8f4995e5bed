"""`touchflow demo`: a simulated day through the real dataflow; the story prospects' verdicts."""

import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import orjson
import pytest
from rich.console import Console

from dataflows.cli import main
from dataflows.demo.replay_demo import run_demo
from operators.errors import ConfigError
from operators.events import decode_event

FILES = ("events.jsonl", "commands.jsonl", "decisions.jsonl", "dead_letter.jsonl")


def _read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _local(ts: str, zone: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(ZoneInfo(zone))


class Run:
    """One demo run's outputs, read back from its files."""

    def __init__(self, out: Path, printed: str) -> None:
        self.out = out
        self.printed = printed
        self.commands = _read(out / "commands.jsonl")
        self.decisions = _read(out / "decisions.jsonl")
        self.dead = _read(out / "dead_letter.jsonl")

    def of(self, prospect: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(commands, decisions) of one prospect, in output order."""
        return (
            [c for c in self.commands if c["prospect"] == prospect],
            [d for d in self.decisions if d["prospect"] == prospect],
        )


def _run(out: Path, prospects: int = 40, seed: int = 3) -> tuple[int, str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None)
    status = run_demo(prospects=prospects, seed=seed, config=None, out_dir=out, console=console)
    return status, buffer.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("demo")
    status, printed = _run(out)
    assert status == 0
    return Run(out, printed)


def test_writes_every_file_with_outputs(run: Run) -> None:
    for name in FILES:
        assert (run.out / name).is_file(), name
    assert run.commands
    assert len(run.decisions) > len(run.commands), "some touches must be held back"
    sent = [d for d in run.decisions if d["verdict"] == "sent"]
    assert sorted(d["command"] for d in sent) == sorted(c["id"] for c in run.commands)


def test_dead_letters_are_exactly_the_malformed_lines(run: Run) -> None:
    undecodable = []
    for number, line in enumerate((run.out / "events.jsonl").read_bytes().splitlines(), 1):
        try:
            decode_event(line)
        except (msgspec.DecodeError, ValueError):
            undecodable.append(number)
    assert undecodable, "the demo injects malformed lines"
    assert [d["line"] for d in run.dead] == undecodable
    assert all(d["reason"] for d in run.dead)


def test_alice_call_waits_for_quiet_hours_to_end(run: Run) -> None:
    zone = "America/New_York"
    commands, decisions = run.of("demo-alice")
    email = next(c for c in commands if c["channel"] == "email")
    assert email["reason"] == "trigger:form_submit"
    assert _local(email["ts"], zone).hour == 23, "email answers the 23:00 form at once"
    held = next(d for d in decisions if d["channel"] == "phone")
    assert (held["verdict"], held["rule"]) == ("deferred", "quiet_hours")
    assert _local(held["until"], zone).strftime("%H:%M") == "08:00"
    call = next(c for c in commands if c["channel"] == "phone")
    assert (call["action"], call["reason"], call["ts"]) == (
        "call",
        "trigger:form_submit",
        held["until"],
    )


def test_bob_gets_one_chat_invite_however_often_he_reloads_pricing_then_a_rep(run: Run) -> None:
    commands, decisions = run.of("demo-bob")
    chats = [(d["verdict"], d["rule"]) for d in decisions if d["channel"] == "chat"]
    throttled = ("blocked", "throttle.trigger")
    assert chats == [("sent", None), throttled, throttled]
    deferred = next(d for d in decisions if d["reason"] == "request:case-study-fintech")
    assert (deferred["verdict"], deferred["rule"]) == ("deferred", "cap.total.day")
    handoff = [c for c in commands if c["channel"] == "rep"]
    assert [(c["action"], c["reason"]) for c in handoff] == [("handoff", "reply")]
    assert handoff[0]["context"]["last_reply"]["sentiment"] == "positive"


def test_carol_stop_blocks_sms_and_auto_goes_to_email(run: Run) -> None:
    commands, decisions = run.of("demo-carol")
    campaign = [d for d in decisions if d["reason"] == "request:product-launch"]
    assert (campaign[0]["channel"], campaign[0]["verdict"], campaign[0]["rule"]) == (
        "sms",
        "blocked",
        "suppressed.opt_out.sms",
    )
    assert [c["channel"] for c in commands] == ["email"], "no sms after STOP, the request emails"
    assert commands[0]["reason"] == "request:product-launch"
    assert commands[0]["backup"] != "sms"


def test_summary_shows_totals_tables_and_timelines(run: Run) -> None:
    text = run.printed
    for needle in ("commands", "Held back", "demo-alice", "demo-bob", "demo-carol"):
        assert needle in text
    assert "suppressed.opt_out.sms" in text
    assert "quiet_hours to Tue 08:00" in text
    assert len(text.splitlines()) < 120, "one screen-ish, not a log flood"


def test_same_seed_same_files(run: Run, tmp_path: Path) -> None:
    status, _ = _run(tmp_path)
    assert status == 0
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (run.out / name).read_bytes(), name


def test_cli_demo_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--replay", "--prospects", "12", "--seed", "1", "--out", str(tmp_path)])
    assert status == 0
    assert "demo-carol" in capsys.readouterr().out
    assert _read(tmp_path / "commands.jsonl")


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prospects"):
        run_demo(prospects=0, seed=1, config=None, out_dir=tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("caps = 3\n")
    with pytest.raises(ConfigError):
        run_demo(prospects=5, seed=1, config=bad, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists(), "a bad config fails before writing anything"


def test_dave_runs_a_sequence_replies_then_gets_his_preferred_channel(run: Run) -> None:
    commands, decisions = run.of("demo-dave")
    assert [(c["channel"], c["reason"]) for c in commands] == [
        ("email", "sequence:basic:1"),
        ("rep", "reply"),  # the reply ends the sequence and hands off to a person
        ("sms", "request:product-tour"),  # "text me instead": the auto request goes by sms
    ]
    assert commands[2]["backup"] == "email"
    held = [d for d in decisions if d["verdict"] == "deferred"]
    assert [(d["channel"], d["rule"]) for d in held] == [("sms", "cap.total.day")]
