"""`touchflow gateway`'s command line, one definition for both ways in: `touchflow gateway`
(`dataflows.cli`) and `python -m dataflows.gateway` (what the tests start).

Apart from the server (`dataflows.gateway`) because the main CLI builds every command's
arguments at start: importing the server there would load uvicorn and Starlette for `touchflow
replay` too.
"""

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="policy TOML (default: bundled)")
    parser.add_argument("--redis", default=None, metavar="URL", help="default: REDIS_URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--public-url", default=None, metavar="URL", help="base URL providers call")
    parser.add_argument("--spool-dir", default=None, metavar="DIR", help="[gateway] spool_dir")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])


def command(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (`dataflows.gateway.run`); errors a user can fix raise
    (`TouchflowError`, `ValueError`) for the caller to print as one line."""
    from dataflows.gateway import run

    return run(args)
