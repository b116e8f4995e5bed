"""A policy file is merged over config/default.toml (CONTRACT.md section 4): what a file leaves
out keeps the default, so a partial file never silently weakens a rule."""

import copy
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.policy import DEFAULT_CONFIG, Policy, default_table, load_policy, parse_policy

DEFAULT = load_policy()
DOC: dict[str, Any] = tomllib.loads(DEFAULT_CONFIG.read_text())
STRICT_REGIONS = {
    "US-FL": ("08:00", "20:00"),
    "US-OK": ("08:00", "20:00"),
    "US-MD": ("08:00", "20:00"),
}
SEQUENCES = {"basic", "surround", "escalation", "sms_first", "email_first"}


def _regions(p: Policy) -> dict[str, tuple[str, str]]:
    return {r: (h.start, h.end) for r, h in p.quiet_hours.regions.items()}


def _file(tmp_path: Path, text: str) -> Policy:
    config = tmp_path / "policy.toml"
    config.write_text(text)
    return load_policy(config)


def test_a_file_holding_only_caps_keeps_the_stricter_regions_and_the_sequences(
    tmp_path: Path,
) -> None:
    p = _file(tmp_path, '[[caps]]\nname = "week"\nhours = 168\ntotal = 4\n')
    assert _regions(p) == STRICT_REGIONS
    assert set(p.sequences) == SEQUENCES
    assert p.sequences == DEFAULT.sequences
    assert (p.quiet_hours.start, p.quiet_hours.end) == ("08:00", "21:00")
    assert p.consent == DEFAULT.consent
    assert p.keywords == DEFAULT.keywords


def test_caps_merge_by_name(tmp_path: Path) -> None:
    p = _file(tmp_path, '[[caps]]\nname = "week"\nhours = 100\ntotal = 2\n')
    week, day = p.caps
    # The redefined entry replaces the default entry whole: its per_channel is not inherited.
    assert (week.name, week.hours, week.total, week.per_channel) == ("week", 100, 2, {})
    assert day == DEFAULT.caps[1]


def test_new_caps_are_appended_and_order_is_kept(tmp_path: Path) -> None:
    text = (
        '[[caps]]\nname = "month"\nhours = 720\ntotal = 12\n'
        '[[caps]]\nname = "day"\nhours = 24\ntotal = 2\n'
    )
    p = _file(tmp_path, text)
    assert [w.name for w in p.caps] == ["week", "day", "month"]
    assert p.caps[0] == DEFAULT.caps[0]
    assert (p.caps[1].total, p.caps[2].hours) == (2, 720)


def test_an_explicit_empty_caps_array_removes_every_cap(tmp_path: Path) -> None:
    """The one way to say "no cap windows": it must be written, it cannot happen by omission."""
    p = _file(tmp_path, "caps = []\n")
    assert p.caps == []
    assert _regions(p) == STRICT_REGIONS


def test_a_file_adding_a_region_keeps_the_default_regions(tmp_path: Path) -> None:
    p = _file(tmp_path, '[quiet_hours.regions]\n"US-TX" = { start = "09:00", end = "20:00" }\n')
    assert _regions(p) == {**STRICT_REGIONS, "US-TX": ("09:00", "20:00")}
    assert p.caps == DEFAULT.caps


def test_a_file_may_still_change_a_default_region_explicitly(tmp_path: Path) -> None:
    p = _file(tmp_path, '[quiet_hours.regions]\n"US-FL" = { start = "09:00", end = "19:00" }\n')
    assert _regions(p) == {**STRICT_REGIONS, "US-FL": ("09:00", "19:00")}


def test_tables_merge_key_by_key(tmp_path: Path) -> None:
    p = _file(tmp_path, '[limits]\ndedupe_ids = 64\n[quiet_hours]\nend = "20:30"\n')
    assert p.limits.dedupe_ids == 64
    assert p.limits == msgspec.structs.replace(DEFAULT.limits, dedupe_ids=64)
    assert (p.quiet_hours.start, p.quiet_hours.end) == ("08:00", "20:30")
    assert p.quiet_hours.channels == ["sms", "phone"]


def test_nested_tables_merge_key_by_key(tmp_path: Path) -> None:
    p = _file(tmp_path, "[preference.priors.traditional]\nsms = 0.2\n")
    assert p.preference.priors["traditional"] == {
        **DEFAULT.preference.priors["traditional"],
        "sms": 0.2,
    }
    assert p.preference.priors["default"] == DEFAULT.preference.priors["default"]


def test_sequences_merge_by_name(tmp_path: Path) -> None:
    text = (
        '[sequences.basic]\nsteps = [{ channel = "email", topic = "only" }]\n'
        '[sequences.mine]\nsteps = [{ channel = "sms", topic = "hello" }]\n'
    )
    p = _file(tmp_path, text)
    assert set(p.sequences) == {*SEQUENCES, "mine"}
    assert [s.topic for s in p.sequences["basic"].steps] == ["only"]  # replaced whole
    assert p.sequences["surround"] == DEFAULT.sequences["surround"]


def test_other_arrays_are_replaced_whole(tmp_path: Path) -> None:
    text = (
        '[consent]\nrequired = ["email"]\n[keywords]\nstop = ["HALT"]\n'
        '[quiet_hours]\nchannels = ["phone"]\nfallback_timezones = ["Europe/Paris"]\n'
    )
    p = _file(tmp_path, text)
    assert p.consent.required == ["email"]
    assert p.keywords.stop == ["HALT"]
    assert p.keywords.start == DEFAULT.keywords.start
    assert p.quiet_hours.channels == ["phone"]
    assert p.quiet_hours.fallback_timezones == ["Europe/Paris"]


def test_merging_never_changes_the_defaults() -> None:
    before = copy.deepcopy(default_table())
    regions = '[quiet_hours.regions.X]\nstart = "09:00"\nend = "10:00"\n'
    parse_policy('[[caps]]\nname = "week"\nhours = 1\n' + regions + "[limits]\ndedupe_ids = 1")
    parse_policy('caps = []\n[sequences.basic]\nsteps = [{ channel = "sms", topic = "t" }]')
    assert default_table() == before
    assert load_policy() == DEFAULT


def test_the_default_file_merged_over_itself_is_the_default() -> None:
    assert load_policy(DEFAULT_CONFIG) == DEFAULT
    assert parse_policy(DEFAULT_CONFIG.read_bytes()) == DEFAULT


@st.composite
def _part_of(draw: st.DrawFn, value: Any, top: bool = False) -> Any:
    """Any part of the default document: tables keep a subset of their keys (each part of a
    part), caps and sequences a subset of their entries; other values stay whole."""
    if isinstance(value, dict):
        keys = draw(st.lists(st.sampled_from(sorted(value)), unique=True)) if value else []
        out: dict[str, Any] = {}
        for key in keys:
            if top and key == "caps":
                caps = draw(
                    st.lists(st.sampled_from(value[key]), min_size=1, unique_by=lambda c: c["name"])
                )
                out[key] = caps
            elif top and key == "sequences":
                names = draw(st.lists(st.sampled_from(sorted(value[key])), unique=True))
                out[key] = {n: value[key][n] for n in names}
            else:
                out[key] = draw(_part_of(value[key]))
        return out
    return value


@settings(max_examples=200, deadline=None)
@given(_part_of(DOC, top=True))
def test_any_part_of_the_default_file_gives_the_default_policy(part: dict[str, Any]) -> None:
    assert parse_policy(tomli_w.dumps(part), "part.toml") == DEFAULT


@settings(max_examples=100, deadline=None)
@given(
    part=_part_of(DOC, top=True),
    region=st.from_regex(r"[A-Z]{2}-[A-Z]{2}", fullmatch=True),
    start=st.integers(0, 22),
)
def test_adding_a_region_to_any_part_keeps_every_default_region(
    part: dict[str, Any], region: str, start: int
) -> None:
    qh = part.setdefault("quiet_hours", {})
    regions = qh.setdefault("regions", {})
    regions[region] = {"start": f"{start:02d}:00", "end": f"{start + 1:02d}:00"}
    p = parse_policy(tomli_w.dumps(part), "part.toml")
    expected = {**STRICT_REGIONS, region: (f"{start:02d}:00", f"{start + 1:02d}:00")}
    assert _regions(p) == expected
    assert p.caps == DEFAULT.caps
    assert p.sequences == DEFAULT.sequences


@pytest.mark.parametrize(
    "text", ["", "caps = []", '[quiet_hours.regions]\nX = { start = "09:00", end = "17:00" }']
)
def test_a_policy_written_out_whole_reads_back_the_same(text: str) -> None:
    """`touchflow demo --live` hands its workers the policy encoded whole: merged over the
    defaults again, it must be the same policy (an empty caps array stays empty)."""
    policy = parse_policy(text)
    assert parse_policy(msgspec.toml.encode(policy), "whole.toml") == policy
