"""The live demo's child processes and signals: start them, wait for them, stop them cleanly.

Apart from the demo's own logic (`live_demo`) because this is the part that must hold whatever
happens: each child runs in its own session, so a Ctrl-C reaches only the demo, which then stops
the gateway and the flow with SIGTERM (the flow writes a final checkpoint), and with SIGKILL only
if one hangs. SIGTERM and SIGHUP end the demo as Ctrl-C does, and a second Ctrl-C during the
cleanup is ignored, so no process is ever left behind.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Final

from dataflows.demo.gateway_wire import CallbackSecrets, Http
from operators.errors import TouchflowError

STOP_TIMEOUT_S: Final = 30.0
START_TIMEOUT_S: Final = 30.0


class DemoError(TouchflowError):
    """A part of the live demo failed (the flow did not start, or died)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn_gateway(
    redis_url: str, config: Path, secrets: CallbackSecrets, log: Path, spool: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m dataflows.gateway` on a free port, in its own session (Ctrl-C reaches only the
    demo). Its secrets go in its environment only, none of the caller's TOUCHFLOW_* with them."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "dataflows.gateway", "--redis", redis_url, "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--public-url", url]
    cmd += ["--spool-dir", str(spool)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHFLOW_")}
    env.pop("REDIS_URL", None)
    env.update(secrets.gateway_env())
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
        )
    return proc, url


def await_gateway(
    spawn: Callable[[], tuple[subprocess.Popen[bytes], str]],
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
) -> tuple[subprocess.Popen[bytes], str]:
    """Wait until the gateway answers `/healthz`; one that exits at start (its free port taken
    meanwhile) is started again on another port, twice at most."""
    deadline = time.monotonic() + START_TIMEOUT_S
    attempts = 1
    try:
        while True:
            probe = Http(url, timeout=1.0)
            try:
                if probe.request("GET", "/healthz")[0] == 200:
                    return proc, url
            except (OSError, http.client.HTTPException):
                pass
            finally:
                probe.close()
            if proc.poll() is not None and attempts < 3:
                attempts += 1
                proc, url = spawn()
            elif proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                msg = f"the gateway did not start (see {log}): " + " | ".join(tail)
                raise DemoError(msg)
            time.sleep(0.05)
    except BaseException:
        stop_process(proc)
        raise


def start_flow(url: str, config: Path | None, log: Path) -> subprocess.Popen[bytes]:
    """`touchflow run --redis URL` in its own session, so Ctrl-C reaches only the demo, which
    then stops it with SIGTERM; returns once it logs that it is live."""
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", url]
    if config is not None:
        cmd += ["--config", str(config)]
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while b"touchflow live on" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                msg = f"touchflow run did not start (see {log}): " + " | ".join(tail)
                raise DemoError(msg)
            time.sleep(0.05)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the flow writes a final checkpoint and exits 0, the gateway finishes the
    requests in flight); SIGKILL if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo as Ctrl-C does, with the same cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP ignored while the demo cleans up, so that a second Ctrl-C
    cannot leave a process behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ignored = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous: dict[int, Any] = {s: signal.signal(s, signal.SIG_IGN) for s in ignored}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
