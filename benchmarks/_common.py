"""Shared helpers for the benchmark scripts: timing, statistics, machine facts, event data.

Timing follows msgspec's benchmarks: `timeit.Timer.autorange` picks a loop count that runs for
at least 0.2 s, then the measurement is repeated and the median kept, because this 2-core box is
shared and noisy and a single absolute time means little. Every script times its baseline in the
same run, interleaved with the subject, and reports the ratio.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import timeit
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

ROOT: Final = Path(__file__).resolve().parent.parent


# -- timing -----------------------------------------------------------------------------------


def autorange_ns(stmt: str, namespace: dict[str, Any]) -> float:
    """Nanoseconds per execution of `stmt`, looped long enough to time (>= 0.2 s, as timeit).

    A statement string over `namespace` (not a lambda) so no extra Python call is timed.
    """
    number, seconds = timeit.Timer(stmt, globals=namespace).autorange()
    return seconds / number * 1e9


def median(values: Sequence[float]) -> float:
    """The median: robust to the odd slow run on a shared machine."""
    return statistics.median(values)


# -- machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The `lscpu` model name (falls back to /proc/cpuinfo, then to platform)."""
    try:
        text = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the numbers were measured on, for the report."""
    from importlib.metadata import version

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "bytewax": version("bytewax"),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def cpu_ticks() -> tuple[float, float]:
    """(steal, all) clock ticks of every core since boot, from /proc/stat (zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


def steal_pct(start: tuple[float, float], end: tuple[float, float]) -> float:
    """The share (%) of all cores' time the hypervisor gave other guests between two
    `cpu_ticks`: on a shared VM, what moves figures most besides the code."""
    total = end[1] - start[1]
    return round(100 * (end[0] - start[0]) / total, 1) if total else 0.0


def peak_rss_bytes() -> int:
    """Peak resident set size of this process image: VmHWM from /proc/self/status.

    Not `ru_maxrss`: Linux carries that across exec, so a child started by a big parent would
    report the parent's peak. VmHWM belongs to the new address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # the kernel reports kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    """Current resident set size of this process, from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


# -- output -----------------------------------------------------------------------------------


def print_json(result: dict[str, Any]) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")


def print_result(result: dict[str, Any], title: str, *, as_json: bool) -> None:
    """A script's result: one JSON object, or a two-column table of its flat measures."""
    if as_json:
        print_json(result)
        return
    rows = [(key, value) for key, value in result.items() if key != "machine"]
    print_table(title, ["measure", "value"], rows)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a child's metrics endpoint)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A small rich table on stdout (the human-readable mode; --json prints JSON instead)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)


# -- event data -------------------------------------------------------------------------------

START: Final = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)  # a Monday, 00:00 UTC (20:00 in New York)

# (event type, weight) for every event after a prospect's first: a day of B2B traffic is mostly
# web visits and email engagement, some campaign requests, and a few replies and suppressions.
_MIX: Final[tuple[tuple[str, float], ...]] = (
    ("page_view", 34.0),
    ("opened", 12.0),
    ("touch_request", 10.0),
    ("delivered", 8.0),
    ("clicked", 6.0),
    ("consent", 5.0),
    ("touch_sent", 5.0),
    ("profile", 3.0),
    ("replied", 2.0),
    ("form_submit", 1.5),
    ("proposal_view", 1.0),
    ("content_download", 1.0),
    ("bounce", 0.5),
    ("preference", 0.5),
    ("opt_out", 0.3),
    ("meeting_booked", 0.2),
)
_CHANNELS: Final = ("email", "sms", "phone", "chat", "linkedin")
_ZONES: Final = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
)
_PHONES: Final = ("+12125550100", "+13125550100", "+14155550100", "+16465550100", "+442071234567")
_PAGES: Final = (  # 1 in 8 page views is a pricing page (a trigger)
    *("/", "/blog/post", "/features", "/docs", "/customers", "/about", "/careers"),
    "/pricing",
)
_REPLIES: Final = (
    ("Thanks, tell me more", "positive"),
    ("Not now", "neutral"),
    ("Please stop emailing me", "negative"),
    ("I am out of office until Monday", "out_of_office"),
    ("STOP", None),
)


def _timestamps(hours: float) -> list[str]:
    """RFC 3339 strings for every second of the window (formatting once, not per event)."""
    return [
        (START + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in range(int(hours * 3600) + 1)
    ]


def _event(kind: str, eid: str, prospect: str, ts: str, rng: random.Random) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "id": eid, "prospect": prospect, "ts": ts}
    if kind == "profile":
        event["timezone"] = rng.choice(_ZONES) if rng.random() < 0.7 else None
        event["phone"] = rng.choice(_PHONES) if rng.random() < 0.6 else None
        event["email"] = f"{prospect}@example.com"
        event["segment"] = rng.choice(("smb", "mid", "enterprise"))
        if rng.random() < 0.1:
            event["region"] = rng.choice(("US-FL", "US-OK", "US-CA"))
    elif kind == "consent":
        event["channel"] = rng.choice(("sms", "phone", "sms", "email"))
        event["granted"] = rng.random() < 0.9
        event["source"] = "web_form"
    elif kind == "page_view":
        event["url"] = "https://acme.example" + rng.choice(_PAGES)
    elif kind == "touch_request":
        event["channel"] = rng.choice(("auto", "auto", "email", "email", "sms", "linkedin"))
        event["campaign"] = rng.choice(("q2-launch", "webinar", "renewal"))
        event["topic"] = rng.choice(("launch", "webinar", None))
        event["transactional"] = rng.random() < 0.05
    elif kind in ("opened", "delivered"):
        event["channel"] = "email"
    elif kind == "clicked":
        event["channel"] = "email"
        event["url"] = "https://acme.example" + rng.choice(_PAGES)
    elif kind == "touch_sent":
        event["channel"] = rng.choice(("email", "phone", "linkedin"))
        event["by"] = "rep"
        event["topic"] = "follow-up"
    elif kind == "replied":
        text, sentiment = rng.choice(_REPLIES)
        event["channel"] = "sms" if text == "STOP" else rng.choice(("email", "sms", "linkedin"))
        event["text"] = text
        event["sentiment"] = sentiment
    elif kind == "form_submit":
        event["form"] = "demo-request"
    elif kind == "proposal_view":
        event["document"] = "proposal-v2"
    elif kind == "content_download":
        event["asset"] = "whitepaper"
    elif kind == "bounce":
        event["channel"] = "email"
        event["hard"] = rng.random() < 0.5
    elif kind == "preference":
        event["channel"] = rng.choice(_CHANNELS)
        event["stance"] = rng.choice(("prefer", "avoid", "only"))
    elif kind == "opt_out":
        event["channel"] = rng.choice(("email", "sms", "all"))
    return event


def local_generate(
    prospects: int, events: int, *, seed: int = 7, hours: float = 24.0
) -> list[bytes]:
    """`events` JSON lines about `prospects` prospects over `hours`, in event-time order.

    Every prospect gets at least one event, and its first is usually a profile; the rest follow
    `_MIX` and land on prospects uniformly (about events/prospects each). 0.5 % of events are
    redelivered later with the same id (at-least-once producers; exercises dedupe) and 0.1 % of
    lines are invalid (exercise the dead-letter branch), as live traffic would have.
    """
    if events < prospects:
        msg = f"local_generate: events ({events}) must be >= prospects ({prospects})"
        raise ValueError(msg)
    rng = random.Random(seed)
    stamps = _timestamps(hours)
    span = len(stamps) - 1
    owners = list(range(prospects)) + rng.choices(range(prospects), k=events - prospects)
    seconds = [rng.randrange(span) for _ in owners]
    order = sorted(range(events), key=seconds.__getitem__)
    kinds = rng.choices([k for k, _ in _MIX], weights=[w for _, w in _MIX], k=events)
    seen = bytearray(prospects)
    dumps = orjson.dumps
    lines: list[bytes] = []
    later: dict[int, list[bytes]] = {}  # position -> redelivered lines to emit after it
    for n, i in enumerate(order):
        if len(lines) >= events:
            break
        owner = owners[i]
        kind = kinds[n]
        if not seen[owner]:
            seen[owner] = 1
            kind = "profile" if rng.random() < 0.85 else "page_view"
        line = dumps(_event(kind, f"e{n:08d}", f"p{owner:06d}", stamps[seconds[i]], rng))
        r = rng.random()
        if r < 0.001:
            line = line.replace(b'"ts":"', b'"ts":"not-a-time ', 1)
        elif r < 0.006:
            later.setdefault(n + rng.randrange(1, 500), []).append(line)
        lines.append(line)
        if n in later:
            lines.extend(later.pop(n))
    return lines[:events]


def write_events(
    path: Path, prospects: int, events: int, *, seed: int = 7, generator: str = "auto"
) -> str:
    """Write the benchmark input once (outside any timing); return which generator made it.

    `auto` uses `dataflows.demo.simulate` (the project's own traffic simulator: realistic
    follow-ups, 0.2 % redeliveries, and here 0.1 % malformed lines) when it is importable with
    the expected API, else `local_generate`. The simulator sizes by events per prospect, so the
    line count is close to, not exactly, `events`; callers count the lines they got.
    """
    if generator not in ("auto", "simulate", "local"):
        msg = f"write_events: generator must be auto, simulate or local, not {generator!r}"
        raise ValueError(msg)
    if generator != "local":
        try:
            from dataflows.demo import simulate

            generate, write = simulate.generate, simulate.write_jsonl
        except (ImportError, AttributeError):
            if generator == "simulate":
                raise
        else:
            rows = generate(
                prospects, seed=seed, start=START, events_per_prospect=events / prospects
            )
            write(rows, path, malformed_fraction=0.001, seed=seed)
            return "dataflows.demo.simulate"
    with path.open("wb") as f:
        f.write(b"\n".join(local_generate(prospects, events, seed=seed)))
        f.write(b"\n")
    return "benchmarks._common.local_generate"


def count_lines(path: Path) -> int:
    """Non-blank lines in a file (the number of events the flow reads)."""
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())
