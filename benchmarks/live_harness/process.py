"""`touchflow run` as a child process group, and what it, Redis and the publisher cost in CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import _common

from live_harness.publish import Streams

START_TIMEOUT_S: Final = 60.0


class Flow:
    """`touchflow run` as a child process group: start, pause, resume, stop; CPU time used."""

    def __init__(self, url: str, config: Path, workers: int, log: Path) -> None:
        self.log = log
        command = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url]
        command += ["--config", str(config), "--workers", str(workers)]
        command += ["--data-dir", str(log.parent / "data")]  # unused with --redis; kept private
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=out, cwd=_common.ROOT, start_new_session=True
            )
        self.paused = False

    def wait_started(self, streams: Streams) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"touchflow live on" not in self.log.read_bytes() or not streams.ready():
            if self.proc.poll() is not None:
                msg = f"touchflow run exited with {self.proc.returncode}:\n{self.tail()}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"touchflow run did not start in {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            msg = f"touchflow run exited with {self.proc.returncode}:\n{self.tail()}"
            raise RuntimeError(msg)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean stop with a final checkpoint); SIGKILL the group if it hangs."""
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)  # a stopped process would not see SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # any straggler worker left in the group
        return self.proc.returncode

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of every live process in the flow's process group."""
        return group_cpu_s(self.proc.pid)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces


def group_cpu_s(pgid: int) -> float:
    """utime + stime of every process whose process group is `pgid` (Linux /proc)."""
    ticks = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == pgid:  # field 5 = pgrp
            ticks += int(fields[11]) + int(fields[12])  # fields 14, 15 = utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def pid_cpu_s(pid: int | None) -> float:
    fields = _stat_fields(str(pid)) if pid is not None else None
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU used by the flow, redis-server and this script over a phase, in % of one core; and
    the machine's steal time (% of all cores' time the hypervisor gave to other guests), since
    on a shared VM that, more than anything in touchflow, moves the latency tail."""

    flow: Flow
    redis_pid: int | None
    start: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.start = self._now()

    def _now(self) -> tuple[float, ...]:
        own = os.times()
        return (
            time.monotonic(),
            self.flow.cpu_s(),
            pid_cpu_s(self.redis_pid),
            own.user + own.system,
            *_common.cpu_ticks(),
        )

    def read(self) -> dict[str, float]:
        end = self._now()
        wall = end[0] - self.start[0]
        names = ("flow", "redis", "publisher")
        used = {
            n: round(100 * (end[i + 1] - self.start[i + 1]) / wall, 1) for i, n in enumerate(names)
        }
        steal = _common.steal_pct((self.start[4], self.start[5]), (end[4], end[5]))
        return used | {"machine_steal": steal}


# -- py-spy ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def py_spy(out: Path | None, pid: int, rate: int = 100) -> Iterator[None]:
    """Record the flow (its process group's processes too) with py-spy, raw collapsed stacks at
    `rate` samples a second, for the duration of the block."""
    if out is None:
        yield
        return
    exe = Path(sys.executable).parent / "py-spy"
    command = [str(exe), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    command += ["-r", str(rate), "-f", "raw", "-o", str(out)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
