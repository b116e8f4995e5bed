"""`touchflow whatif`: the same events under two policies, scorecards side by side.

    touchflow whatif EVENTS.jsonl --config A.toml --config B.toml [--until TS] [--json] [--csv DIR]

One read of the file feeds two lanes (`dataflows.report_replay`), one per policy. A prospect's
outcome changed when its list of commands `(channel, action, reason, ts)` differs between the
two; the lists are compared as they grow, so only the part not yet matched is held. It changes
nothing anywhere: no file but `--csv`'s is written. `--json` prints `{"a": scorecard,
"b": scorecard, "changed": [prospect, ...]}`; `--csv DIR` writes DIR/a/ and DIR/b/ (the five
report files each) and DIR/changed.csv.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from dataflows.report import (
    Report,
    check_readable,
    console,
    guarded,
    num,
    pct,
    replay_rows,
    write_csv,
    write_table,
)
from dataflows.report_replay import new_lane, run
from operators.emit import Out
from operators.events import Event
from operators.policy import Policy, load_policy
from operators.records import Command
from operators.scorecard_view import OVERALL_KEYS, Scorecard, scorecard
from operators.timeutil import format_ts, parse_ts

# What a prospect's outcome is made of: each command's (channel, action, reason, ts).
Outcome = tuple[str, str, str, str]


@dataclass
class Diff:
    """Prospects whose command lists differ, found as the lists grow (matched heads dropped)."""

    changed: set[str] = field(default_factory=set)
    tails: dict[str, tuple[list[Outcome], list[Outcome]]] = field(default_factory=dict)

    def observe(self, prospect: str, _event: Event | None, outs: Sequence[list[Out]]) -> None:
        if prospect in self.changed:
            return
        a, b = (_outcomes(o) for o in outs)
        if not a and not b:
            return
        tail_a, tail_b = self.tails.get(prospect, ([], []))
        tail_a += a
        tail_b += b
        same = 0
        for x, y in zip(tail_a, tail_b, strict=False):
            if x != y:
                self.changed.add(prospect)
                self.tails.pop(prospect, None)
                return
            same += 1
        del tail_a[:same], tail_b[:same]
        if tail_a or tail_b:
            self.tails[prospect] = (tail_a, tail_b)
        else:
            self.tails.pop(prospect, None)

    def result(self) -> list[str]:
        """Sorted: the changed prospects, and those with commands left over on one side."""
        return sorted(self.changed | {p for p, (a, b) in self.tails.items() if a or b})


def _outcomes(outs: list[Out]) -> list[Outcome]:
    return [(r.channel, r.action, r.reason, r.ts) for _ts, _seq, r in outs if type(r) is Command]


@dataclass
class WhatIf:
    a: Report
    b: Report
    changed: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"a": self.a.card, "b": self.b.card, "changed": self.changed}


def compare(
    events: Path, policy_a: Policy, policy_b: Policy, *, until: int | None = None
) -> WhatIf:
    """Replay `events` under both policies at once."""
    lanes = [new_lane(policy_a), new_lane(policy_b)]
    diff = Diff()
    as_of = run(events, lanes, until=until, observe=diff.observe)
    reports = [
        Report(scorecard(lane.tally.counts, lane.policy.sequences), lane, as_of) for lane in lanes
    ]
    return WhatIf(reports[0], reports[1], diff.result())


# -- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `whatif` subcommand's arguments (for `dataflows.cli`)."""
    parser.add_argument("events", type=Path, metavar="EVENTS.jsonl")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="policy A, then policy B (give it twice)",
    )
    parser.add_argument("--until", default=None, metavar="TS", help="fire timers due by then")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--csv", type=Path, default=None, metavar="DIR", help="write CSV files")


def command(args: argparse.Namespace) -> int:
    """Run `touchflow whatif` for parsed arguments; errors raise (see `report.guarded`)."""
    if len(args.config) != 2:
        msg = f"whatif needs --config twice (policy A, policy B), got {len(args.config)}"
        raise ValueError(msg)
    until = parse_ts(args.until) if args.until is not None else None
    config_a, config_b = args.config
    policy_a, policy_b = load_policy(config_a), load_policy(config_b)
    check_readable(args.events)
    result = compare(args.events, policy_a, policy_b, until=until)
    if args.csv is not None:
        write_csv(args.csv / "a", result.a.card, replay_rows(result.a))
        write_csv(args.csv / "b", result.b.card, replay_rows(result.b))
        with (args.csv / "changed.csv").open("w", encoding="utf-8", newline="") as out:
            write_table(out, ["prospect"], ([p] for p in result.changed))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result.as_json()) + b"\n")
        sys.stdout.flush()
    else:
        render(result, console(), names=(str(config_a), str(config_b)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="touchflow whatif", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return guarded(command, parser.parse_args(argv))


# -- the terminal ---------------------------------------------------------------------------------


def _value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return pct(value) if "rate" in key or "share" in key else num(value)
    return f"{value:,}"


def _delta(key: str, a: Any, b: Any) -> str:
    if a is None or b is None or a == b:
        return ""
    d = b - a
    if isinstance(d, float) and ("rate" in key or "share" in key):
        return f"{d * 100:+.1f} pt"
    return f"{d:+,.2f}" if isinstance(d, float) else f"{d:+,}"


def side_by_side(a: Scorecard, b: Scorecard, names: tuple[str, str]) -> Table:
    """Overall, then each channel's touches, replies, opt-outs and conversions: A, B, change."""
    table = Table(title="Scorecards", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("metric")
    table.add_column(f"A {names[0]}", justify="right")
    table.add_column(f"B {names[1]}", justify="right")
    table.add_column("B - A", justify="right")
    for key in OVERALL_KEYS:
        va, vb = a["overall"][key], b["overall"][key]
        table.add_row(key.replace("_", " "), _value(key, va), _value(key, vb), _delta(key, va, vb))
    for channel in a["channels"]:
        table.add_section()
        for key in ("touches", "replies", "reply_rate", "opt_outs", "conversions"):
            va, vb = a["channels"][channel][key], b["channels"][channel][key]
            label = f"{channel} {key.replace('_', ' ')}"
            table.add_row(label, _value(key, va), _value(key, vb), _delta(key, va, vb))
    return table


def keyed_side_by_side(a: Scorecard, b: Scorecard, name: str, keys: Sequence[str]) -> Table:
    table = Table(title=name.replace("_", " ").capitalize(), box=box.SIMPLE_HEAD)
    table.title_justify = "left"
    table.add_column(name.rstrip("s"))
    for key in keys:
        table.add_column(f"{key} A→B", justify="right")
    for row in dict.fromkeys([*a[name], *b[name]]):
        ra, rb = a[name].get(row, {}), b[name].get(row, {})
        cells = [f"{_value(k, ra.get(k, 0))}→{_value(k, rb.get(k, 0))}" for k in keys]
        table.add_row(row, *cells)
    return table


def render(result: WhatIf, out: Console, *, names: tuple[str, str]) -> None:
    a, b = result.a.card, result.b.card
    out.print(f"[bold]What if[/bold] · as of {format_ts(result.a.as_of)}")
    out.print(side_by_side(a, b, names))
    out.print(keyed_side_by_side(a, b, "sequences", ("enrolled", "completed", "exited_by_reply")))
    out.print(keyed_side_by_side(a, b, "campaigns", ("requested", "sent", "deferred", "blocked")))
    out.print(keyed_side_by_side(a, b, "held_back", ("deferred", "blocked")))
    changed = result.changed
    line = f"[bold]{len(changed):,}[/bold] prospects' commands differ"
    if changed:
        line += ": " + ", ".join(changed[:20])
        line += f", … ({len(changed) - 20} more)" if len(changed) > 20 else ""
    out.print(line)


if __name__ == "__main__":
    sys.exit(main())
