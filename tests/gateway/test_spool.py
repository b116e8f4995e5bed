"""The spool on its own: order, commits, rotation, recovery after a torn write, and damaged bytes
that cost only the records they touch (the records after them are still read, exactly once)."""

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.spool import Position, Record, Spool
from connectors.spool_frame import HEADER_SIZE, frame

SEGMENT = "seg-000000000000.log"


def payloads(spool: Spool) -> list[bytes]:
    return [r.payload for r in spool.read(1000) if r.kind == "record"]


def filled(directory: Path, records: list[bytes]) -> Spool:
    spool = Spool(directory)
    spool.open()
    for payload in records:
        spool.append(payload)
    return spool


def damage(path: Path, start: int, flips: bytes) -> None:
    """XOR `flips` into the file at `start` (nonzero bytes: each one really changes)."""
    data = bytearray(path.read_bytes())
    for i, flip in enumerate(flips):
        data[start + i] ^= flip
    path.write_bytes(bytes(data))


def drain(spool: Spool) -> list[Record]:
    """Everything, read in small chunks and committed after each, as the gateway's drain does."""
    seen: list[Record] = []
    while spool.pending():
        chunk = spool.read(2)
        seen += chunk
        spool.commit(chunk[-1].end)
    return seen


def test_append_read_commit_and_rotate(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    assert not spool.pending()
    for n in range(5):
        spool.append(b"record %d" % n)
    assert spool.pending()
    records = spool.read(2)
    assert [r.payload for r in records] == [b"record 0", b"record 1"]
    spool.commit(records[-1].end)
    assert payloads(spool) == [b"record 2", b"record 3", b"record 4"]
    assert not spool.finish_if_drained()
    spool.commit(spool.read(1000)[-1].end)
    assert spool.finish_if_drained()
    assert not spool.pending()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["committed", "seg-000000000001.log"]
    spool.append(b"after")
    spool.close()

    again = Spool(tmp_path)
    again.open()
    assert payloads(again) == [b"after"]


def test_a_torn_tail_is_cut_and_committed_survives(tmp_path: Path) -> None:
    spool = filled(tmp_path, [b"one", b"two"])
    spool.commit(spool.read(1)[0].end)
    spool.close()
    segment = tmp_path / SEGMENT
    good = segment.stat().st_size
    for torn in (  # a kill in the middle of a third append, at three depths; or disk zeros
        frame(b"three")[:3],
        frame(b"three")[: HEADER_SIZE + 2],
        frame(b"three")[:HEADER_SIZE],
        bytes(HEADER_SIZE + 5),
    ):
        with segment.open("ab") as file:
            file.write(torn)
        recovered = Spool(tmp_path)
        recovered.open()
        assert segment.stat().st_size == good, torn
        assert payloads(recovered) == [b"two"]
        recovered.close()
    recovered = Spool(tmp_path)
    recovered.open()
    recovered.append(b"three")
    assert payloads(recovered) == [b"two", b"three"]


def test_a_damaged_record_is_reported_and_the_rest_read_on(tmp_path: Path) -> None:
    spool = filled(tmp_path, [b"good", b"flipped", b"also good", b"last"])
    segment = tmp_path / SEGMENT
    damage(segment, segment.read_bytes().index(b"flipped"), b"\x01")
    records = spool.read(10)
    as_damaged = bytearray(frame(b"flipped"))
    as_damaged[HEADER_SIZE] ^= 0x01
    assert [(r.kind, r.payload) for r in records] == [
        ("record", b"good"),
        ("damaged", bytes(as_damaged)),
        ("record", b"also good"),
        ("record", b"last"),
    ]
    assert records[1].size == len(frame(b"flipped"))
    assert records[-1].end == Position(0, os.path.getsize(segment))
    spool.commit(records[-1].end)
    assert not spool.pending()


def test_a_damaged_length_does_not_swallow_the_records_after_it(tmp_path: Path) -> None:
    big = b"x" * 300
    spool = filled(tmp_path, [b"a", big, b"b", b"c"])
    segment = tmp_path / SEGMENT
    second = len(frame(b"a"))
    damage(segment, second + 5, b"\x7f")  # the length field of `big`: now 2 GiB and more
    spool.close()
    recovered = Spool(tmp_path)  # at a restart too: not mistaken for a torn append and cut
    recovered.open()
    records = drain(recovered)
    kinds = [(r.kind, r.payload if r.kind == "record" else r.size) for r in records]
    assert kinds == [("record", b"a"), ("damaged", len(frame(big))), ("record", b"b"),
                     ("record", b"c")]  # fmt: skip
    recovered.append(b"d")
    assert [r.payload for r in drain(recovered)] == [b"d"]


def test_a_damaged_last_record_is_kept_at_a_restart_and_appends_go_after_it(
    tmp_path: Path,
) -> None:
    spool = filled(tmp_path, [b"first", b"acknowledged, then damaged on disk"])
    spool.close()
    segment = tmp_path / SEGMENT
    size = segment.stat().st_size
    damage(segment, size - 3, b"\x20\x20")
    recovered = Spool(tmp_path)
    recovered.open()
    assert segment.stat().st_size == size  # acknowledged: reported, not cut like a torn append
    recovered.append(b"later")
    records = drain(recovered)
    assert [r.kind for r in records] == ["record", "damaged", "record"]
    assert [records[0].payload, records[2].payload] == [b"first", b"later"]


def test_damage_in_an_older_segment(tmp_path: Path) -> None:
    spool = filled(tmp_path, [b"s0-a", b"s0-b", b"s0-c"])
    (tmp_path / "seg-000000000001.log").write_bytes(frame(b"s1-a"))
    spool.close()
    damage(tmp_path / SEGMENT, len(frame(b"s0-a")) + HEADER_SIZE, b"\x02\x02")
    recovered = Spool(tmp_path)
    recovered.open()
    recovered.append(b"s1-b")
    records = [r for r in drain(recovered) if r.kind != "skip"]
    assert [(r.kind, r.payload) for r in records if r.kind == "record"] == [
        ("record", b"s0-a"), ("record", b"s0-c"), ("record", b"s1-a"), ("record", b"s1-b")
    ]  # fmt: skip
    assert [r.start for r in records if r.kind == "damaged"] == [Position(0, len(frame(b"s0-a")))]


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=12),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    flips=st.binary(min_size=1, max_size=40).map(lambda b: bytes(x or 1 for x in b)),
    restart=st.booleans(),
)
def test_any_damage_costs_only_the_records_it_touches(
    records: list[bytes],
    where: float,
    flips: bytes,
    restart: bool,
) -> None:
    """Damage anywhere: every record whose bytes it does not touch is read once, in order; the
    records it touches come out as one damaged stretch covering exactly their frames."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        spool = filled(path, records)
        segment = path / SEGMENT
        size = segment.stat().st_size
        start = int(where * size)
        flips = flips[: size - start]
        damage(segment, start, flips)
        if restart:
            spool.close()
            spool = Spool(path)
            spool.open()
            assert segment.stat().st_size == size
        bounds, at = [], 0
        for payload in records:
            bounds.append((at, at + len(frame(payload))))
            at = bounds[-1][1]
        touched = [i for i, (a, b) in enumerate(bounds) if a < start + len(flips) and start < b]
        read = drain(spool)
        assert [r.payload for r in read if r.kind == "record"] == [
            p for i, p in enumerate(records) if i not in touched
        ]
        damaged = [r for r in read if r.kind == "damaged"]
        assert [(d.start.offset, d.start.offset + d.size) for d in damaged] == [
            (bounds[touched[0]][0], bounds[touched[-1]][1])
        ]
        spool.close()
