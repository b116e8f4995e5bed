"""Byte-identity pins: the engine's outputs, byte for byte, on fixed traffic (issue 11).

Refactors of the decision engine (named records, composition) must not change a single output
byte. Two inputs go through `touchflow replay`'s own code (`dataflows.replay.replay` and its
`write_jsonl`), and the sha256 of each output stream (commands, decisions, dead letters) is
compared with the pins below:

(a) the demo's traffic: `dataflows.demo.simulate.generate` as the replay demo uses it (its
    start day, malformed fraction and until), for `DEMO_PROSPECTS` prospects;
(b) generated streams like the property tests' (`tests.streams`): the same field generators
    (`_event`, `_night`, whose `draw` is here a fixed-seed `random.Random`, so the streams are
    the same on every run and every Hypothesis version), the same loop as `prospect_stream`.

The pins were computed from the code before the refactor of issue 11 (commit caa4a0d). They may
change only with a deliberate change of behaviour, in the same commit that explains it. To
regenerate them after such a change:

    .venv/bin/python -m tests.operators.test_byte_identity

prints the new `PINS` dictionary to paste below. A change of the generators in
`tests.streams` or `dataflows.demo.simulate` changes the inputs and so the pins too: regenerate, and
check with the previous commit that the engine's outputs on the new inputs did not move.
"""

import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import msgspec
import pytest
from hypothesis.strategies import DrawFn, SearchStrategy

from dataflows.demo.simulate import generate
from dataflows.demo.simulate import write_jsonl as write_events
from dataflows.replay import ReplayResult, replay, write_jsonl
from operators.engine import Engine
from operators.policy import load_policy
from operators.timeutil import format_ts, parse_ts, to_ms
from tests.streams import BURST_KINDS, KINDS, START, _event, _night

# As the replay demo (`dataflows.demo.replay_demo`): its day, its malformed lines, its until.
DEMO_START: Final = datetime(2026, 3, 3, tzinfo=UTC)
MALFORMED_FRACTION: Final = 0.003
DEMO_PROSPECTS: Final = 300
DEMO_SEED: Final = 7
STREAM_SEED: Final = 20261130
STREAM_CASES: Final = 200  # cases of 3 prospects, up to 40 events each, as `event_streams()`
STREAM_PROSPECTS: Final = 3
STREAM_MAX_EVENTS: Final = 40

# sha256 of the JSON Lines bytes `touchflow replay` writes, per output. Computed at caa4a0d.
PINS: Final = {
    "demo": {
        "commands": "1c959a8f4ae5630cd674464920c1833bbbb837b5439c7e3ae84a4af7da34a20f",
        "decisions": "ce142cc78189ce2623dd85ade9ff30e8966c6eddc8ba7157dde372cb4bcba1fd",
        "dead_letters": "2c45ff72206119ee91d9cb537fbc143c745566f363141265528cd8e20c0d168f",
    },
    "streams": {
        "commands": "9dc776710fca860c364edfcf33530b536002ee6bb47f9f0427aba5c009533b27",
        "decisions": "cd098a89471300545e38d82d0ed920b91c0da8e5ea754beed62f2f0d4787ae26",
        # valid events only: no dead letters (the sha256 of no bytes)
        "dead_letters": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
}


Ex = TypeVar("Ex")


class SeededDraw:
    """A `draw` for `tests.streams`' field generators from a seeded `random.Random`.

    Interprets only the strategy shapes those generators use (`sampled_from`, `integers`,
    `booleans`, `just`, `|`); anything else raises, so a changed generator cannot silently
    draw something different.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def __call__(self, strategy: SearchStrategy[Ex], label: object = None) -> Ex:
        return cast("Ex", self._draw(strategy))

    def _draw(self, strategy: object) -> object:
        s: Any = getattr(strategy, "wrapped_strategy", strategy)
        name = type(s).__name__
        if name == "SampledFromStrategy" and not s._transformations:
            return self.rng.choice(list(s.elements))
        if name == "JustStrategy" and not s._transformations:
            return s.elements[0]
        if name == "IntegersStrategy":
            return self.rng.randint(s.start, s.end)
        if name == "BooleansStrategy":
            return self.rng.random() < 0.5
        if name == "OneOfStrategy":
            return self._draw(self.rng.choice(list(s.original_strategies)))
        msg = f"SeededDraw: no deterministic draw for {strategy!r}"
        raise TypeError(msg)


_GAPS: Final = (60_000, 3_600_000, 86_400_000, 7 * 86_400_000)


def _gap(rng: random.Random) -> int:
    """As `tests.streams.GAPS`: minutes, hours, days, or an exact window edge."""
    shape = rng.randrange(4)
    if shape == 0:
        return rng.randint(1, 59) * 60_000
    if shape == 1:
        return rng.randint(1, 30) * 3_600_000
    if shape == 2:
        return rng.randint(1, 4) * 86_400_000
    return rng.choice((86_400_000, 7 * 86_400_000))


def prospect_stream(draw: SeededDraw, prospect: str) -> list[dict[str, Any]]:
    """`tests.streams.prospect_stream`, drawn from `draw`."""
    rng = draw.rng
    fields = cast("DrawFn", draw)  # the part of hypothesis's DrawFn the field generators call
    n = rng.randint(1, STREAM_MAX_EVENTS)
    t = START + rng.randint(0, 86_400) * 1000
    out: list[dict[str, Any]] = []
    causes: list[tuple[str, str, list[str]]] = []
    for i in range(n):
        kind = rng.choice(KINDS)
        if kind == "duplicate":
            if out:
                out.append(dict(rng.choice(out[-4:])))
            continue
        t += _gap(rng)
        if kind == "night":
            t = _night(fields, prospect, i, t, causes, out)
            continue
        if kind != "burst":
            out.append(_event(fields, prospect, f"{prospect}-{i}", kind, t, causes))
            continue
        for j in range(rng.randint(2, 4)):
            kind = rng.choice(BURST_KINDS)
            out.append(_event(fields, prospect, f"{prospect}-{i}{'abcd'[j]}", kind, t, causes))
            t += rng.choice((10_000, 20_000, 90_000))
    return out


def generated_streams() -> list[dict[str, Any]]:
    """`STREAM_CASES` cases of interleaved prospect streams, as `tests.streams.event_streams`."""
    draw = SeededDraw(STREAM_SEED)
    events: list[dict[str, Any]] = []
    for case in range(STREAM_CASES):
        streams = [prospect_stream(draw, f"c{case}p{k}") for k in range(STREAM_PROSPECTS)]
        cursors = [0] * len(streams)
        while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
            live = [k for k, s in enumerate(streams) if cursors[k] < len(s)]
            k = draw.rng.choice(live)
            events.append(streams[k][cursors[k]])
            cursors[k] += 1
    return events


def _digests(result: ReplayResult) -> dict[str, str]:
    """sha256 of each output exactly as `touchflow replay` writes it."""
    digests = {}
    for name, records in (
        ("commands", result.commands),
        ("decisions", result.decisions),
        ("dead_letters", result.dead_letters),
    ):
        out = _Bytes()
        write_jsonl(records, out)  # type: ignore[arg-type]
        digests[name] = hashlib.sha256(out.data).hexdigest()
    return digests


class _Bytes:
    """The part of a binary file `write_jsonl` uses, kept in memory."""

    def __init__(self) -> None:
        self.data = b""

    def writelines(self, lines: Any) -> None:
        self.data += b"".join(lines)


def demo_digests(tmp: Path) -> dict[str, str]:
    events = generate(DEMO_PROSPECTS, seed=DEMO_SEED, start=DEMO_START)
    path = tmp / "demo.jsonl"
    write_events(events, path, malformed_fraction=MALFORMED_FRACTION, seed=DEMO_SEED)
    until = to_ms(DEMO_START + timedelta(days=2))
    return _digests(replay(path, Engine(load_policy()), until=until))


def stream_digests(tmp: Path) -> dict[str, str]:
    events = generated_streams()
    path = tmp / "streams.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    until = max(parse_ts(e["ts"]) for e in events) + 30 * 86_400_000
    return _digests(replay(path, Engine(load_policy()), until=until))


def test_the_generated_inputs_exercise_the_engine() -> None:
    """The pins are worth something only if the inputs reach every kind of decision."""
    events = generated_streams()
    kinds = {e["type"] for e in events}
    assert {"touch_request", "enroll", "replied", "opened", "clicked", "proposal_view"} <= kinds
    assert len(events) > 1000
    assert format_ts(parse_ts(events[0]["ts"])) == events[0]["ts"]


@pytest.mark.slow
def test_demo_outputs_are_byte_identical(tmp_path: Path) -> None:
    assert demo_digests(tmp_path) == PINS["demo"]


@pytest.mark.slow
def test_generated_stream_outputs_are_byte_identical(tmp_path: Path) -> None:
    assert stream_digests(tmp_path) == PINS["streams"]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        pins = {"demo": demo_digests(Path(d)), "streams": stream_digests(Path(d))}
    print("PINS: Final = ", end="")
    print(msgspec.json.format(msgspec.json.encode(pins), indent=4).decode())
