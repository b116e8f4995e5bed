"""`touchflow demo`: the live system on one screen, with nothing installed but the package.

An embedded Redis; the flow as a `touchflow run` subprocess against it; the ingestion gateway as
a `python -m dataflows.gateway` subprocess on a free 127.0.0.1 port; a publisher thread that
plays a simulated day of prospects onto the event streams in real time (squeezed into `seconds`,
see `tape`); a simulated sender thread that reads the command streams with its own consumer
groups and answers as the providers would, with signed SendGrid and Twilio callbacks (and
first-party events) posted to the gateway (`sender`, `gateway_wire`); and, on a terminal, a
display that updates in place, reading Redis and the gateway's `/metrics`. So the whole path runs:
provider → gateway → flow → command → sender. The secrets the sender signs with and the gateway
checks with are made fresh for each run and reach the gateway only through its environment;
they are never printed or written.

When the stream is drained (or a few seconds after publishing ends) the sender stops, the
gateway and then the flow get SIGTERM (the flow writes a final checkpoint), Redis is read for the
final summary and stopped. Every process is cleaned up however the demo ends, Ctrl-C and SIGTERM
included (`processes`).
"""

import contextlib
import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import msgspec
import redis
from rich.console import Console
from rich.live import Live

from connectors.keys import Keys
from connectors.redis_server import EmbeddedRedis
from dataflows.demo.gateway_wire import CallbackSecrets, GatewayWire, Http
from dataflows.demo.processes import (
    DemoError,
    await_gateway,
    interrupt_on_sigterm,
    signals_ignored,
    spawn_gateway,
    start_flow,
    stop_process,
)
from dataflows.demo.replay_demo import check_prospects
from dataflows.demo.sender import Sender
from dataflows.demo.tables import summary_console
from dataflows.demo.tape import Publisher, Tape, build_tape
from dataflows.demo.view import panel, summary
from dataflows.demo.watch import GatewayCounts, Outcome, Watcher, gateway_counts
from dataflows.live import keys_for
from operators.policy import Policy, load_policy

TAIL_S: Final = 6.0  # after publishing, wait at most this long for the stream to drain
EXIT_INTERRUPTED: Final = 130


def run_live_demo(
    *,
    prospects: int,
    seed: int,
    seconds: float,
    config: Path | None,
    out_dir: Path,
    console: Console | None = None,
    secrets: CallbackSecrets | None = None,
) -> int:
    """Run the live demo, print its summary; files go to `out_dir`. Returns the exit status.

    `secrets` (for tests) replaces the fresh ones the sender and the gateway get."""
    check_prospects(prospects)
    if not 2 <= seconds <= 600:
        msg = f"demo: --seconds must be between 2 and 600, got {seconds}"
        raise ValueError(msg)
    policy = load_policy(config)  # a bad config fails before any process starts
    keys = keys_for(policy)
    console = console or summary_console()
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = _Demo(keys, _compressed(policy, out_dir), out_dir, secrets or CallbackSecrets.generate())
    interrupted = False
    outcome: Outcome | None = None
    with interrupt_on_sigterm():
        try:
            demo.start()
            demo.run(prospects, seed, seconds, console)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with signals_ignored():  # a second Ctrl-C must not leave processes behind
                outcome = demo.stop(interrupted)
    if outcome is not None:
        summary(console, outcome)
    if interrupted:
        return EXIT_INTERRUPTED
    return 0 if outcome is not None and outcome.flow_status == 0 else 1


def _compressed(policy: Policy, out_dir: Path) -> Path:
    """The flow's config for a day compressed into seconds: a 1 s arbitration window.

    The default 60 s window would hold every campaign request past the end of the demo; all
    other rules stay as configured. Written next to the outputs, so the run can be inspected.
    """
    requests = msgspec.structs.replace(
        policy.requests, arbitration_seconds=min(1, policy.requests.arbitration_seconds)
    )
    path = out_dir / "flow.toml"
    whole = msgspec.to_builtins(msgspec.structs.replace(policy, requests=requests))
    path.write_bytes(msgspec.toml.encode(_without_nulls(whole)))  # TOML has no null: left out
    return path


def _without_nulls(value: Any) -> Any:
    """A decoded document with every null left out (an unset key reads back as its default)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


class _Demo:
    """The demo's processes and threads; `stop` ends all of them whatever state they are in."""

    def __init__(self, keys: Keys, config: Path, out_dir: Path, secrets: CallbackSecrets) -> None:
        self.keys = keys
        self.config = config
        self.out_dir = out_dir
        self.secrets = secrets
        self.log = out_dir / "flow.log"
        self.gateway_log = out_dir / "gateway.log"
        self.server: EmbeddedRedis | None = None
        self.flow: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_url = ""
        self.spool: Path | None = None
        self.metrics: Http | None = None
        self.metrics_text = ""
        self.clients: list[redis.Redis] = []
        self.halt = threading.Event()
        self.tape: Tape | None = None
        self.started = 0.0
        self.seconds = 0.0
        self.seed = 0
        self.publisher: Publisher | None = None
        self.sender: Sender | None = None
        self.sender_thread: threading.Thread | None = None
        self.files: list[IO[bytes]] = []
        self.watcher: Watcher | None = None

    def start(self) -> None:
        self.server = EmbeddedRedis()
        self.server.start()
        self.spool = Path(tempfile.mkdtemp(prefix="touchflow-demo-spool-"))
        self.gateway_log.write_bytes(b"")
        url, spool = self.server.url, self.spool

        def spawn() -> tuple[subprocess.Popen[bytes], str]:
            return spawn_gateway(url, self.config, self.secrets, self.gateway_log, spool)

        self.gateway, self.gateway_url = spawn()  # it starts while the flow does
        self.flow = start_flow(url, self.config, self.log)
        self.gateway, self.gateway_url = await_gateway(
            spawn, self.gateway, self.gateway_url, self.gateway_log
        )
        self.metrics = Http(self.gateway_url, timeout=2.0)

    def _client(self) -> redis.Redis:
        assert self.server is not None
        client = redis.Redis.from_url(self.server.url)
        self.clients.append(client)
        return client

    def _file(self, name: str) -> IO[bytes]:
        f = (self.out_dir / name).open("wb")
        self.files.append(f)
        return f

    def run(self, prospects: int, seed: int, seconds: float, console: Console) -> None:
        self.seconds = seconds
        self.seed = seed
        self.started = start = time.time() + 0.5
        path = self.out_dir / "events.jsonl"
        self.tape = tape = build_tape(
            prospects, seed=seed, start=start, seconds=seconds, keys=self.keys, path=path
        )
        self.watcher = Watcher(
            self._client(),
            self.keys,
            since_ms=int(start * 1000),
            published=tape.published(),
            stories=tape.stories,
        )
        wire = GatewayWire(
            self.gateway_url,
            self.secrets,
            contacts=tape.contacts,
            log_to=self._file("callbacks.jsonl"),
        )
        self.sender = sender = Sender(
            self._client(),
            self.keys,
            seed=seed,
            plain=tape.stories,
            wire=wire,
            log_to=self._file("answers.jsonl"),
        )
        self.sender_thread = threading.Thread(
            target=sender.run, args=(self.halt,), name="sender", daemon=True
        )
        self.publisher = Publisher(self._client(), self.keys, tape, start, self.halt)
        self.sender_thread.start()
        self.publisher.start()
        if not console.is_terminal:
            print(f"touchflow demo: running live for about {seconds:.0f} s…", file=sys.stderr)
        live = Live(console=console, transient=True, auto_refresh=False)
        with live if console.is_terminal else contextlib.nullcontext():
            self._loop(lambda: live.update(panel(self._view()), refresh=True))

    def _loop(self, show: Callable[[], None]) -> None:
        """Refresh the counts until the stream is drained, or the tail after publishing is over."""
        assert self.watcher is not None
        assert self.publisher is not None
        assert self.sender is not None
        deadline = self.started + self.seconds + TAIL_S
        calm = 0
        while True:
            self._check()
            self.watcher.refresh()
            self._scrape()
            show()
            published = self.publisher.done.is_set()
            quiet = self.watcher.drained and self.sender.scheduled == 0
            calm = calm + 1 if published and quiet else 0
            if calm >= 2 or (published and time.time() >= deadline):
                return
            time.sleep(0.25)

    def _scrape(self) -> None:
        """The gateway's `/metrics`, kept as the last page read."""
        if self.metrics is None:
            return
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, page = self.metrics.request("GET", "/metrics")
            if status == 200:
                self.metrics_text = page.decode(errors="replace")

    def _check(self) -> None:
        for name, proc, log in (
            ("touchflow run", self.flow, self.log),
            ("the gateway", self.gateway, self.gateway_log),
        ):
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                msg = f"{name} exited with status {proc.returncode}: " + " | ".join(tail)
                raise DemoError(msg)
        if self.publisher is not None and self.publisher.error is not None:
            msg = f"the publisher failed: {self.publisher.error!r}"
            raise DemoError(msg)
        if self.sender_thread is not None and not self.sender_thread.is_alive():
            msg = "the simulated sender stopped unexpectedly"
            raise DemoError(msg)

    def _view(self, *, flow_status: int | None = None, interrupted: bool = False) -> Outcome:
        assert self.tape is not None
        assert self.watcher is not None
        assert self.publisher is not None
        assert self.sender is not None
        counts = gateway_counts(self.metrics_text) if self.metrics_text else GatewayCounts()
        return Outcome(
            url=self.server.url if self.server is not None else "",
            gateway_url=self.gateway_url,
            seed=self.seed,
            flow_pid=self.flow.pid if self.flow is not None else 0,
            started=self.started,
            seconds=self.seconds,
            now=time.time(),
            tape=self.tape,
            published=self.publisher.published,
            stories_published=list(self.publisher.stories),
            watcher=self.watcher,
            sender=self.sender.stats.snapshot(),
            sender_scheduled=self.sender.scheduled,
            gateway=counts,
            flow_status=flow_status,
            interrupted=interrupted,
            out_dir=self.out_dir,
        )

    def stop(self, interrupted: bool) -> Outcome | None:
        """Stop threads, the gateway, the flow (SIGTERM: final checkpoint), read the results,
        stop Redis."""
        self.halt.set()
        for thread in (self.publisher, self.sender_thread):
            if thread is not None:
                thread.join(timeout=10)
        if self.sender is not None:
            self.sender.close()
        self._scrape()  # the gateway's final counts
        if self.metrics is not None:
            self.metrics.close()
        if self.metrics_text:
            (self.out_dir / "gateway_metrics.txt").write_text(self.metrics_text)
        if self.gateway is not None:
            stop_process(self.gateway)
        status = stop_process(self.flow) if self.flow is not None else None
        outcome = None
        try:
            if self.watcher is not None and self.tape is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    self.watcher.refresh()  # the backlog the final checkpoint left
                    outcome = self._view(flow_status=status, interrupted=interrupted)
                    outcome.collect(self.watcher.client, self.keys)
        finally:
            for f in self.files:
                f.close()
            for client in self.clients:
                client.close()
            if self.server is not None:
                self.server.stop()
            if self.spool is not None:
                shutil.rmtree(self.spool, ignore_errors=True)
        return outcome
