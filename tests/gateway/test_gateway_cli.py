"""`touchflow gateway` through the main CLI, as a user starts it: the gateway's own log lines are
printed (its start line names the address, Redis and the spool), at `--log-level`."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.gateway.harness import ROOT, free_port


def _stderr_once_serving(tmp_path: Path, *extra: str) -> bytes:
    """Start it (Redis at port 1 refuses: the gateway warns, spools and serves, so no Redis is
    needed), wait until it answers, stop it: everything it printed on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHFLOW_")}
    port = free_port()
    args = [sys.executable, "-m", "dataflows.cli", "gateway", "--port", str(port)]
    args += ["--redis", "redis://127.0.0.1:1/0", "--spool-dir", str(tmp_path / "spool"), *extra]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    return err


def test_touchflow_gateway_prints_its_start_line(tmp_path: Path) -> None:
    text = _stderr_once_serving(tmp_path)
    assert b"WARNING gateway: Redis unavailable at start" in text
    assert b"INFO gateway on http://127.0.0.1:" in text
    assert str(tmp_path / "spool").encode() in text


def test_log_level_warning_keeps_the_warnings_only(tmp_path: Path) -> None:
    text = _stderr_once_serving(tmp_path, "--log-level", "warning")
    assert b"WARNING gateway: Redis unavailable at start" in text
    assert b"INFO" not in text
