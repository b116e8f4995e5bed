"""`touchflow report`: the campaign's scorecard (CONTRACT.md section 8) from a file of events.

    touchflow report EVENTS.jsonl [--config FILE] [--until TS] [--json] [--csv DIR]
    touchflow report --redis URL [--config FILE] [--json] [--csv DIR]

The events are replayed under the config (`dataflows.report_replay`: the replay's own outputs,
timers due by `--until` fired after the input), and `operators.scorecard` counts as they come.
Without `--json` a few rich tables; `--json` prints one object; `--csv DIR` writes channels.csv,
sequences.csv, campaigns.csv, held_back.csv and prospects.csv (streamed row by row). Exit status
as `touchflow replay`: 0, 1 with one line for an unreadable input or an invalid config, 2 for bad
arguments.

`--redis URL` reads a live deployment's counts instead (`connectors.scorecard_store`: one HGETALL,
whatever the number of prospects), as of the stream time its last checkpoint reached; `--config`
is the deployment's (its prefix, its sequences, and `streams.scorecard`: a deployment that keeps
no scorecard is said so in one line, status 1). Its prospects.csv comes from the checkpointed
states and facts, a SCAN batch at a time, in no particular order.
"""

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import msgspec
import redis
from rich import box
from rich.console import Console
from rich.table import Table

from connectors.keys import Keys
from connectors.redis_client import RedisUnavailableError, connect, redacted
from connectors.scorecard_store import AS_OF, prospects, read_scorecard
from dataflows.report_replay import Lane, new_lane, run
from operators.errors import TouchflowError
from operators.policy import Policy, load_policy
from operators.scorecard_view import (
    PROSPECT_COLUMNS,
    TABLES,
    Scorecard,
    prospect_rows,
    scorecard,
    table_rows,
)
from operators.timeutil import format_ts, parse_ts

EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
NO_SCORECARD: Final = (
    "this deployment keeps no live scorecard (streams.scorecard = false in its config); "
    "report from a file of its events instead: touchflow report EVENTS.jsonl"
)


@dataclass
class Report:
    """A replayed file's scorecard, with the run it came from (for prospects.csv)."""

    card: Scorecard
    lane: Lane
    as_of: int  # ms: `--until`, else the latest event time


def compute(events: Path, policy: Policy, *, until: int | None = None) -> Report:
    """Replay `events` under `policy` and build the scorecard."""
    lane = new_lane(policy)
    as_of = run(events, [lane], until=until)
    card = scorecard(lane.tally.counts, policy.sequences)
    card[AS_OF] = format_ts(as_of) if as_of else None  # as `report --redis` says it
    return Report(card, lane, as_of)


# -- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `report` subcommand's arguments (for `dataflows.cli`)."""
    parser.add_argument("events", nargs="?", type=Path, default=None, metavar="EVENTS.jsonl")
    parser.add_argument("--redis", default=None, metavar="URL", help="a live deployment's counts")
    parser.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    parser.add_argument("--until", default=None, metavar="TS", help="fire timers due by then")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--csv", type=Path, default=None, metavar="DIR", help="write CSV files")


def one_source(args: argparse.Namespace, command: str, events: str, until_note: str) -> None:
    """A file of events (`events`: how the command names it) or `--redis`, exactly one; and no
    `--until` with `--redis` (`until_note` says why). ValueError otherwise: a usage error."""
    if args.redis is not None and args.events is not None:
        msg = f"{command} takes {events} or --redis URL, not both"
        raise ValueError(msg)
    if args.events is None and args.redis is None:
        msg = f"{command} needs {events} (or --redis URL)"
        raise ValueError(msg)
    if args.redis is not None and args.until is not None:
        raise ValueError(until_note)


def command(args: argparse.Namespace) -> int:
    """Run `touchflow report` for parsed arguments; errors raise (see `guarded`)."""
    one_source(
        args,
        "report",
        "EVENTS.jsonl",
        "--until applies to a file of events; --redis reports as of the last checkpoint",
    )
    policy = load_policy(args.config)
    if args.redis is not None:
        return live_report(args, policy)
    until = parse_ts(args.until) if args.until is not None else None
    check_readable(args.events)
    report = compute(args.events, policy, until=until)
    if args.csv is not None:
        write_csv(args.csv, report.card, replay_rows(report))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report.card) + b"\n")
        sys.stdout.flush()
    else:
        title = f"{args.events} as of {format_ts(report.as_of)}"
        render(report.card, console(), title=title, prospects=len(report.lane.facts))
    return 0


def live_report(args: argparse.Namespace, policy: Policy) -> int:
    """`report --redis`: the live counts, and prospects.csv from the checkpoints."""
    if not policy.streams.scorecard:
        print(f"touchflow: {NO_SCORECARD}", file=sys.stderr)
        return EXIT_ERROR
    keys = Keys(prefix=policy.streams.prefix, shards=policy.streams.shards)
    r = connect(args.redis)
    try:
        card = read_scorecard(r, keys, policy)
        if card is None:
            print(
                f"touchflow: no live scorecard under prefix {keys.prefix!r} yet "
                "(no checkpoint of a flow with the scorecard on has written one)",
                file=sys.stderr,
            )
            return EXIT_ERROR
        as_of = card[AS_OF]
        if args.csv is not None:
            now = parse_ts(as_of) if as_of is not None else 0
            rows = prospect_rows(prospects(r, keys), now, policy)
            write_csv(args.csv, card, rows)
    except redis.RedisError as exc:  # past `connect`'s check: one line, as for a bad URL
        msg = f"reading the scorecard from Redis at {redacted(args.redis)} failed: {exc}"
        raise RedisUnavailableError(redacted(msg)) from None
    finally:
        r.close()
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(card) + b"\n")
        sys.stdout.flush()
    else:
        title = f"{redacted(args.redis)} ({keys.prefix}) as of {as_of or '—'}"
        render(card, console(), title=title, prospects=None)
    return 0


def check_readable(path: Path) -> None:
    """Fail before any work with the OS's reason (a directory is not a readable file)."""
    with path.open("rb"):
        pass
    if not path.is_file():
        raise IsADirectoryError(21, "not a readable file", str(path))


def guarded(action: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Errors a user can fix as one line on standard error, as `dataflows.cli` prints them."""
    try:
        return action(args)
    except TouchflowError as exc:
        print(f"touchflow: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        name = exc.filename if exc.filename is not None else ""
        print(f"touchflow: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"touchflow: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="touchflow report", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return guarded(command, parser.parse_args(argv))


# -- CSV ------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_table(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """A header and rows as CSV, one row written as soon as it comes; the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        n += 1
    return n


def write_csv(directory: Path, card: Scorecard, prospects: Iterable[Sequence[Any]]) -> None:
    """The five files; prospects.csv streamed (one row at a time)."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, header in TABLES.items():
        with (directory / f"{table}.csv").open("w", encoding="utf-8", newline="") as out:
            write_table(out, header, table_rows(card, table))
    with (directory / "prospects.csv").open("w", encoding="utf-8", newline="") as out:
        write_table(out, PROSPECT_COLUMNS, prospects)


def replay_rows(report: Report) -> Iterable[list[Any]]:
    """A replayed file's prospects.csv rows, in prospect order."""
    lane = report.lane
    items = ((p, lane.facts[p], lane.states.get(p)) for p in sorted(lane.facts))
    return prospect_rows(items, report.as_of, lane.policy)


# -- the terminal ---------------------------------------------------------------------------------


def console() -> Console:
    """A file or pipe has no width: 110 columns keep the channel table whole."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _count_rate(count: int, rate: float | None) -> str:
    return f"{count:,}" if rate is None else f"{count:,}  [dim]{pct(rate)}[/dim]"


def channel_table(card: Scorecard, title: str = "Channels") -> Table:
    """Counts with their rates (delivered/opened/answered/replies/opt-outs/conversions)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("channel")
    for name in ("touches", "delivered", "opened", "answered", "replies", "opt-outs"):
        table.add_column(name, justify="right")
    table.add_column("conversions", justify="right")
    table.add_column("share", justify="right")
    rows = [*card["channels"].items(), ("overall", card["overall"])]
    for name, r in rows:
        table.add_row(
            f"[bold]{name}[/bold]" if name == "overall" else name,
            f"{r['touches']:,}",
            _count_rate(r["delivered"], r["delivery_rate"]),
            _count_rate(r["opened"], r["open_rate"]),
            _count_rate(r["answered"], r["answer_rate"]),
            _count_rate(r["replies"], r["reply_rate"]),
            _count_rate(r["opt_outs"], r["opt_out_rate"]),
            _count_rate(r["conversions"], r["conversion_rate"]),
            pct(r["conversion_share"]),
            end_section=name == "linkedin",
        )
    return table


def overall_table(card: Scorecard) -> Table:
    o = card["overall"]
    table = Table(title="Prospects", box=box.SIMPLE_HEAD, title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("touched", f"{o['prospects_touched']:,}")
    table.add_row("replied", f"{o['prospects_replied']:,}")
    table.add_row("touches before the first reply (mean)", num(o["avg_touches_to_reply"]))
    table.add_row("complaints per 1,000 touches", num(o["complaints_per_1000_touches"]))
    table.add_row("reply rate, touched on 2+ channels", pct(o["multichannel_reply_rate"]))
    table.add_row("reply rate, touched on 1 channel", pct(o["single_channel_reply_rate"]))
    return table


def simple_table(card: Scorecard, name: str, title: str, *, by_total: bool = False) -> Table:
    """One of the keyed tables (sequences, campaigns, held back), rates as percentages."""
    header = TABLES[name]
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for i, column in enumerate(header):
        table.add_column(column.replace("_", " "), justify="left" if i == 0 else "right")
    rows = list(table_rows(card, name))
    if by_total:
        rows.sort(key=lambda r: (-sum(r[1:]), r[0]))
    for row in rows:
        cells = [str(row[0])]
        for key, value in zip(header[1:], row[1:], strict=True):
            cells.append(pct(value) if key.endswith("rate") else f"{value:,}")
        table.add_row(*cells)
    if not rows:
        table.add_row("(none)", *("" for _ in header[1:]))
    return table


def render(card: Scorecard, out: Console, *, title: str, prospects: int | None) -> None:
    """The scorecard as a few tables (`prospects`: how many, when known without a scan)."""
    count = f" · {prospects:,} prospects" if prospects is not None else ""
    out.print(f"[bold]Scorecard[/bold] of {title}{count}")
    out.print(channel_table(card))
    out.print(overall_table(card))
    out.print(simple_table(card, "sequences", "Sequences"))
    out.print(simple_table(card, "campaigns", "Campaigns"))
    out.print(simple_table(card, "held_back", "Held back, by rule", by_total=True))


if __name__ == "__main__":
    sys.exit(main())
