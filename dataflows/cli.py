"""The `touchflow` command line (CONTRACT.md section 5).

Errors a user can fix (unreadable input, invalid config, bad arguments) print one line on standard
error and exit non-zero; rejected events are not errors (they go to the dead-letter output).
"""

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from dataflows import gateway_cli
from operators.engine import Engine
from operators.policy import load_policy
from operators.timeutil import parse_ts

EXIT_USAGE = 2
EXIT_ERROR = 1
GIVE_UP_ENV = "TOUCHFLOW_PUBLISH_GIVE_UP_S"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="touchflow", description="Real-time multi-channel outreach coordinator."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rp = sub.add_parser("replay", help="run the dataflow over a JSON Lines file, in event time")
    rp.add_argument("events", type=Path, metavar="EVENTS.jsonl")
    rp.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    rp.add_argument("--commands", type=Path, default=None, help="commands file (default: stdout)")
    rp.add_argument("--decisions", type=Path, default=None, help="decision records file")
    rp.add_argument(
        "--dead-letter", type=Path, default=None, help="rejected events (default: stderr)"
    )
    rp.add_argument("--until", default=None, metavar="TIMESTAMP", help="fire timers due by then")
    rp.add_argument("--workers", type=int, default=1, help="worker threads (same output)")

    run = sub.add_parser("run", help="run live on Redis streams until SIGINT/SIGTERM")
    run.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    run.add_argument(
        "--redis", default=None, metavar="URL", help="default: REDIS_URL, else embedded"
    )
    run.add_argument("--workers", type=int, default=1, help="worker processes")
    run.add_argument("--metrics-port", type=int, default=None, metavar="PORT")
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics port listens on (127.0.0.1; 0.0.0.0 for every interface)",
    )
    run.add_argument(
        "--data-dir", type=Path, default=Path(".touchflow"), help="embedded Redis data directory"
    )
    run.add_argument(
        "-a",
        "--addresses",
        default=None,
        metavar="HOST:PORT;...",
        help="Bytewax cluster: every process's address, separated by ';' (one process per host)",
    )
    run.add_argument(
        "-i", "--process-id", type=int, default=0, help="this process's index in --addresses"
    )

    pub = sub.add_parser("publish", help="append a JSON Lines file's events to the event streams")
    pub.add_argument("events", type=Path, metavar="EVENTS.jsonl")
    pub.add_argument("--redis", default=None, metavar="URL", help="default: REDIS_URL")
    pub.add_argument("--config", type=Path, default=None, help="for the key prefix and shards")
    pub.add_argument(
        "--give-up-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="while Redis refuses writes (out of memory, read-only), retry this long, then exit 1 "
        f"(default: {GIVE_UP_ENV}, else 60)",
    )

    gw = sub.add_parser(
        "gateway", help="provider webhooks and analytics in, verified, as contract events"
    )
    gateway_cli.add_arguments(gw)

    from dataflows import inspect_cli, report, whatif

    report.add_arguments(
        sub.add_parser("report", help="the campaign's scorecard from a file of events")
    )
    whatif.add_arguments(
        sub.add_parser("whatif", help="the same events under two policies, side by side")
    )
    inspect_cli.add_arguments(
        sub.add_parser("inspect", help="explain one prospect after replaying a file")
    )

    worker = sub.add_parser("_worker")  # a process of `run --workers N`; not for people
    worker.add_argument("addresses")
    worker.add_argument("proc_id", type=int)
    worker.add_argument("--config", type=Path, default=None)
    worker.add_argument("--metrics-port", type=int, default=None)
    worker.add_argument("--metrics-host", default="127.0.0.1")

    dp = sub.add_parser(
        "demo",
        help="run the live system on simulated traffic for ~30 s and summarise it",
        description="Live: embedded Redis, `touchflow run`, simulated prospects published in real "
        "time and a simulated sender answering the commands. --replay: replay one simulated day "
        "through the dataflow instead (fast, deterministic, no Redis).",
    )
    dp.add_argument("--replay", action="store_true", help="the fast, deterministic replay demo")
    dp.add_argument("--prospects", type=int, default=300, help="simulated prospects (300)")
    dp.add_argument("--seed", type=int, default=7, help="random seed (7)")
    dp.add_argument(
        "--seconds", type=float, default=25.0, help="live: publish the day over this long (25)"
    )
    dp.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    dp.add_argument("--out", type=Path, default=Path("out/demo"), help="where files go")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if argv is None and getattr(args, "redis", None) is not None:
        _move_url_off_the_command_line(args.redis)  # returns only if there is nothing to hide
    from dataflows.report import guarded

    return guarded(_dispatch, args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; errors a user can fix raise (`dataflows.report.guarded`)."""
    if args.command == "replay":
        return _replay(args)
    if args.command == "run":
        return _run(args)
    if args.command == "publish":
        from dataflows.publish import publish

        count = publish(
            args.events, load_policy(args.config), args.redis, give_up_after_s=_give_up(args)
        )
        print(f"published {count} events", file=sys.stderr)
        return 0
    if args.command == "report":
        from dataflows.report import command as report_command

        return report_command(args)
    if args.command == "whatif":
        from dataflows.whatif import command as whatif_command

        return whatif_command(args)
    if args.command == "inspect":
        from dataflows.inspect_cli import command as inspect_command

        return inspect_command(args)
    if args.command == "gateway":
        return gateway_cli.command(args)
    if args.command == "_worker":
        from dataflows.supervisor import worker_main

        policy = load_policy(args.config)
        return worker_main(
            policy, args.addresses, args.proc_id, args.metrics_port, args.metrics_host
        )
    if args.command == "demo":
        if args.replay:
            from dataflows.demo.replay_demo import run_demo

            return run_demo(
                prospects=args.prospects, seed=args.seed, config=args.config, out_dir=args.out
            )
        from dataflows.demo.live_demo import run_live_demo

        return run_live_demo(
            prospects=args.prospects,
            seed=args.seed,
            seconds=args.seconds,
            config=args.config,
            out_dir=args.out,
        )
    return EXIT_USAGE


def _replay(args: argparse.Namespace) -> int:
    from dataflows.replay import replay, write_jsonl

    policy = load_policy(args.config)
    until = parse_ts(args.until) if args.until is not None else None
    if args.workers < 1:
        msg = f"--workers must be at least 1, got {args.workers}"
        raise ValueError(msg)
    if not args.events.is_file():
        print(f"touchflow: cannot read {args.events}: not a readable file", file=sys.stderr)
        return EXIT_ERROR
    result = replay(args.events, Engine(policy), until=until, workers=args.workers)
    with ExitStack() as stack:
        commands = _open_out(stack, args.commands, sys.stdout.buffer)
        write_jsonl(result.commands, commands)
        if args.decisions is not None:
            write_jsonl(result.decisions, _open_out(stack, args.decisions, sys.stdout.buffer))
        write_jsonl(result.dead_letters, _open_out(stack, args.dead_letter, sys.stderr.buffer))
    return 0


def _run(args: argparse.Namespace) -> int:
    from dataflows.supervisor import LiveSettings, run

    policy = load_policy(args.config)
    if args.workers < 1:
        msg = f"--workers must be at least 1, got {args.workers}"
        raise ValueError(msg)
    settings = LiveSettings(
        redis_url=args.redis,
        workers=args.workers,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        data_dir=args.data_dir,
        config=args.config,
        addresses=tuple(a for a in (args.addresses or "").replace(",", ";").split(";") if a),
        process_id=args.process_id,
    )
    return run(policy, settings)


def _give_up(args: argparse.Namespace) -> float:
    """`--give-up-after`, else the environment's, else 60 s."""
    source = "--give-up-after"
    if args.give_up_after is not None:
        seconds: float = args.give_up_after
    else:
        source, text = GIVE_UP_ENV, os.environ.get(GIVE_UP_ENV, "60")
        try:
            seconds = float(text)
        except ValueError:
            msg = f"{GIVE_UP_ENV} must be a number of seconds, not {text!r}"
            raise ValueError(msg) from None
    if not seconds >= 0:  # also refuses nan
        msg = f"{source} must be 0 or more seconds, got {seconds}"
        raise ValueError(msg)
    return seconds


def _move_url_off_the_command_line(url: str) -> None:
    """Run this command again with the Redis URL in REDIS_URL when it holds a secret.

    Anyone on the machine can read a process's command line (`ps`, /proc/PID/cmdline), only its
    owner its environment; `run` lives for days. So the process re-executes itself, same pid
    (whoever started it, a supervisor or a test, sees no difference), without `--redis URL` and
    with REDIS_URL set (`--redis` would have won over it, so nothing else changes). Only when
    `main` parses the real command line: an in-process caller's argv is not ours to rewrite.
    Nothing happens if the URL cannot be found whole in the command line.
    """
    from connectors.redis_client import has_secret

    if not has_secret(url) or not sys.executable or os.name != "posix":
        return
    args = list(sys.orig_argv)
    kept = args[:1]
    skip_next = False
    for arg, after in zip(args[1:], [*args[2:], None], strict=True):
        if skip_next:
            skip_next = False
        elif after == url and arg.startswith("--r") and "--redis".startswith(arg):
            skip_next = True  # `--redis URL` (or an abbreviation argparse accepted)
        elif arg.startswith("--r") and "--redis".startswith(arg.partition("=")[0]):
            if arg.partition("=")[2] != url:
                kept.append(arg)  # `--redis=URL` is dropped; anything else is kept
        else:
            kept.append(arg)
    if any(url in arg for arg in kept):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, kept, {**os.environ, "REDIS_URL": url})


def _open_out(stack: ExitStack, path: Path | None, default: IO[bytes]) -> IO[bytes]:
    if path is None:
        return default
    path.parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(path.open("wb"))


if __name__ == "__main__":
    sys.exit(main())
