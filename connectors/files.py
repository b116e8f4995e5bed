"""JSON Lines in and out, for replay: a one-partition file source and an in-memory collector.

Replay output must be byte-identical whatever the worker count, but workers interleave their
output. So sinks only collect, and `dataflows.replay` writes everything in one canonical order
after the run.
"""

from pathlib import Path
from typing import Any, Final

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

# A raw input line: (1-based line number, the bytes without the newline).
RawLine = tuple[int, bytes]
# Resume position: (byte offset of the next line, its line number).
FilePosition = tuple[int, int]

_PART: Final = "file"


class _JsonLinesPartition(StatefulSourcePartition[RawLine, FilePosition]):
    def __init__(self, path: Path, batch_size: int, resume: FilePosition | None) -> None:
        offset, self._line = resume if resume is not None else (0, 0)
        self._file = path.open("rb")
        self._file.seek(offset)
        self._batch_size = batch_size
        self._eof = False

    def next_batch(self) -> list[RawLine]:
        if self._eof:
            raise StopIteration
        batch: list[RawLine] = []
        readline = self._file.readline
        line_no = self._line
        while len(batch) < self._batch_size:
            raw = readline()
            if not raw:
                self._eof = True
                break
            line_no += 1
            raw = raw.strip()
            if raw:
                batch.append((line_no, raw))
        self._line = line_no
        return batch

    def snapshot(self) -> FilePosition:
        return (self._file.tell(), self._line)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource(FixedPartitionedSource[RawLine, FilePosition]):
    """Lines of one file in file order, as (line number, bytes); blank lines are skipped."""

    def __init__(self, path: Path | str, batch_size: int = 2048) -> None:
        self.path = Path(path)
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [_PART]

    def build_part(
        self, step_id: str, for_part: str, resume_state: FilePosition | None
    ) -> _JsonLinesPartition:
        return _JsonLinesPartition(self.path, self.batch_size, resume_state)


class _CollectPartition(StatelessSinkPartition[Any]):
    def __init__(self, into: list[Any]) -> None:
        self._into = into

    def write_batch(self, items: list[Any]) -> None:
        self._into.extend(items)


class CollectSink(DynamicSink[Any]):
    """Collects every item of every worker into one list (worker threads share the process)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CollectPartition:
        return _CollectPartition(self.items)
