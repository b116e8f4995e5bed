"""`touchflow inspect`: one prospect explained, after replaying a file (CONTRACT.md section 8).

    touchflow inspect PROSPECT --events EVENTS.jsonl [--config FILE] [--until TS] [--json]

Only that prospect's events go through the engine (state is per prospect, so the rest cannot
change it). The explanation (`operators.inspect_view`) is as of the prospect's last event, or
`--until` (then the timers due by then fire first, as in a replay with `--until`). The last
decisions are the replay's decision records for the prospect. `--redis` (from the live
checkpoint) is not there yet: one line, status 1. Exit status 1 for a prospect the file does
not hold.
"""

import argparse
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from dataflows.report import EXIT_ERROR, check_readable, console, guarded, num
from dataflows.report_replay import new_lane, run
from operators import events as ev
from operators.emit import Out
from operators.errors import TouchflowError
from operators.inspect_view import LAST_DECISIONS, inspect
from operators.policy import Policy, load_policy
from operators.records import Decision
from operators.timeutil import parse_ts

REDIS_LATER: Final = (
    "inspect --redis is not available yet (reading the live checkpoint is phase 2 of issue 14); "
    "inspect after replaying a file instead: touchflow inspect PROSPECT --events EVENTS.jsonl"
)
_PROFILE_FIELDS: Final = (
    "timezone",
    "email",
    "phone",
    "region",
    "segment",
    "lead_source",
    "account",
)


class UnknownProspect(TouchflowError):
    """The input holds no event of the prospect."""


def explain(
    events: Path, prospect: str, policy: Policy, *, until: int | None = None
) -> dict[str, Any]:
    """Replay the prospect's events and explain its state (`operators.inspect_view.inspect`)."""
    lane = new_lane(policy)
    profile: dict[str, Any] = {}
    decisions: deque[Decision] = deque(maxlen=LAST_DECISIONS)

    def observe(_p: str, event: ev.Event | None, outs: Sequence[list[Out]]) -> None:
        if type(event) is ev.Profile:
            for name in _PROFILE_FIELDS:
                value = getattr(event, name)
                if value is not None:
                    profile[name] = value  # later values overwrite earlier ones
        decisions.extend(r for _ts, _seq, r in outs[0] if type(r) is Decision)

    run(events, [lane], until=until, only=prospect, observe=observe)
    state = lane.states.get(prospect)
    if state is None:
        msg = f"no event of prospect {prospect!r} in {events}"
        raise UnknownProspect(msg)
    now = until if until is not None else state.clock
    return inspect(state, lane.engine.rules, now, profile=profile, decisions=list(decisions))


# -- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `inspect` subcommand's arguments (for `dataflows.cli`)."""
    parser.add_argument("prospect", metavar="PROSPECT")
    parser.add_argument("--events", type=Path, default=None, metavar="EVENTS.jsonl")
    parser.add_argument("--redis", default=None, metavar="URL", help="live checkpoint (phase 2)")
    parser.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    parser.add_argument("--until", default=None, metavar="TS", help="as of then (fires timers)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def command(args: argparse.Namespace) -> int:
    """Run `touchflow inspect` for parsed arguments; errors raise (see `report.guarded`)."""
    if args.redis is not None and args.events is not None:
        msg = "inspect takes --events EVENTS.jsonl or --redis URL, not both"
        raise ValueError(msg)
    if args.redis is not None:
        print(f"touchflow: {REDIS_LATER}", file=sys.stderr)
        return EXIT_ERROR
    if args.events is None:
        msg = "inspect needs --events EVENTS.jsonl (or --redis URL)"
        raise ValueError(msg)
    policy = load_policy(args.config)
    until = parse_ts(args.until) if args.until is not None else None
    check_readable(args.events)
    found = explain(args.events, args.prospect, policy, until=until)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(found) + b"\n")
        sys.stdout.flush()
    else:
        render(found, console())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="touchflow inspect", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return guarded(command, parser.parse_args(argv))


# -- the terminal ---------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in columns:
        table.add_column(column)
    return table


def _on(flags: dict[str, bool]) -> str:
    return ", ".join(k for k, v in flags.items() if v) or "none"


def render(found: dict[str, Any], out: Console) -> None:
    """The explanation as a few tables."""
    out.print(
        f"[bold]{found['prospect']}[/bold] as of {found['as_of']} "
        f"(last event {found['last_event'] or '—'})"
    )
    facts = _table("Profile, consent, suppressions", "", "")
    facts.show_header = False
    for key, value in found["profile"].items():
        facts.add_row(key, str(value))
    facts.add_row("time zones", ", ".join(found["zones"]))
    facts.add_row("consent", _on(found["consent"]))
    sup = found["suppressions"]
    for key, value in sup.items():
        if value:
            facts.add_row(key.replace("_", " "), value if isinstance(value, str) else str(value))
    facts.add_row("customer", "yes" if found["customer"] else "no")
    for c in found["cooldowns"]:
        facts.add_row(c["rule"], f"until {c['until']}")
    tired = found["fatigue"]
    facts.add_row("fatigue", f"{num(tired['score'], 3)} ({tired['class']})")
    out.print(facts)
    ranking = _table("Learned channel ranking", "channel", "estimate", "prior", "hits", "misses")
    ranking.add_column("auto tries")
    for r in found["ranking"]:
        rank = r["auto_rank"]
        ranking.add_row(
            r["channel"],
            f"{r['estimate']:.3f}",
            f"{r['prior']:.3f}",
            str(r["hits"]),
            str(r["misses"]),
            "—" if rank is None else str(rank),
        )
    out.print(ranking)
    channels = _table("A campaign touch now", "channel", "stopped now by", "next allowed")
    for name, c in found["channels"].items():
        when = c["next_allowed"] or f"not by itself ({c['held_by']})"
        channels.add_row(name, c["rule"] or "[green]allowed[/green]", when)
    out.print(channels)
    pending = _table("Pending", "due", "channel", "reason", "kind", "topic")
    for p in found["pending"]:
        held = " (held)" if p["held"] else ""
        pending.add_row(p["due"], p["channel"], p["reason"], p["kind"] + held, p["topic"] or "")
    for s in found["sequences"]:
        step = f"step {s['next_step']} of {s['steps']}"
        pending.add_row("", "", f"sequence {s['sequence']}", step, f"since {s['started']}")
    out.print(pending)
    decided = _table("Last decisions", "ts", "channel", "reason", "verdict", "rule / until")
    for d in found["decisions"]:
        why = d["rule"] or ""
        if d["until"]:
            why += f" until {d['until']}"
        decided.add_row(d["ts"], d["channel"], d["reason"], d["verdict"], why)
    out.print(decided)


if __name__ == "__main__":
    sys.exit(main())
