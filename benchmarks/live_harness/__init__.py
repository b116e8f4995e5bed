"""The harness behind `bench_live.py`: what it publishes, the process it measures, and how.

- `publish`: the mix of simulated traffic, stream entry ids, publishing and consumer-group
  progress (`Streams`, `Progress`).
- `process`: `touchflow run` as a child process group (`Flow`), the CPU and steal meters
  (`CpuMeter`) and py-spy.
- `phases`: the steady phase (latency), the backlog rounds (highest drained rate) and the replay
  of the same events in a fresh interpreter.
- `stats`: percentile, slope and the undelivered timeline.

Imported by `bench_live.py` with `benchmarks/` on `sys.path` (the script's directory), like
`_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import _common

DEFAULT_CONFIG: Final = _common.ROOT / "config" / "default.toml"
SCRIPT: Final = Path(__file__).resolve().parent.parent / "bench_live.py"  # runs the replay child
