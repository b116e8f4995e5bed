"""The traffic simulator: deterministic, contract-valid, realistic enough to exercise every rule."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import orjson
import pytest

from dataflows.demo.simulate import STORIES, EventDict, generate, write_jsonl
from operators.events import EVENT_TYPES, decode_event

START = datetime(2025, 6, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def day() -> list[EventDict]:
    """A big enough day that rare kinds (complaints, do-not-contact) occur."""
    return generate(2000, seed=11, start=START)


def test_same_seed_same_events_and_bytes(tmp_path: Path) -> None:
    first = generate(200, seed=5, start=START)
    second = generate(200, seed=5, start=START)
    assert first == second
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(first, a, malformed_fraction=0.01, seed=5)
    write_jsonl(second, b, malformed_fraction=0.01, seed=5)
    assert a.read_bytes() == b.read_bytes()


def test_different_seed_different_events() -> None:
    assert generate(200, seed=5, start=START) != generate(200, seed=6, start=START)


def test_every_event_decodes_to_its_type(day: list[EventDict]) -> None:
    for event in day:
        decoded = decode_event(orjson.dumps(event))
        assert decoded.id == event["id"]
        assert decoded.prospect == event["prospect"]
        assert type(decoded).__struct_config__.tag == event["type"]


def test_ids_unique_except_exact_redeliveries(day: list[EventDict]) -> None:
    counts = Counter(e["id"] for e in day)
    repeated = {i for i, n in counts.items() if n > 1}
    assert all(counts[i] == 2 for i in repeated)
    assert 0 < len(repeated) < 0.01 * len(day)
    first: dict[object, EventDict] = {}
    for event in day:
        if event["id"] in first:
            assert event == first[event["id"]], "a redelivery must be the same event"
        first[event["id"]] = event
    unique = generate(300, seed=11, start=START, duplicate_fraction=0.0)
    assert len({e["id"] for e in unique}) == len(unique)


def test_sorted_by_time_inside_the_window(day: list[EventDict]) -> None:
    times = [datetime.fromisoformat(str(e["ts"])) for e in day]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < START + timedelta(hours=24)


def test_profile_comes_first_for_every_prospect(day: list[EventDict]) -> None:
    first: dict[object, object] = {}
    for event in day:
        first.setdefault(event["prospect"], event["type"])
    assert len(first) == 2000, "stories count towards the prospects asked for"
    assert set(first.values()) == {"profile"}
    assert set(STORIES) <= set(first)


def test_volume_follows_events_per_prospect() -> None:
    for target in (4.0, 10.0, 25.0):
        events = generate(2000, seed=3, start=START, events_per_prospect=target, stories=False)
        assert len(events) / 2000 == pytest.approx(target, rel=0.1)


def test_realistic_mix(day: list[EventDict]) -> None:
    """Every kind of event the rules react to shows up, in its interesting variants."""
    types = Counter(e["type"] for e in day)
    assert set(types) == set(EVENT_TYPES) - {"touch_failed"}
    assert types["complaint"] < types["bounce"] < types["page_view"]
    profiles = [e for e in day if e["type"] == "profile"]
    assert any("timezone" not in p and "phone" in p for p in profiles), "phone-only profiles"
    assert {p.get("region") for p in profiles} >= {"US-FL", "US-OK", "US-MD"}
    assert {p["segment"] for p in profiles} == {"digital_native", "digital_adopter", "traditional"}
    assert any(str(p.get("phone", "")).startswith("+44") for p in profiles)
    sms_texts = {e.get("text") for e in day if e["type"] == "replied" and e["channel"] == "sms"}
    assert {"STOP", " stop ", "START"} <= sms_texts
    sentiments = {e.get("sentiment") for e in day if e["type"] == "replied"}
    assert sentiments >= {"positive", "neutral", "negative", "out_of_office"}
    assert {e["hard"] for e in day if e["type"] == "bounce"} == {True, False}
    assert "all" in {e["channel"] for e in day if e["type"] == "opt_out"}
    requests = [e for e in day if e["type"] == "touch_request"]
    assert {"auto", "email", "sms", "phone"} <= {r["channel"] for r in requests}
    assert any(r.get("transactional") for r in requests)
    prefs = {(e["channel"], e["stance"]) for e in day if e["type"] == "preference"}
    assert {("phone", "avoid"), ("phone", "only")} <= prefs
    manual = [e for e in day if e["type"] == "touch_sent"]
    assert manual
    assert all("command" not in e for e in manual)
    assert any("/pricing" in str(e["url"]) for e in day if e["type"] == "page_view")
    assert all("url" in e for e in day if e["type"] == "clicked")


def test_stories_are_scripted_in_local_time(day: list[EventDict]) -> None:
    alice = [e for e in day if e["prospect"] == "demo-alice"]
    form = next(e for e in alice if e["type"] == "form_submit")
    local = datetime.fromisoformat(str(form["ts"])).astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (23, 0)
    carol = [e for e in day if e["prospect"] == "demo-carol"]
    stop = next(i for i, e in enumerate(carol) if e.get("text") == "STOP")
    sms_request = next(
        i for i, e in enumerate(carol) if e["type"] == "touch_request" and e["channel"] == "sms"
    )
    assert stop < sms_request
    assert generate(50, seed=11, start=START) != generate(50, seed=11, start=START, stories=False)


def test_write_jsonl_injects_only_rejected_lines(tmp_path: Path) -> None:
    events = generate(300, seed=2, start=START)
    path = tmp_path / "events.jsonl"
    lines = write_jsonl(events, path, malformed_fraction=0.05, seed=2)
    raw = path.read_bytes().splitlines()
    assert len(raw) == lines
    good: list[EventDict] = []
    rejected = 0
    for line in raw:
        try:
            decode_event(line)
        except (msgspec.DecodeError, ValueError):
            rejected += 1
            continue
        good.append(orjson.loads(line))
    assert good == events, "malformed lines are added, never replace or alter real events"
    assert rejected == lines - len(events)
    assert 0.03 * len(events) < rejected < 0.07 * len(events)


def test_write_jsonl_without_malformed_is_clean(tmp_path: Path) -> None:
    events = generate(50, seed=2, start=START)
    path = tmp_path / "events.jsonl"
    assert write_jsonl(events, path) == len(events)
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == events


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, seed=1, start=datetime(2025, 6, 3))
    with pytest.raises(ValueError, match="prospects"):
        generate(-1, seed=1, start=START)
    with pytest.raises(ValueError, match="malformed_fraction"):
        write_jsonl([], tmp_path / "x.jsonl", malformed_fraction=1.5)
