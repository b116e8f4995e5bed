"""The `touchflow` command line (CONTRACT.md section 5).

Errors a user can fix (unreadable input, invalid config, bad arguments) print one line on standard
error and exit non-zero; rejected events are not errors (they go to the dead-letter output).
"""

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from operators.engine import Engine
from operators.errors import ConfigError
from operators.policy import load_policy
from operators.timeutil import parse_ts

EXIT_USAGE = 2
EXIT_ERROR = 1


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

    dp = sub.add_parser("demo", help="simulate a day of traffic, replay it, print a summary")
    dp.add_argument("--prospects", type=int, default=300)
    dp.add_argument("--seed", type=int, default=7)
    dp.add_argument("--config", type=Path, default=None)
    dp.add_argument("--out", type=Path, default=Path("out/demo"), help="where files go")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "replay":
            return _replay(args)
        if args.command == "demo":
            from dataflows.demo import run_demo

            return run_demo(
                prospects=args.prospects, seed=args.seed, config=args.config, out_dir=args.out
            )
    except ConfigError as exc:
        print(f"touchflow: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        name = exc.filename if exc.filename is not None else ""
        print(f"touchflow: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(f"touchflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
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


def _open_out(stack: ExitStack, path: Path | None, default: IO[bytes]) -> IO[bytes]:
    if path is None:
        return default
    path.parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(path.open("wb"))


if __name__ == "__main__":
    sys.exit(main())
