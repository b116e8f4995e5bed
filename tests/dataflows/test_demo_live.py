"""`touchflow demo` live: a real embedded Redis, a real `touchflow run`, a real gateway, the
sender answering through it with signed provider callbacks, everything cleaned up."""

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from rich.console import Console

from connectors.keys import Keys
from dataflows.cli import main
from dataflows.demo.gateway_wire import CallbackSecrets
from dataflows.demo.live_demo import run_live_demo
from dataflows.demo.simulate import STORIES
from dataflows.demo.tape import build_tape, story_events
from dataflows.demo.watch import gateway_counts

PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes in /proc")


def _read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _children(pid: int) -> dict[int, str]:
    """Live child processes of `pid` (Linux /proc), with their command lines."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.redis
@PROC
def test_live_demo_runs_answers_through_the_gateway_and_cleans_up(tmp_path: Path) -> None:
    before = set(_children(os.getpid()))
    secrets = CallbackSecrets.generate()
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None)
    status = run_live_demo(
        prospects=60,
        seed=3,
        seconds=6,
        config=None,
        out_dir=tmp_path,
        console=console,
        secrets=secrets,
    )
    assert status == 0
    printed = buffer.getvalue()
    assert set(_children(os.getpid())) <= before, "no Redis, flow or gateway process left behind"

    commands = _read(tmp_path / "commands.jsonl")
    channels = {c["channel"] for c in commands}
    assert len(channels) >= 3, channels
    answers = _read(tmp_path / "answers.jsonl")
    ids = {c["id"] for c in commands}
    sent = [a for a in answers if a["type"] in ("touch_sent", "touch_failed")]
    assert sent, "the sender answered"
    assert all(a["command"] in ids for a in sent), "each answer names a real command"
    assert len({a["command"] for a in sent}) == len(sent), "one send per command"
    decisions = _read(tmp_path / "decisions.jsonl")
    assert len(decisions) >= len(commands)
    assert sorted(d["command"] for d in decisions if d["verdict"] == "sent") == sorted(ids)
    assert (tmp_path / "dead_letter.jsonl").read_bytes(), "malformed lines are dead letters"

    # Alice keeps her scripted local times: the 23:00 call waits for 08:00 New York time.
    mine = [d for d in decisions if d["prospect"] == "demo-alice" and d["channel"] == "phone"]
    assert [(d["verdict"], d["rule"]) for d in mine] == [
        ("deferred", "quiet_hours"),
        ("sent", None),
    ]
    until = datetime.fromisoformat(mine[0]["until"]).astimezone(ZoneInfo("America/New_York"))
    assert until.strftime("%H:%M") == "08:00"
    assert mine[1]["ts"] == mine[0]["until"]

    for needle in ("Commands by reason and channel", "Held back, by rule", "demo-alice"):
        assert needle in printed
    assert "quiet_hours to " in printed
    assert "exit 0" in printed
    assert "touch_sent 0 " not in printed
    assert len(printed.splitlines()) < 120, "about a screen, not a log flood"
    _answered_through_the_gateway(tmp_path, ids, printed)
    # The secrets were made for this run and went to the gateway's environment only.
    values = {*secrets.gateway_env().values(), *secrets.sender_env().values()}
    for path in tmp_path.iterdir():
        text = path.read_text(errors="replace")
        assert not any(v in text for v in values), f"a secret in {path.name}"
    assert not any(v in printed for v in values)


def _answered_through_the_gateway(out: Path, commands: set[str], printed: str) -> None:
    """The sender's answers reached the flow as provider callbacks through the gateway."""
    counts = gateway_counts((out / "gateway_metrics.txt").read_text())
    for provider in ("sendgrid", "twilio", "events"):
        assert counts.requests[provider, "200"] > 0, f"{provider} callbacks answered 200"
    assert {status for _, status in counts.requests} == {"200"}
    assert counts.refused == 0
    for kind in ("touch_sent", "delivered", "opened", "call_outcome"):
        assert counts.appended[kind] > 0, kind
    assert counts.ignored["processed"] > 0, "SendGrid's send reports are counted, not appended"

    callbacks = _read(out / "callbacks.jsonl")
    assert {c["status"] for c in callbacks} == {200}
    for c in callbacks:
        if c["provider"] == "sendgrid":
            assert all(e["touchflow_command"] in commands for e in c["payload"])
        elif c["path"].startswith(("/v1/hooks/twilio/status", "/v1/hooks/twilio/calls")):
            assert "?prospect=" in c["path"]
            assert "&command=" in c["path"]

    # On the streams: the gateway's ids, derived from the providers' own.
    arrived = _read(out / "gateway_events.jsonl")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in arrived:
        by_type.setdefault(event["type"], []).append(event)
    assert len({e["id"] for e in arrived}) == len(arrived) > 0
    if "answers retried" not in printed:  # a retried request counts as appended again
        assert sum(counts.appended.values()) == len(arrived), "every appended event seen"
    emails = [e for k in ("delivered", "opened") for e in by_type[k] if e["channel"] == "email"]
    assert emails
    assert all(e["id"].startswith("sendgrid:") for e in emails)
    assert all(e["command"] in commands for e in emails)
    assert all(e["id"].startswith("twilio:CA") for e in by_type["call_outcome"])
    sms = [e for e in by_type["delivered"] if e["channel"] == "sms"]
    assert all(e["id"].startswith("twilio:SM") for e in sms)
    sent = by_type["touch_sent"]
    assert all(e["id"] == f"{e['command']}:touch_sent" for e in sent), "first-party, the sender's"
    assert {e["command"] for e in sent} <= commands
    assert "(all 200)" in printed
    assert f"on the streams: {len(arrived):,} through it" in printed


def _ctrl_c_as_in_a_terminal() -> None:
    """A test run started in the background inherits SIGINT ignored (POSIX shells do that for
    background jobs), and Python then installs no Ctrl-C handler: the demo would ignore the
    test's SIGINT. Start it as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.redis
@PROC
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "dataflows.cli", "demo", "--prospects", "30"]
    cmd += ["--seconds", "30", "--out", str(tmp_path)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_ctrl_c_as_in_a_terminal
    )
    try:
        deadline = time.monotonic() + 30
        log = tmp_path / "flow.log"
        while not (log.exists() and b"touchflow live on" in log.read_bytes()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the demo did not start its flow"
            time.sleep(0.05)
        children = _children(proc.pid)
        assert any("redis-server" in c for c in children.values()), children
        assert any("dataflows.cli run" in c for c in children.values()), children
        assert any("dataflows.gateway" in c for c in children.values()), children
        time.sleep(1.0)  # publishing and answering
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert _gone(list(children)), "a child process outlived the demo"
    assert b"Ctrl-C, then SIGTERM: final checkpoint, exit 0" in out
    assert b"Traceback" not in err


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prospects"):
        run_live_demo(prospects=0, seed=1, seconds=5, config=None, out_dir=tmp_path)
    with pytest.raises(ValueError, match="seconds"):
        run_live_demo(prospects=5, seed=1, seconds=0.5, config=None, out_dir=tmp_path)
    assert main(["demo", "--seconds", "9999", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 11, 22, 16, 31, 7, tzinfo=UTC),
        datetime(2026, 3, 8, 12, 0, tzinfo=UTC),  # the morning US clocks went forward
        datetime(2026, 11, 1, 3, 30, tzinfo=UTC),  # the night US clocks go back
        datetime(2026, 7, 1, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_stories_keep_their_local_clock_on_the_latest_day_that_fits(now: datetime) -> None:
    stories = story_events(list(STORIES), seed=7, now=now)
    assert list(stories) == list(STORIES)
    for pid, events in stories.items():
        times = [datetime.fromisoformat(str(e["ts"])) for e in events]
        assert times == sorted(times)
        assert max(times) <= now - timedelta(minutes=1), f"{pid}: the whole script is past"
        assert max(times) > now - timedelta(hours=25), f"{pid}: on the most recent day"
    alice = {e["type"]: e for e in stories["demo-alice"]}
    form = datetime.fromisoformat(str(alice["form_submit"]["ts"]))
    assert form.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "23:00"


def test_tape_retimes_the_day_to_the_run(tmp_path: Path) -> None:
    start = datetime(2026, 11, 22, 16, 0, tzinfo=UTC).timestamp()
    keys = Keys(prefix="t", shards=4)
    tape = build_tape(80, seed=2, start=start, seconds=10, keys=keys, path=tmp_path / "e.jsonl")
    assert tape.prospects == 80 - len(STORIES)  # random prospects besides the stories
    assert (tmp_path / "e.jsonl").read_bytes().count(b"\n") == tape.lines
    assert [d.at for d in tape.drops] == sorted(d.at for d in tape.drops)
    assert all(0 <= d.at < 10 for d in tape.drops)
    stamps = []
    for drop in tape.drops:
        if drop.story is None:
            line = drop.lines[0][1]
            if b"~bad" not in line:  # malformed on purpose
                stamps.append(datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp())
    assert len(stamps) == tape.random_events
    assert min(stamps) >= start
    assert max(stamps) < start + 10
    assert sorted(d.story for d in tape.drops if d.story) == sorted(STORIES)
    assert tape.lines == tape.random_events + tape.malformed + sum(map(len, tape.stories.values()))


def test_tape_gives_each_prospect_a_phone_of_its_own(tmp_path: Path) -> None:
    """The gateway finds a texting prospect by the From number, so no two may share one."""
    start = datetime(2026, 11, 22, 16, 0, tzinfo=UTC).timestamp()
    keys = Keys(prefix="t", shards=4)
    tape = build_tape(400, seed=5, start=start, seconds=10, keys=keys, path=tmp_path / "e.jsonl")
    phones = {pid: c.phone for pid, c in tape.contacts.items() if c.phone}
    assert len(phones) > 100
    assert len(set(phones.values())) == len(phones), "one number, one prospect"
    assert all(p.startswith("+") and p[1:].isdigit() for p in phones.values())
    checked = 0
    for line in (tmp_path / "e.jsonl").read_bytes().splitlines():
        if b'"profile"' in line and b'"phone"' in line and b"~bad" not in line:
            event = orjson.loads(line)
            assert phones[event["prospect"]] == event["phone"], "the tape's contacts, as sent"
            checked += 1
    assert checked >= len(phones)
    alice = tape.contacts["demo-alice"]
    assert (alice.email, alice.phone) == ("alice@example.org", "+12125550147")
