"""The spool on its own: order, commits, rotation, and recovery after a torn write."""

import os
from pathlib import Path

from connectors.spool import Position, Spool


def payloads(spool: Spool) -> list[bytes]:
    return [r.payload for r in spool.read(1000) if r.payload]


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
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b"one")
    spool.append(b"two")
    spool.commit(spool.read(1)[0].end)
    spool.close()
    segment = tmp_path / "seg-000000000000.log"
    with segment.open("ab") as file:  # a kill in the middle of a third append
        file.write(b"00000005 12345678 thr")
    size = segment.stat().st_size
    recovered = Spool(tmp_path)
    recovered.open()
    assert segment.stat().st_size < size
    assert payloads(recovered) == [b"two"]
    recovered.append(b"three")
    assert payloads(recovered) == [b"two", b"three"]


def test_a_corrupt_record_is_skipped_not_stuck(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append(b"good")
    spool.append(b"flipped")
    spool.append(b"also good")
    segment = tmp_path / "seg-000000000000.log"
    data = bytearray(segment.read_bytes())
    data[data.index(b"flipped")] ^= 0x01
    segment.write_bytes(bytes(data))
    records = spool.read(10)
    assert [r.payload for r in records if r.payload] == [b"good"]
    assert records[-1].end == Position(0, os.path.getsize(segment))
    spool.commit(records[-1].end)
    assert not spool.pending()
