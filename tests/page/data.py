"""Scorecards for the page's tests and screenshot, from a real replay of generated traffic.

`scorecard_of` runs `tests/report/helpers.closed_loop` (simulated prospects plus a simulated
sender's answers), writes the events to a file and computes the scorecard with
`dataflows/report.py`'s `compute`, taking the exact JSON `touchflow report --json` prints.

`as_of` is added, as the live reader adds it: the replay's own as-of time. `daily` is the
scorecard's own when its JSON carries one (`operators.scorecard_view.daily_rows`); when it does
not, `daily` is TEST DATA: the file's `touch_sent` and `replied` events counted per UTC day and
channel, with the live shape and realistic sizes but not the contract's definitions (no
touch_failed release, no STOP filtering).
"""

from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import orjson

from dataflows.report import compute
from operators.timeutil import format_ts
from tests.report.helpers import POLICY, closed_loop, write_events

Card = dict[str, Any]


def scorecard_of(directory: Path, *, prospects: int, seed: int, hours: float = 48.0) -> Card:
    """The scorecard of a replayed closed loop, with `as_of` and a `daily`."""
    events = closed_loop(prospects, seed=seed, hours=hours)
    path = write_events(directory / f"events-{prospects}-{seed}.jsonl", events)
    report = compute(path, POLICY)
    card: Card = orjson.loads(msgspec.json.encode(report.card))  # what `report --json` prints
    card["as_of"] = format_ts(report.as_of)
    if "daily" not in card:
        card["daily"] = daily_from_events(events)  # TEST DATA, see the module's docstring
    return card


def daily_from_events(events: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """TEST DATA: per UTC day, `touch_sent` and `replied` events by channel (see module doc)."""
    days: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"touches": defaultdict(int), "replies": defaultdict(int)}
    )
    for event in events:
        kind = {"touch_sent": "touches", "replied": "replies"}.get(str(event["type"]))
        if kind is not None and event.get("channel"):
            days[str(event["ts"])[:10]][kind][str(event["channel"])] += 1
    return {
        day: {kind: dict(counts) for kind, counts in kinds.items()}
        for day, kinds in sorted(days.items())
    }
