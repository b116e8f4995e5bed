"""The gateway's local spool: where a request's events wait, durably, while Redis is away.

A request is answered 2xx only once its events are durable, in Redis or here. The spool is a
directory of append-only segment files (`seg-<n>.log`) plus a `committed` file naming how far
the drain has got (`<segment> <offset>`):

1. `append` writes one framed record (`connectors/spool_frame.py`: a marker, the length and two
   CRCs, then the payload) and fsyncs it (and the directory, for a new segment) before it
   returns; only then is the request answered. A write that fails is cut back off the file, so
   the next record never follows garbage, and the request gets 503.
2. The drain reads records in order from the committed position, writes each to Redis (the same
   write as a live request's), and only then moves `committed` forward: written to a temporary
   file, fsynced, renamed over the old one, the directory fsynced.
3. Once everything is drained, appends move to a fresh segment (created, then `committed` points
   at it, then the old segments are deleted), so the spool never grows beyond an outage.

A kill at any point loses nothing acknowledged: an acknowledged record was fsynced whole before
the answer, and `committed` only ever moves past records already in Redis. A record past
`committed` may already be in Redis (killed between 2's write and its commit): it is written
again at the next start, and appends nothing twice, because every event append is guarded by a
marker per event id and prospect (`connectors/identity.py`). Without the markers the duplicate
would still be harmless to the engine, which drops an event id it has seen for that prospect
(within its last `limits.dedupe_ids`). A record torn by the kill was never acknowledged (its
fsync had not returned): recovery cuts it off the end of the last segment.

Damaged bytes (a disk's bit rot, a stray write) cost only the records they touch: the reader
finds the next intact record after them by its marker and CRCs, and hands the damaged stretch
over as a `damaged` record (its first `DAMAGED_KEPT` bytes), which the drain dead-letters.
Recovery at start tells a damaged record at the end of the newest segment (acknowledged: kept,
reported) from an append a crash cut short (never acknowledged: cut off).
"""

import logging
import os
import re
import threading
from pathlib import Path
from typing import BinaryIO, Final, Literal, NamedTuple

from connectors.spool_frame import Damaged, Intact, Torn, frame, scan

log = logging.getLogger(__name__)

_SEGMENT: Final = re.compile(r"^seg-(\d{12})\.log$")
DAMAGED_KEPT: Final = 1 << 20  # bytes of a damaged stretch handed to the dead letter, at most


class SpoolError(OSError):
    """The spool cannot be written (disk full, read-only, gone): the request gets 503."""


class Position(NamedTuple):
    """A place in the spool: a segment number and a byte offset in it."""

    segment: int
    offset: int


class Record(NamedTuple):
    """What the drain reads next, and the position just after it (what to commit once handled).

    `record`: a payload as appended. `damaged`: bytes that are no intact record (`payload` holds
    the first `DAMAGED_KEPT` of `size`), for the dead-letter stream. `skip`: nothing to handle,
    only a position to move to (the end of a segment).
    """

    kind: Literal["record", "damaged", "skip"]
    payload: bytes
    end: Position
    start: Position
    size: int


class Spool:
    """An fsynced append-only queue of records in a directory; thread-safe.

    One process owns a spool directory at a time (the gateway serving it).
    """

    def __init__(self, directory: Path | str) -> None:
        self._dir = Path(directory)
        self._lock = threading.Lock()
        self._committed = Position(0, 0)
        self._tail = Position(0, 0)  # the end of the newest segment: where appends go
        self._file: int | None = None

    @property
    def directory(self) -> Path:
        return self._dir

    def open(self) -> None:
        """Create or recover the spool: drop fully drained segments, cut a torn tail."""
        self._dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._committed = self._read_committed()
            segments = self._segments()
            for number in segments:
                if number < self._committed.segment:
                    (self._dir / _name(number)).unlink(missing_ok=True)
            live = [n for n in segments if n >= self._committed.segment]
            if not live:
                live = [self._committed.segment]
                self._create(self._committed.segment)
            newest = live[-1]
            path = self._dir / _name(newest)
            good = self._good_length(newest)
            if path.stat().st_size != good:
                log.warning("spool: cutting an unacknowledged torn record off %s", path.name)
                os.truncate(path, good)
                _fsync_path(path)
            self._tail = Position(newest, good)
            self._file = os.open(path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                os.close(self._file)
                self._file = None

    def pending(self) -> bool:
        """True while some record is not drained yet (new requests must queue behind it)."""
        return self._committed != self._tail

    def append(self, payload: bytes) -> None:
        """Write one record and fsync it; SpoolError if it cannot be made durable."""
        try:
            data = frame(payload)
        except ValueError as exc:
            raise SpoolError(str(exc)) from None
        with self._lock:
            if self._file is None:
                msg = "spool is not open"
                raise SpoolError(msg)
            try:
                written = os.write(self._file, data)
                if written != len(data):
                    msg = f"short write to the spool ({written} of {len(data)} bytes)"
                    raise SpoolError(msg)
                os.fsync(self._file)
            except OSError as exc:
                self._cut_back()
                msg = f"cannot write the spool in {self._dir}: {exc.strerror or exc}"
                raise SpoolError(msg) from None
            self._tail = Position(self._tail.segment, self._tail.offset + len(data))

    def read(self, limit: int) -> list[Record]:
        """Up to `limit` records after the committed position, oldest first.

        Only up to the tail as it was on entry: a record is inside the tail only once it is
        whole and fsynced, so a concurrent append is never half-read. Everything inside the
        tail was acknowledged, so bytes there that are no intact record are `damaged` (logged),
        never torn; the intact records after them are read on.
        """
        records: list[Record] = []
        at = self._committed
        with self._lock:
            tail = self._tail
        while len(records) < limit and at != tail:
            path = self._dir / _name(at.segment)
            end = tail.offset if at.segment == tail.segment else _size(path)
            if at.offset < end:
                with path.open("rb") as file:
                    for item in scan(file, at.offset, end, tail=False):
                        records.append(_record(file, at.segment, item))
                        at = records[-1].end
                        if len(records) >= limit:
                            break
            if at.offset >= end and at != tail:
                nxt = Position(at.segment + 1, 0) if at.segment < tail.segment else tail
                records.append(Record("skip", b"", nxt, at, 0))
                at = nxt
        for record in records:
            if record.kind == "damaged":
                log.error(
                    "spool: %d damaged bytes in %s at byte %d (no intact record); "
                    "dead-lettered, the records after them are read on",
                    record.size,
                    _name(record.start.segment),
                    record.start.offset,
                )
        return records

    def commit(self, position: Position) -> None:
        """Record that everything before `position` is in Redis (atomic rename, fsynced)."""
        with self._lock:
            self._write_committed(position)
            self._committed = position

    def finish_if_drained(self) -> bool:
        """If everything is drained, start a fresh segment and drop the old ones; True if so."""
        with self._lock:
            if self._committed != self._tail:
                return False
            if self._tail.offset == 0:
                return True
            fresh = self._tail.segment + 1
            self._create(fresh)
            self._write_committed(Position(fresh, 0))
            if self._file is not None:
                os.close(self._file)
            self._file = os.open(self._dir / _name(fresh), os.O_WRONLY | os.O_APPEND)
            for number in self._segments():
                if number < fresh:
                    (self._dir / _name(number)).unlink(missing_ok=True)
            self._committed = self._tail = Position(fresh, 0)
            return True

    def _cut_back(self) -> None:
        """After a failed append: the file back to its last good length, if at all possible."""
        try:
            os.truncate(self._dir / _name(self._tail.segment), self._tail.offset)
        except OSError:
            log.exception("spool: cannot cut a failed append back; the spool is unusable")
            if self._file is not None:
                os.close(self._file)
                self._file = None

    def _segments(self) -> list[int]:
        found = (_SEGMENT.match(p.name) for p in self._dir.iterdir())
        return sorted(int(m[1]) for m in found if m is not None)

    def _create(self, number: int) -> None:
        path = self._dir / _name(number)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        _fsync_path(self._dir)

    def _good_length(self, number: int) -> int:
        """The segment's length without a torn last append (damaged stretches are kept: they
        were acknowledged, and the drain reports them)."""
        path = self._dir / _name(number)
        size = path.stat().st_size
        start = self._committed.offset if number == self._committed.segment else 0
        with path.open("rb") as file:
            for item in scan(file, min(start, size), size, tail=True):
                if isinstance(item, Torn):
                    return item.start
        return size

    def _read_committed(self) -> Position:
        try:
            text = (self._dir / "committed").read_text().split()
            return Position(int(text[0]), int(text[1]))
        except FileNotFoundError:
            return Position(0, 0)
        except (ValueError, IndexError):
            log.error("spool: unreadable `committed` file; draining from the oldest segment")
            segments = self._segments()
            return Position(segments[0] if segments else 0, 0)

    def _write_committed(self, position: Position) -> None:
        tmp = self._dir / "committed.tmp"
        with tmp.open("w") as file:
            file.write(f"{position.segment} {position.offset}\n")
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(self._dir / "committed")
        _fsync_path(self._dir)


def _record(file: BinaryIO, segment: int, item: Intact | Damaged | Torn) -> Record:
    if isinstance(item, Intact):
        return Record(
            "record",
            item.payload,
            Position(segment, item.end),
            Position(segment, item.start),
            len(item.payload),
        )
    assert isinstance(item, Damaged)  # scan(tail=False) gives no Torn
    file.seek(item.start)
    kept = file.read(min(item.end - item.start, DAMAGED_KEPT))
    return Record(
        "damaged",
        kept,
        Position(segment, item.end),
        Position(segment, item.start),
        item.end - item.start,
    )


def _name(number: int) -> str:
    return f"seg-{number:012d}.log"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
