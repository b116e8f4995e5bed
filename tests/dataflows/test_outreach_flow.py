"""The real Bytewax dataflow on 1 and 2 workers: same outputs as the engine, byte-identical."""

import io
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from dataflows.replay import replay, write_jsonl
from operators.engine import Engine
from operators.policy import load_policy
from tests.operators.test_properties import horizon, run_engine
from tests.reference import check
from tests.streams import event_streams

ENGINE = Engine(load_policy())


def _write(path: Path, events: list[dict[str, Any]], extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    lines = [msgspec.json.encode(e) for e in events] + list(extra)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _as_builtins(records: list[Any]) -> list[Any]:
    return [msgspec.to_builtins(r) for r in records]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events=event_streams(prospects=4, max_events=25))
def test_flow_on_1_and_2_workers_matches_the_engine_and_breaks_no_rule(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, events)
    until = horizon(events)
    expected_commands, expected_decisions = run_engine(events, until)
    for workers in (1, 2):
        result = replay(path, ENGINE, until=until, workers=workers)
        assert _as_builtins(result.commands) == expected_commands
        assert _as_builtins(result.decisions) == expected_decisions
        assert result.dead_letters == []
    assert check(events, expected_commands, expected_decisions) == []


def _encoded(result: Any) -> bytes:
    buf = io.BytesIO()
    write_jsonl(result.commands, buf)
    write_jsonl(result.decisions, buf)
    write_jsonl(result.dead_letters, buf)
    return buf.getvalue()


def test_replay_is_byte_identical_across_runs_and_worker_counts(tmp_path: Path) -> None:
    from dataflows.demo.simulate import generate
    from dataflows.demo.simulate import write_jsonl as write_events

    path = tmp_path / "day.jsonl"
    write_events(generate(150, seed=3, start=_start()), path, malformed_fraction=0.01, seed=3)
    until = horizon([{"ts": "2026-03-04T00:00:00Z"}])
    outputs = {_encoded(replay(path, ENGINE, until=until, workers=w)) for w in (1, 2, 1, 3)}
    assert len(outputs) == 1
    result = replay(path, ENGINE, until=until)
    assert result.commands
    assert result.dead_letters  # the malformed lines arrived, none was lost


def _start() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, tzinfo=UTC)


def test_bad_lines_go_to_dead_letters_and_never_stop_the_flow(tmp_path: Path) -> None:
    good = {
        "id": "1",
        "type": "page_view",
        "prospect": "p",
        "ts": "2026-03-02T15:00:00Z",
        "url": "/pricing",
    }
    bad = [
        b"{oops",
        b'{"id":"2","type":"nope","prospect":"p","ts":"2026-03-02T15:00:00Z"}',
        b"\xff\xfe not utf-8",
        b'{"id":"3","type":"page_view","prospect":"p"}',
    ]
    path = tmp_path / "mixed.jsonl"
    _write(path, [], extra=[bad[0], msgspec.json.encode(good), *bad[1:]])
    result = replay(path, ENGINE)
    assert [c.reason for c in result.commands] == ["trigger:pricing_page"]
    letters = result.dead_letters
    assert [d.line for d in letters] == [1, 3, 4, 5]
    assert letters[0].event == "{oops"
    assert "invalid JSON" in letters[0].reason
    assert "$.type" in letters[1].reason
    assert letters[2].event is None
    assert letters[2].event_hex == bad[2].hex()
    assert "missing required field" in letters[3].reason


@pytest.mark.parametrize("workers", [1, 2])
def test_until_fires_deferred_touches_after_the_input_ends(tmp_path: Path, workers: int) -> None:
    events = [
        {
            "id": "a",
            "type": "profile",
            "prospect": "p",
            "ts": "2026-03-03T02:00:00Z",
            "timezone": "America/New_York",
        },
        {
            "id": "b",
            "type": "consent",
            "prospect": "p",
            "ts": "2026-03-03T02:00:00Z",
            "channel": "sms",
            "granted": True,
        },
        {"id": "c", "type": "proposal_view", "prospect": "p", "ts": "2026-03-03T03:00:00Z"},
    ]
    path = tmp_path / "night.jsonl"
    _write(path, events)
    without = replay(path, ENGINE, workers=workers)
    assert without.commands == []
    assert [d.verdict for d in without.decisions] == ["deferred"]
    opening = "2026-03-03T13:00:00Z"  # 08:00 in New York
    from operators.timeutil import parse_ts

    early = replay(path, ENGINE, until=parse_ts(opening) - 1, workers=workers)
    assert early.commands == []
    fired = replay(path, ENGINE, until=parse_ts(opening), workers=workers)
    assert [(c.channel, c.ts) for c in fired.commands] == [("sms", opening)]
