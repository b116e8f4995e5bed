"""`touchflow replay` as a user runs it: a real process, real files, exit codes, stderr."""

import subprocess
import sys
from pathlib import Path

import pytest

from dataflows.supervisor import cluster_exit_code

EVENTS = b"""\
{"id":"1","type":"profile","prospect":"p1","ts":"2026-03-02T14:00:00Z","timezone":"America/New_York"}
{"id":"2","type":"consent","prospect":"p1","ts":"2026-03-02T14:00:00Z","channel":"phone","granted":true}
{"id":"3","type":"form_submit","prospect":"p1","ts":"2026-03-03T03:00:00Z","form":"demo"}
this line is not json
{"id":"4","type":"page_view","prospect":"p2","ts":"2026-03-03T15:00:00Z","url":"/pricing"}
{"id":"4","type":"page_view","prospect":"p2","ts":"2026-03-03T15:00:00Z","url":"/pricing"}
"""


def touchflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "dataflows.cli", *args]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=False, cwd=cwd)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(EVENTS)
    return path


def test_replay_writes_commands_to_stdout_and_dead_letters_to_stderr(events: Path) -> None:
    run = touchflow("replay", str(events), "--until", "2026-03-05T00:00:00Z")
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    # email at once, the call at 08:00 New York time, then p2's single chat invite.
    assert [b'"reason":"trigger:form_submit"' in x for x in lines] == [True, True, False]
    assert b'"channel":"chat"' in lines[2]  # one invite: the redelivery had no effect
    assert b'"line":4' in run.stderr
    assert b"invalid JSON" in run.stderr


def test_replay_files_are_byte_identical_across_runs_and_workers(
    events: Path, tmp_path: Path
) -> None:
    outputs = []
    for n, workers in enumerate(("1", "2")):
        out = tmp_path / f"run{n}"
        run = touchflow(
            "replay",
            str(events),
            "--until",
            "2026-03-05T00:00:00Z",
            "--workers",
            workers,
            "--commands",
            str(out / "c.jsonl"),
            "--decisions",
            str(out / "d.jsonl"),
            "--dead-letter",
            str(out / "dl.jsonl"),
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == b""
        outputs.append([(out / f).read_bytes() for f in ("c.jsonl", "d.jsonl", "dl.jsonl")])
    assert outputs[0] == outputs[1]
    commands, decisions, dead = outputs[0]
    assert commands.count(b"\n") == 3
    assert decisions.count(b"\n") == 4  # email sent, phone deferred then sent, chat sent
    assert dead.count(b"\n") == 1


def test_unreadable_input_is_one_line_and_non_zero(tmp_path: Path) -> None:
    run = touchflow("replay", str(tmp_path / "missing.jsonl"))
    assert run.returncode != 0
    assert run.stderr.count(b"\n") == 1
    assert b"missing.jsonl" in run.stderr


def test_invalid_config_is_one_line_naming_the_key(events: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[caps]]\nname = "week"\nhours = 168\ntotal = "five"\n')
    run = touchflow("replay", str(events), "--config", str(config))
    assert run.returncode != 0
    assert run.stdout == b""
    assert run.stderr.count(b"\n") == 1
    assert b"$.caps[0].total" in run.stderr


def test_bad_until_is_a_usage_error(events: Path) -> None:
    run = touchflow("replay", str(events), "--until", "tomorrow")
    assert run.returncode == 2
    assert run.stderr.count(b"\n") == 1


def test_default_config_is_found_from_any_directory(events: Path, tmp_path: Path) -> None:
    run = touchflow("replay", str(events), cwd=tmp_path)
    assert run.returncode == 0
    assert run.stdout.count(b"\n") == 2  # without --until the deferred call does not fire


@pytest.mark.parametrize(
    ("codes", "expected"),
    [([0, 0], 0), ([0, 3], 3), ([2, 3], 2), ([0, -9], 1), ([-15, 0, 0], 1)],
)
def test_a_cluster_succeeds_only_if_every_worker_did(codes: list[int], expected: int) -> None:
    """A worker killed by a signal (negative code) beside workers that exited 0 is a failure."""
    assert cluster_exit_code(codes) == expected
