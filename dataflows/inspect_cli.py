"""`touchflow inspect`: one prospect explained, after replaying a file (CONTRACT.md section 8).

    touchflow inspect PROSPECT --events EVENTS.jsonl [--config FILE] [--until TS] [--json]
    touchflow inspect PROSPECT --redis URL [--config FILE] [--json]

Only that prospect's events go through the engine (state is per prospect, so the rest cannot
change it). The explanation (`operators.inspect_view`) is as of the prospect's last event, or
`--until` (then the timers due by then fire first, as in a replay with `--until`). `--redis`
explains the live checkpoint instead (the state and the scorecard facts written with it), as of
the state's own time. The last decisions and the profile's contact fields come from the facts
(`operators.scorecard`), which both ways build alike, so both ways explain a prospect alike.
Exit status 1 for a prospect the file (or Redis) does not hold.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import redis
from rich import box
from rich.console import Console
from rich.table import Table

from connectors.keys import Keys
from connectors.redis_client import RedisUnavailableError, connect, redacted
from connectors.scorecard_store import read_prospect
from dataflows.report import check_readable, console, guarded, num, one_source
from dataflows.report_replay import new_lane, run
from operators.errors import TouchflowError
from operators.inspect_view import inspect
from operators.policy import Policy, load_policy
from operators.rules import Rules
from operators.timeutil import parse_ts

NO_FACTS: Final = (
    "this deployment keeps no scorecard facts (streams.scorecard = false): "
    "the last decisions and the profile's contact fields are those of its last run with them"
)


class UnknownProspect(TouchflowError):
    """The input holds no event of the prospect."""


def explain(
    events: Path, prospect: str, policy: Policy, *, until: int | None = None
) -> dict[str, Any]:
    """Replay the prospect's events and explain its state (`operators.inspect_view.inspect`),
    with the facts the replay's tally kept, as the live flow keeps them."""
    lane = new_lane(policy)
    run(events, [lane], until=until, only=prospect)
    state = lane.states.get(prospect)
    if state is None:
        msg = f"no event of prospect {prospect!r} in {events}"
        raise UnknownProspect(msg)
    now = until if until is not None else state.clock
    return inspect(state, lane.engine.rules, now, facts=lane.facts[prospect])


def explain_live(url: str, prospect: str, policy: Policy) -> dict[str, Any]:
    """Explain a prospect from a live deployment's checkpoint (its state and facts), as of the
    time of its state (its latest event or timer): a checkpoint says nothing later."""
    if not policy.streams.scorecard:
        print(f"touchflow: {NO_FACTS}", file=sys.stderr)
    keys = Keys(prefix=policy.streams.prefix, shards=policy.streams.shards)
    r = connect(url)
    try:
        found = read_prospect(r, keys, prospect)
    except redis.RedisError as exc:  # past `connect`'s check: one line, as for a bad URL
        msg = f"reading {prospect!r} from Redis at {redacted(url)} failed: {exc}"
        raise RedisUnavailableError(redacted(msg)) from None
    finally:
        r.close()
    if found is None:
        msg = f"no checkpointed state of prospect {prospect!r} under prefix {keys.prefix!r}"
        raise UnknownProspect(msg)
    state, facts = found
    return inspect(state, Rules(policy), state.clock, facts=facts)


# -- the command ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `inspect` subcommand's arguments (for `dataflows.cli`)."""
    parser.add_argument("prospect", metavar="PROSPECT")
    parser.add_argument("--events", type=Path, default=None, metavar="EVENTS.jsonl")
    parser.add_argument("--redis", default=None, metavar="URL", help="a live checkpoint")
    parser.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    parser.add_argument("--until", default=None, metavar="TS", help="as of then (fires timers)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def command(args: argparse.Namespace) -> int:
    """Run `touchflow inspect` for parsed arguments; errors raise (see `report.guarded`)."""
    one_source(
        args,
        "inspect",
        "--events EVENTS.jsonl",
        "--until applies to --events; --redis explains the checkpointed state",
    )
    policy = load_policy(args.config)
    if args.redis is not None:
        found = explain_live(args.redis, args.prospect, policy)
    else:
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
