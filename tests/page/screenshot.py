"""Take the README's screenshot of the scorecard page: `python -m tests.page.screenshot`.

A week of simulated traffic for a few hundred prospects, with a simulated sender answering
(`tests/page/data.py`: a real replay; its `daily` counts are test data), served by the real
metrics server and photographed, whole page, in Debian's headless chromium.
"""

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from connectors.health import Health
from connectors.metrics import Metrics
from connectors.web import serve
from tests.page.browser import console_errors, headless, missing, wait_ready
from tests.page.data import scorecard_of

OUT = Path(__file__).resolve().parent / "scorecard.png"


def take(out: Path, *, prospects: int, seed: int, hours: float, width: int = 1400) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        card = scorecard_of(Path(tmp), prospects=prospects, seed=seed, hours=hours)
    server = serve(Metrics(health=Health()), 0, lambda: None, scorecard=lambda: card)
    try:
        with headless(width=width, height=900) as driver:
            driver.get(f"{server.url}/scorecard?refresh=0")
            wait_ready(driver)
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            driver.set_window_size(width, height + 40)
            wait_ready(driver)
            errors = console_errors(driver)
            if errors:
                msg = f"the page logged errors: {errors}"
                raise RuntimeError(msg)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(out)):
                msg = f"chromium could not write {out}"
                raise RuntimeError(msg)
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--prospects", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=168.0)
    args = parser.parse_args(argv)
    if missing():
        print(f"missing: {', '.join(missing())} (apt-get install chromium chromium-driver)")
        return 1
    take(args.out, prospects=args.prospects, seed=args.seed, hours=args.hours)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
