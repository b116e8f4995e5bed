"""Helpers for live-mode tests: start/kill `touchflow run`, publish, wait, and an oracle.

The oracle is computed from the input alone: the replay of the same events (same engine, same
policy) gives the commands that must appear on the streams, each exactly once, and applying each
event exactly once to fresh state gives the states that must be in Redis.
"""

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import redis

from connectors.keys import OUT_CHANNELS, Keys
from dataflows.replay import replay
from operators.engine import Engine
from operators.events import decode_event
from operators.policy import load_policy
from operators.records import ENCODER
from operators.state import ProspectState, decode_state
from operators.timeutil import format_ts, parse_ts

# No deferrals, so wall-clock timers never race event order: requests that hit a cap are blocked
# (max_defer_hours = 0) and nobody grants sms/phone consent (no quiet-hours deferrals).
CONFIG = """
[[caps]]
name = "week"
hours = 168
total = 5
per_channel = { email = 3, sms = 2, phone = 1, linkedin = 2, chat = 2 }

[[caps]]
name = "day"
hours = 24
total = 1
exempt_own_action = true

[requests]
max_defer_hours = 0
arbitration_seconds = 0

[streams]
prefix = "tft"
shards = 4
checkpoint_interval_ms = 1000
claim_idle_ms = 1000
"""


def write_config(tmp: Path) -> Path:
    path = tmp / "live.toml"
    path.write_text(CONFIG)
    return path


def make_events(prospects: int, per_prospect: int, seed: int) -> list[dict[str, Any]]:
    """Events in time order; every type that changes state, none that defers a touch."""
    rng = random.Random(seed)
    start = parse_ts("2026-03-02T15:00:00Z")
    out: list[dict[str, Any]] = []
    for k in range(per_prospect):
        for p in range(prospects):
            t = start + k * 3_600_000 + p * 1000 + rng.randrange(1000)
            kind = rng.choice(
                [
                    "page_view",
                    "page_view",
                    "form_submit",
                    "touch_request",
                    "touch_request",
                    "clicked",
                    "replied",
                    "touch_sent",
                    "opt_out",
                    "proposal_view",
                ]
            )
            doc: dict[str, Any] = {
                "id": f"p{p}-{k}",
                "type": kind,
                "prospect": f"p{p}",
                "ts": format_ts(t),
            }
            if kind == "page_view":
                doc["url"] = rng.choice(["/pricing", "/blog", "/pricing/enterprise"])
            elif kind == "touch_request":
                doc |= {"channel": rng.choice(["email", "linkedin", "auto"]), "campaign": "c"}
            elif kind == "clicked":
                doc |= {"channel": "email", "url": "https://x.example/a"}
            elif kind == "replied":
                doc |= {"channel": "email", "sentiment": rng.choice(["positive", "negative"])}
            elif kind == "touch_sent":
                doc |= {"channel": "email"}
            elif kind == "opt_out":
                doc |= {
                    "channel": rng.choice(["email", "linkedin"]) if rng.random() < 0.9 else "all"
                }
            out.append(doc)
    return out


def start_run(
    url: str, config: Path, workers: int = 1, log: Path | None = None
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "dataflows.cli",
        "run",
        "--redis",
        url,
        "--config",
        str(config),
        "--workers",
        str(workers),
    ]
    if log is None:
        return subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 30
    while b"touchflow live on" not in log.read_bytes()[start:]:
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "touchflow run did not start"
        time.sleep(0.05)
    return proc


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group (a multi-worker run has children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def publish_through_kills(
    url: str,
    keys: Keys,
    config: Path,
    events: list[dict[str, Any]],
    *,
    min_kills: int,
    batch: int,
    uptime_s: tuple[float, float],
    log: Path,
    rng: random.Random,
) -> int:
    """Publish `events` in batches of `batch` (0.1 s apart) while `touchflow run` is started
    and SIGKILLed at random moments (up `uptime_s` seconds each time), at least `min_kills`
    times and until everything is published; then run it once more until the streams are
    drained and stop it cleanly. Returns how many times it was killed."""
    done = threading.Event()

    def producer() -> None:
        client = redis.Redis.from_url(url)
        for i in range(0, len(events), batch):
            publish(client, keys, events[i : i + batch])
            time.sleep(0.1)
        client.close()
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    kills = 0
    while kills < min_kills or not done.is_set():
        proc = start_run(url, config, log=log)
        time.sleep(rng.uniform(*uptime_s))
        kill9(proc)
        kills += 1
    thread.join()
    proc = start_run(url, config, log=log)
    r = redis.Redis.from_url(url)
    try:
        wait_drained(r, keys, timeout=120)
    finally:
        r.close()
        assert stop(proc) == 0
    return kills


def publish(r: redis.Redis, keys: Keys, events: list[dict[str, Any]]) -> None:
    from connectors.keys import shard_of

    pipe = r.pipeline(transaction=False)
    for e in events:
        pipe.xadd(
            keys.events(shard_of(e["prospect"], keys.shards)), {"event": msgspec.json.encode(e)}
        )
    pipe.execute()


def drained(r: redis.Redis, keys: Keys) -> bool:
    """Every published entry delivered and acknowledged (so its state is checkpointed)."""
    for shard in range(keys.shards):
        stream = keys.events(shard)
        last = r.xrevrange(stream, count=1)
        if not last:
            continue
        groups = {g["name"].decode(): g for g in r.xinfo_groups(stream)}
        group = groups.get(keys.group)
        if group is None or group["pending"] or group["last-delivered-id"] != last[0][0]:
            return False
    return True


def wait_drained(r: redis.Redis, keys: Keys, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not drained(r, keys):
        assert time.monotonic() < deadline, "the flow did not drain its input in time"
        time.sleep(0.2)


def live_commands(r: redis.Redis, keys: Keys) -> list[bytes]:
    return [
        fields[b"command"] for ch in OUT_CHANNELS for _id, fields in r.xrange(keys.commands(ch))
    ]


def oracle(
    events: list[dict[str, Any]], config: Path, tmp: Path
) -> tuple[list[bytes], dict[str, Any]]:
    """Expected commands (replay) and final states (each event applied exactly once)."""
    policy = load_policy(config)
    engine = Engine(policy)
    path = tmp / "oracle.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    expected = [ENCODER.encode(c) for c in replay(path, engine).commands]
    states: dict[str, ProspectState] = {}
    for doc in events:
        event = decode_event(msgspec.json.encode(doc))
        state = states.setdefault(event.prospect, ProspectState(prospect=event.prospect))
        engine.apply(state, event)
    return expected, {p: msgspec.to_builtins(s) for p, s in states.items()}


def live_states(r: redis.Redis, keys: Keys, prospects: list[str]) -> dict[str, Any]:
    out = {}
    for p in prospects:
        data = r.get(keys.state(p))
        assert data is not None, f"no checkpoint for {p}"
        out[p] = msgspec.to_builtins(decode_state(data))
    return out
