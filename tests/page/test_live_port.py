"""A real `touchflow run --workers 2 --metrics-host H --metrics-port P`: each worker process
serves its port on H (not on 127.0.0.1), the token from the environment guards the scorecard
of every process and appears on no command line and in no log, process 0 alone serves the
live scorecard (JSON and `touchflow_scorecard_*` series, as the live reader reads Redis), and
SIGTERM stops it all."""

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
import redis

from connectors.keys import Keys
from connectors.scorecard_store import read_scorecard
from connectors.web import NO_SCORECARD, TOKEN_ENV
from operators.policy import load_policy
from tests.dataflows import live_harness as h
from tests.dataflows.test_outage_live import wait_for
from tests.dataflows.test_secrets_live import _cmdline, _descendants

pytestmark = [pytest.mark.redis, pytest.mark.slow]
HOST = "127.0.0.2"  # loopback too, but not the default one
TOKEN = "live-port-token-93ad"
KEYS = Keys(prefix="tft", shards=4)  # live_harness's config


def _get(host: str, port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{host}:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except urllib.error.URLError:
        return 0, b""


def _free_pair() -> int:
    """A port P with P and P+1 free on HOST and on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOST, 0))
            base: int = s.getsockname()[1]
        if base < 65535 and all(_free(a, p) for a in (HOST, "127.0.0.1") for p in (base, base + 1)):
            return base
    msg = "no pair of free ports"
    raise AssertionError(msg)


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
        return True


def test_run_serves_each_workers_port_on_the_host_given_with_the_token(
    redis_client: redis.Redis, redis_test_url: str, tmp_path: Path
) -> None:
    port = _free_pair()
    config = h.write_config(tmp_path)
    log = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "dataflows.cli", "run", "--redis", redis_test_url,
           "--config", str(config), "--workers", "2",
           "--metrics-port", str(port), "--metrics-host", HOST]  # fmt: skip
    env = {**os.environ, TOKEN_ENV: TOKEN}
    env.pop("REDIS_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        for n in range(2):
            wait_for(
                f"worker {n}'s port", lambda n=n: _get(HOST, port + n, "/healthz")[0] == 200, 60
            )
            assert _get("127.0.0.1", port + n, "/healthz") == (0, b"")  # not on the default
            assert _get(HOST, port + n, "/metrics")[0] == 200  # open: scrapers carry no token
            assert _get(HOST, port + n, "/scorecard.json")[0] == 401
            assert _get(HOST, port + n, "/scorecard")[0] == 401
        status, body = _get(HOST, port + 1, "/scorecard.json", TOKEN)
        assert (status, orjson.loads(body)) == (404, {"error": NO_SCORECARD})  # process 0's only
        assert _get(HOST, port, "/scorecard", TOKEN)[0] == 200
        h.publish(redis_client, KEYS, h.make_events(prospects=20, per_prospect=4, seed=3))
        h.wait_drained(redis_client, KEYS)
        policy = load_policy(config)

        def served_is_stored() -> bool:
            status, body = _get(HOST, port, "/scorecard.json", TOKEN)
            stored = read_scorecard(redis_client, KEYS, policy)
            return status == 200 and stored is not None and orjson.loads(body) == stored

        wait_for("process 0's scorecard", served_is_stored, 30)
        card = orjson.loads(_get(HOST, port, "/scorecard.json", TOKEN)[1])
        assert card["overall"]["prospects_touched"] > 0, "the traffic touched nobody"
        scraped = _get(HOST, port, "/metrics")[1].decode()  # the same read, shared for 1 s
        for channel, row in card["channels"].items():
            line = f'touchflow_scorecard_touches{{channel="{channel}"}} {float(row["touches"])}'
            assert line in scraped
        assert "touchflow_scorecard_" not in _get(HOST, port + 1, "/metrics")[1].decode()
        workers = _descendants(proc.pid)
        assert len(workers) == 2
        for pid in (proc.pid, *workers):
            line = _cmdline(pid)
            assert f"--metrics-host {HOST}".encode() in line or pid == proc.pid, line
            assert TOKEN.encode() not in line
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert TOKEN.encode() not in log.read_bytes()
    for n in range(2):
        assert _get(HOST, port + n, "/healthz") == (0, b"")  # stopped with the flow
