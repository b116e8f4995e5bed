"""Deterministic, realistic outreach traffic for `make demo`, tests and benchmarks.

Everything comes from one seeded `random.Random` and the given `start`, never the wall clock or the
global generator, so a seed names one exact day of traffic. The random prospects are `traffic`'s
model; this module assembles a day from them: a few "story" prospects scripted by hand, so the
demo has timelines worth reading, one sort of all events by time, a small share of redeliveries
(same id, same content) and, on the way to a file, malformed lines as a producer bug would send.
"""

import gc
import random
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

import orjson

from dataflows.demo.traffic import SITE, EventDict, Gen, actions, prospect

__all__ = ["SITE", "STORIES", "EventDict", "generate", "write_jsonl"]

# Story prospects: id -> (time zone, one-line blurb for the demo).
STORIES: Final[dict[str, tuple[str, str]]] = {
    "demo-alice": ("America/New_York", "form at 23:00 local: email now, call at 08:00"),
    "demo-bob": ("America/Chicago", "pricing page three times, then a positive reply"),
    "demo-carol": ("America/Los_Angeles", "texts STOP, then a campaign asks for sms"),
    "demo-dave": ("America/Denver", "a sequence, a reply 'text me instead', then sms"),
}


_M: Final = 60
_H: Final = 3600
# Story scripts: (anchor local hh, mm), then (seconds from anchor, type, fields) in order.
Script = tuple[tuple[int, int], tuple[tuple[int, str, EventDict | None], ...]]
_SCRIPTS: Final[dict[str, Script]] = {
    "demo-alice": ((23, 0), (
        (-10 * _M, "profile", {"timezone": "America/New_York", "phone": "+12125550147",
                               "email": "alice@example.org", "segment": "traditional"}),
        (-8 * _M, "page_view", {"url": f"{SITE}/features"}),
        (-30, "consent", {"channel": "phone", "granted": True, "source": "web_form"}),
        (0, "form_submit", {"form": "demo-request"}),  # email at once, the call waits for 08:00
        (20, "delivered", {"channel": "email"}),
        (8 * _H + 40 * _M, "opened", {"channel": "email"}),
        (9 * _H + 7 * _M, "call_outcome", {"outcome": "answered"}),
        (9 * _H + 20 * _M, "meeting_booked", None),
    )),
    "demo-bob": ((9, 0), (
        (-5 * _M, "profile", {"timezone": "America/Chicago", "email": "bob@example.org",
                              "segment": "digital_native", "lead_source": "webinar"}),
        (0, "touch_request", {"channel": "email", "campaign": "spring-webinar",
                              "topic": "webinar"}),
        (30, "delivered", {"channel": "email"}),
        (40 * _M, "opened", {"channel": "email"}),
        (41 * _M, "clicked", {"channel": "email", "url": f"{SITE}/pricing?utm_campaign=spring"}),
        (41 * _M + 10, "page_view", {"url": f"{SITE}/pricing?utm_campaign=spring"}),
        (4 * _H + 20 * _M, "page_view", {"url": f"{SITE}/pricing/enterprise"}),
        (6 * _H, "touch_request", {"channel": "auto", "campaign": "case-study-fintech",
                                   "topic": "case_study"}),
        (7 * _H + 45 * _M, "page_view", {"url": f"{SITE}/pricing"}),
        (8 * _H + 30 * _M, "replied", {"channel": "email", "sentiment": "positive",
                                       "text": "Yes, let's talk. Free tomorrow at 10?"}),
    )),
    "demo-carol": ((18, 0), (
        (-30 * _M, "profile", {"timezone": "America/Los_Angeles", "phone": "+14155550199",
                               "email": "carol@example.org", "segment": "digital_adopter"}),
        (-29 * _M, "consent", {"channel": "sms", "granted": True, "source": "sms_keyword"}),
        (-28 * _M, "preference", {"channel": "sms", "stance": "prefer"}),
        (0, "touch_sent", {"channel": "sms", "by": "automation", "topic": "launch"}),
        (5, "delivered", {"channel": "sms"}),
        (4 * _M, "replied", {"channel": "sms", "text": "STOP"}),
        (15 * _H + 30 * _M, "touch_request", {"channel": "sms", "campaign": "product-launch",
                                              "topic": "launch"}),
        (15 * _H + 31 * _M, "touch_request", {"channel": "auto", "campaign": "product-launch",
                                              "topic": "launch"}),
    )),
    "demo-dave": ((9, 0), (
        (-5 * _M, "profile", {"timezone": "America/Denver", "phone": "+17205550142",
                              "email": "dave@example.org", "segment": "traditional"}),
        (-4 * _M, "consent", {"channel": "sms", "granted": True, "source": "web_form"}),
        (0, "enroll", {"sequence": "basic"}),  # day 1 email at once; a reply will end it
        (30, "delivered", {"channel": "email"}),
        (2 * _H, "opened", {"channel": "email"}),
        (3 * _H, "replied", {"channel": "email", "sentiment": "positive",
                             "text": "Interested, but please text me instead of emailing."}),
        (3 * _H + 5 * _M, "preference", {"channel": "sms", "stance": "prefer"}),
        (5 * _H, "touch_request", {"channel": "auto", "campaign": "product-tour",
                                   "topic": "tour"}),
    )),
}  # fmt: skip


def _story(g: Gen, pid: str) -> None:
    """A hand-scripted prospect, anchored on a local clock time inside the window."""
    (hh, mm), steps = _SCRIPTS[pid]
    zone = STORIES[pid][0]
    anchor = g.local(zone, hh, mm, after=-steps[0][0])
    g.pid = pid
    g.begin(zone)
    for dt, kind, fields in steps:
        g.add(anchor + dt, kind, fields)


def generate(
    prospects: int,
    *,
    seed: int,
    start: datetime,
    hours: float = 24.0,
    events_per_prospect: float = 10.0,
    stories: bool = True,
    duplicate_fraction: float = 0.002,
) -> list[EventDict]:
    """`prospects` prospects' events over `hours` from `start`, sorted by ts (ties: stable).

    The story prospects (`STORIES`) count towards `prospects`. Ids are unique except for the
    `duplicate_fraction` of events redelivered right after themselves (same id, same content).
    """
    if prospects < 0 or hours <= 0 or events_per_prospect < 0:
        msg = f"simulate: bad sizes prospects={prospects} hours={hours} epp={events_per_prospect}"
        raise ValueError(msg)
    rng = random.Random(seed)
    g = Gen(rng, start, int(hours * 3600))
    collecting = gc.isenabled()
    gc.disable()  # millions of acyclic dicts: the cycle collector would rescan them for nothing
    try:
        return _generate(g, prospects, events_per_prospect, stories, duplicate_fraction)
    finally:
        if collecting:
            gc.enable()


def _generate(g: Gen, prospects: int, epp: float, stories: bool, dup: float) -> list[EventDict]:
    """The body of `generate`: every prospect, then one sort of packed (time, index) keys."""
    story_ids = list(STORIES)[:prospects] if stories else []
    per_prospect = actions(epp)
    for i in range(prospects - len(story_ids)):
        g.pid = f"p{i:06d}"
        prospect(g, prospects, per_prospect)
    for pid in story_ids:
        _story(g, pid)
    rows = g.rows
    keys = g.keys
    keys.sort()
    mask = 0xFFFFFFFF
    if dup <= 0:
        return [rows[k & mask] for k in keys]
    out: list[EventDict] = []
    append, rand = out.append, g.rand
    for k in keys:
        event = rows[k & mask]
        append(event)
        if rand() < dup and event["prospect"] not in STORIES:
            append(dict(event))
    return out


def _malformed(event: EventDict, rng: random.Random) -> bytes:
    """A broken variant of `event`, as a producer bug would send it (never decodable)."""
    bad = dict(event, id=f"{event['id']}~bad")
    kind = int(rng.random() * 5)
    if kind == 0:
        return orjson.dumps(bad)[:-9] + b"\n"  # truncated: not JSON
    if kind == 1:
        del bad["prospect"]
    elif kind == 2:
        bad["type"] = "page_visit"
    elif kind == 3:
        bad = {k: bad[k] for k in ("id", "prospect", "ts")}
        bad.update(type="opt_out", channel="fax")
    else:
        bad["ts"] = str(bad["ts"]).rstrip("Z")  # local time without an offset
    return orjson.dumps(bad, option=orjson.OPT_APPEND_NEWLINE)


def write_jsonl(
    events: Iterable[EventDict],
    path: Path | str,
    *,
    malformed_fraction: float = 0.0,
    seed: int = 0,
) -> int:
    """Write events as JSON Lines, injecting malformed lines before a random few; line count."""
    if not 0.0 <= malformed_fraction <= 1.0:
        msg = f"simulate: malformed_fraction must be in [0, 1], got {malformed_fraction}"
        raise ValueError(msg)
    rng = random.Random(seed)
    rand, dumps, newline = rng.random, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lines = 0
    chunk: list[bytes] = []
    with Path(path).open("wb") as f:
        for event in events:
            if malformed_fraction and rand() < malformed_fraction:
                chunk.append(_malformed(event, rng))
            chunk.append(dumps(event, option=newline))
            if len(chunk) >= 8192:
                f.write(b"".join(chunk))
                lines += len(chunk)
                chunk.clear()
        f.write(b"".join(chunk))
    return lines + len(chunk)
