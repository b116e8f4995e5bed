"""A replay for reports: the engine per prospect over a JSON Lines file, the scorecard watching.

`touchflow report`, `whatif` and `inspect` need to know which event caused which outputs, which
the replay's collated outputs no longer say. So they run the engine themselves, as the replay's
per-prospect logic does (`ProspectLogic`: each prospect's events in file order, each isolated,
timers due by each event fired before it, every timer due by `--until` fired after the input),
without Bytewax: the outputs are the replay's (tests/report checks it), and with no framework
cost per event, counting comes cheaper than the replay itself (benchmarks/bench_report.py).

A `Lane` is one policy's run; `whatif` runs two lanes over one read of the file.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from operators.emit import Out
from operators.engine import Engine
from operators.events import Event
from operators.intake import EventReader
from operators.policy import Policy
from operators.records import DeadLetter
from operators.scorecard import ProspectFacts, Tally
from operators.scorecard_facts import LEDGER_DAYS, LEDGER_MAX
from operators.scorecard_feed import apply_scored, fire_due_scored
from operators.state import ProspectState

# Called after each event (and each prospect's timers at the end, with event None): the
# prospect, the event (as the first lane decoded it), and each lane's outputs for it.
Observer = Callable[[str, Event | None, Sequence[list[Out]]], None]
_BACKSLASH: Final = b"\\"


@dataclass
class Lane:
    """One policy's run over the input: its engine and tally, and per prospect state and facts."""

    engine: Engine
    tally: Tally
    reader: EventReader
    states: dict[str, ProspectState] = field(default_factory=dict)
    facts: dict[str, ProspectFacts] = field(default_factory=dict)
    rejected: int = 0  # lines rejected to the dead letters (by the reader or the rules)

    @property
    def policy(self) -> Policy:
        return self.engine.policy


def new_lane(
    policy: Policy, *, ledger_days: int = LEDGER_DAYS, ledger_max: int = LEDGER_MAX
) -> Lane:
    engine = Engine(policy)
    tally = Tally(policy, ledger_days=ledger_days, ledger_max=ledger_max)
    return Lane(engine, tally, EventReader(policy.limits, frozenset(policy.sequences)))


def run(
    events: Path | str,
    lanes: Sequence[Lane],
    *,
    until: int | None = None,
    only: str | None = None,
    observe: Observer | None = None,
) -> int:
    """Replay `events` through every lane; the time the result stands at (`until`, else the
    latest event time). `only`: that prospect's events alone (inspect)."""
    if not lanes:
        msg = "report: at least one lane to run"
        raise ValueError(msg)
    shared = all(
        lane.policy.limits == lanes[0].policy.limits
        and set(lane.policy.sequences) == set(lanes[0].policy.sequences)
        for lane in lanes
    )
    needle = msgspec.json.encode(only) if only is not None else None
    with Path(events).open("rb") as f:
        for line in f:
            raw = line.strip()
            if not raw:
                continue
            if needle is not None and needle not in raw and _BACKSLASH not in raw:
                continue  # no escapes, so the prospect would appear as written: not this one
            _one(raw, lanes, shared, only, observe)
    if until is not None:
        for prospect in list(dict.fromkeys(p for lane in lanes for p in lane.states)):
            outs: list[list[Out]] = []
            for lane in lanes:
                out: list[Out] = []
                state = lane.states.get(prospect)
                if state is not None:
                    dead: list[DeadLetter] = []
                    facts = lane.facts[prospect]
                    fire_due_scored(lane.engine, lane.tally, state, facts, until, out, dead)
                outs.append(out)
            if observe is not None:
                observe(prospect, None, outs)
        return until
    return max((s.clock for s in lanes[0].states.values()), default=0)


def _one(
    raw: bytes,
    lanes: Sequence[Lane],
    shared: bool,
    only: str | None,
    observe: Observer | None,
) -> None:
    """One input line through every lane."""
    decoded = lanes[0].reader.read(raw)
    if only is not None and not isinstance(decoded, str) and decoded.prospect != only:
        return
    outs: list[list[Out]] = []
    seen: Event | None = None
    for i, lane in enumerate(lanes):
        event = decoded if shared or i == 0 else lane.reader.read(raw)
        out: list[Out] = []
        outs.append(out)
        if isinstance(event, str):
            lane.rejected += 1
            continue
        seen = seen or event
        prospect = event.prospect
        state = lane.states.get(prospect)
        if state is None:
            state = lane.states[prospect] = ProspectState(prospect=prospect)
            facts = lane.facts[prospect] = ProspectFacts()
        else:
            facts = lane.facts[prospect]
        dead: list[DeadLetter] = []
        if not apply_scored(lane.engine, lane.tally, state, facts, event, out, dead):
            lane.rejected += 1
    if observe is not None and seen is not None:
        observe(seen.prospect, seen, outs)
