"""What an idle live flow costs: CPU of `touchflow run` with nothing to do.

What is measured
    A real `touchflow run` (one worker process) on its own embedded Redis, with no input: after
    a settling time, the process's CPU time (user + system, from /proc/PID/stat) over `--seconds`,
    as a percentage of one core; the embedded Redis's share too, since the flow's polling is
    what keeps it busy. Target (issue 12): <= 3 % of a core.

Baseline (same run, measured at the same time)
    A Bytewax no-op flow with the same shape of input: four partitions that return nothing and
    ask to be polled again on the same 20 ms grid as the flow's quiet shards (`--child-noop`).
    That is what Bytewax itself costs to stay ready; the flow's figure minus it is touchflow's
    own (its Redis round trips, timer polls, checkpoint and housekeeping threads).

Usage: bench_idle.py [--json] [--seconds S] [--settle S]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

from connectors.redis_server import EmbeddedRedis


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percent(pids: list[int], seconds: float) -> list[float]:
    before = [cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    return [100 * (cpu_seconds(p) - b) / seconds for p, b in zip(pids, before, strict=True)]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    server = EmbeddedRedis(data_dir=work / "redis")
    server.start()
    log = (work / "run.log").open("ab")
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", server.url]
    flow = subprocess.Popen(
        [*cmd, "--metrics-port", str(_common.free_port())], stdout=log, stderr=log
    )
    idle = subprocess.Popen(
        [sys.executable, __file__, "--child-noop", str(args.settle + args.seconds + 5)]
    )
    try:
        time.sleep(args.settle)
        if flow.poll() is not None:
            msg = f"touchflow run exited; see {work / 'run.log'}"
            raise RuntimeError(msg)
        assert server.pid is not None
        flow_pct, redis_pct, noop_pct = _percent([flow.pid, server.pid, idle.pid], args.seconds)
    finally:
        flow.terminate()
        flow.wait(timeout=60)
        idle.kill()
        idle.wait()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "idle_flow_cpu_pct": round(flow_pct, 2),
        "idle_redis_cpu_pct": round(redis_pct, 2),
        "bytewax_noop_idle_cpu_pct": round(noop_pct, 2),
        "seconds": args.seconds,
        "machine": _common.machine(),
    }


def noop_flow(seconds: float) -> None:
    """The baseline: a Bytewax flow whose 4 partitions are always quiet (see the module doc)."""
    import threading
    from datetime import UTC, datetime, timedelta

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
    from bytewax.testing import run_main

    class Quiet(StatefulSourcePartition[bytes, None]):
        def next_batch(self) -> list[bytes]:
            return []

        def next_awake(self) -> datetime:
            step = 20_000  # microseconds, as the flow's quiet shards
            return datetime.fromtimestamp((time.time_ns() // 1_000 // step + 1) * step / 1e6, UTC)

        def snapshot(self) -> None:
            return None

    class Shards(FixedPartitionedSource[bytes, None]):
        def list_parts(self) -> list[str]:
            return ["0", "1", "2", "3"]

        def build_part(self, step_id: str, for_part: str, resume_state: None) -> Quiet:
            return Quiet()

    flow = Dataflow("idle")
    op.inspect("quiet", op.input("in", flow, Shards()))
    threading.Timer(seconds, lambda: os._exit(0)).start()
    run_main(flow, epoch_interval=timedelta(seconds=1))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-noop":
        noop_flow(float(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--settle", type=float, default=8.0, help="after start, before measuring")
    args = parser.parse_args()
    _common.print_result(measure(args), "idle live flow", as_json=args.json)


if __name__ == "__main__":
    main()
