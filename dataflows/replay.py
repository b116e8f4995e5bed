"""`touchflow replay`: the live dataflow over a file, in event time, with byte-identical output.

Outputs are written after the run in one canonical order — (time, prospect, per-prospect
sequence) for commands and decisions, line number for dead letters — so 1 or N workers produce
the same bytes.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bytewax.testing import cluster_main, run_main

from connectors.files import CollectSink, JsonLinesSource
from dataflows.outreach import replay_flow
from operators.engine import Engine
from operators.records import ENCODER, Command, DeadLetter, Decision

# A collected output: (ts_ms, prospect, seq, record).
Row = tuple[int, str, int, Command | Decision]


@dataclass
class ReplayResult:
    """Everything a replay produced, already in canonical order."""

    commands: list[Command] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def replay(
    events: Path | str,
    engine: Engine,
    *,
    until: int | None = None,
    workers: int = 1,
    batch_size: int = 2048,
) -> ReplayResult:
    """Run the dataflow over a JSON Lines file and return its outputs in canonical order."""
    path = Path(events)
    with path.open("rb"):
        pass  # fail here, with the OS's reason, before starting any worker
    outputs = CollectSink()
    dead = CollectSink()
    flow = replay_flow(JsonLinesSource(path, batch_size), outputs, dead, engine, until=until)
    if workers == 1:
        run_main(flow)  # type: ignore[no-untyped-call]
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)  # type: ignore[no-untyped-call]
    return collate(outputs.items, dead.items)


def collate(effects: Iterable[tuple[str, Any]], dead: Iterable[DeadLetter]) -> ReplayResult:
    """Flatten (prospect, outputs) items and order them canonically."""
    rows: list[Row] = [
        (ts, prospect, seq, record) for prospect, outs in effects for ts, seq, record in outs
    ]
    rows.sort(key=_row_key)
    result = ReplayResult()
    for row in rows:
        record = row[3]
        if type(record) is Command:
            result.commands.append(record)
        else:
            result.decisions.append(record)  # type: ignore[arg-type]
    result.dead_letters = sorted(dead, key=_line_key)
    return result


def _row_key(row: Row) -> tuple[int, str, int]:
    return row[0], row[1], row[2]


def _line_key(letter: DeadLetter) -> int:
    return letter.line or 0


def write_jsonl(records: Iterable[Command | Decision | DeadLetter], out: IO[bytes]) -> None:
    """One JSON object per line, UTF-8, in the order given."""
    encode = ENCODER.encode
    out.writelines(encode(r) + b"\n" for r in records)
