"""The spool's record framing, and a reader that finds its way back after damaged bytes.

A record is `MAGIC, length, crc32(payload), crc32(header)` (16 bytes, little-endian) then the
payload. Why each part:

- The header carries a CRC of its own, so a damaged `length` is caught before it is believed:
  without it one flipped bit in a length would swallow every record after it (or claim a
  record runs past the end, which looks like a torn append and would be cut off).
- `MAGIC` starts with 0xFF 0xFE, bytes that never occur in UTF-8, so never inside the
  gateway's JSON payloads: after damaged bytes, the reader scans forward for the next MAGIC
  whose header and payload CRCs both hold, and goes on from there (`scan`). Only the damaged
  bytes are lost; every intact record after them is still read. A false match would need both
  CRCs to hold by chance (about 2^-64).
- At the end of the newest segment, bytes that are not a record are told apart: an append cut
  short by a crash (a prefix of a frame: MAGIC then too few bytes, or a whole header whose
  payload runs past the end, or the zeros some filesystems leave) was never acknowledged and is
  `Torn`; anything else is `Damaged` and reported.
"""

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO, Final, NamedTuple

MAGIC: Final = b"\xff\xfeTF"
_HEAD: Final = struct.Struct("<4sII")  # magic, payload length, payload crc32
_HEADER_CRC: Final = struct.Struct("<I")
HEADER_SIZE: Final = _HEAD.size + _HEADER_CRC.size
MAX_PAYLOAD: Final = 0xFFFFFFFF
_SCAN_CHUNK: Final = 1 << 16


class Intact(NamedTuple):
    """A whole record whose CRCs hold: its payload, and where the next one starts."""

    start: int
    end: int
    payload: bytes


class Damaged(NamedTuple):
    """Bytes `[start, end)` that are no intact record (bit rot, a stray write): reported."""

    start: int
    end: int


class Torn(NamedTuple):
    """From `start` to the end: an append a crash cut short (never acknowledged)."""

    start: int


Item = Intact | Damaged | Torn


def frame(payload: bytes) -> bytes:
    """The bytes `append` writes for `payload` (ValueError past 4 GiB)."""
    if len(payload) > MAX_PAYLOAD:
        msg = f"spool record too large: {len(payload)} bytes"
        raise ValueError(msg)
    head = _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload))
    return head + _HEADER_CRC.pack(zlib.crc32(head)) + payload


def scan(file: BinaryIO, start: int, end: int, *, tail: bool) -> Iterator[Item]:
    """The records of `file` between `start` (a record's start) and `end`, in order, with the
    damaged stretches between them. With `tail` (the newest segment, right after a restart), a
    last stretch that is an append cut short comes out as `Torn`; otherwise it is `Damaged`."""
    at = start
    while at < end:
        found = _parse(file, at, end)
        if isinstance(found, Intact):
            yield found
            at = found.end
            continue
        if tail and (found in ("short", "partial") or _zeros(file, at, end)):
            yield Torn(at)
            return
        resumed = _resync(file, at + 1, end, tail=tail)
        if resumed is None:
            yield Damaged(at, end)
            return
        yield Damaged(at, resumed)
        at = resumed


def _parse(file: BinaryIO, at: int, end: int) -> Intact | str:
    """The record at `at`, or why not: `short` (a header whose CRC holds, but the record runs
    past `end`), `partial` (fewer bytes than a header, starting like MAGIC): what a torn append
    leaves; else `bad`."""
    file.seek(at)
    header = file.read(min(HEADER_SIZE, end - at))
    if len(header) < HEADER_SIZE:
        shown = min(len(header), len(MAGIC))
        return "partial" if header[:shown] == MAGIC[:shown] else "bad"
    magic, length, crc = _HEAD.unpack_from(header)
    (header_crc,) = _HEADER_CRC.unpack_from(header, _HEAD.size)
    if magic != MAGIC or zlib.crc32(header[: _HEAD.size]) != header_crc:
        return "bad"
    stop = at + HEADER_SIZE + length
    if stop > end:
        return "short"
    payload = file.read(length)
    if len(payload) != length or zlib.crc32(payload) != crc:
        return "bad"
    return Intact(at, stop, payload)


def _resync(file: BinaryIO, at: int, end: int, *, tail: bool) -> int | None:
    """The first offset from `at` where an intact record starts (or, with `tail`, a torn append
    with a whole header does), or None. Only checked headers count: a payload may hold MAGIC."""
    while at < end:
        file.seek(at)
        chunk = file.read(min(_SCAN_CHUNK, end - at))
        hit = chunk.find(MAGIC)
        while hit >= 0:
            found = _parse(file, at + hit, end)
            if isinstance(found, Intact) or (tail and found == "short"):
                return at + hit
            hit = chunk.find(MAGIC, hit + 1)
        if at + len(chunk) >= end:
            return None
        # the next read overlaps this one by 3 bytes: a MAGIC cut by the chunk's end is found
        at += len(chunk) - (len(MAGIC) - 1)
    return None


def _zeros(file: BinaryIO, at: int, end: int) -> bool:
    """True if `[at, end)` is all zero bytes (a file extended whose data never reached disk)."""
    file.seek(at)
    while at < end:
        chunk = file.read(min(_SCAN_CHUNK, end - at))
        if not chunk or chunk.count(0) != len(chunk):
            return False
        at += len(chunk)
    return True
