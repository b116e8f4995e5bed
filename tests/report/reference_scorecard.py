"""A naive, independent scorecard: CONTRACT.md section 8 read literally, from events and outputs.

Deliberately simple and slow: it shares no code with `operators.scorecard`. It takes the input
events (dicts, in file order, rejected lines left out) and the replay's outputs (commands and
decision records, in the replay's canonical order), lays each prospect's history out on one time
line, walks it once, and then counts everything at the end, with full hindsight.

The time line: every record at its `ts`; at one instant, outputs before events (a timer due at an
event's time fires before the event, and no event of the generated traffic acts on the outputs it
causes itself). So this reference assumes each prospect's events come in time order, as every
generator of the tests makes them; it asserts it.

Definitions, as the contract words them (and the README's "The scorecard" explains):

- touches on c: commands on c (handoffs are not touches) not released by a `touch_failed` naming
  them, plus `touch_sent` without a command on c. A `touch_sent` naming a command with another
  channel moves that command there (the last such report wins). Callbacks name a command only
  after it was emitted (before, nothing of it is known).
- delivered / opened / answered on c: distinct commands, on their channel, named by a
  `delivered` / `opened` / `call_outcome` `answered` event.
- replies on c: `replied` events on c but `out_of_office` and sms keyword texts (STOP words;
  START words; a resume word such as YES while the prospect is opted out of sms).
- opt_outs on c: distinct prospects with an `opt_out` of c, or for sms a STOP word; overall adds
  the distinct prospects with `opt_out` all or `do_not_contact`.
- conversions: each `meeting_booked` and won `deal_closed`, credited to the channel of the
  prospect's last touch strictly before it, if less than 30 days before (exactly 30 days is out,
  as every window of the project is half-open). At one instant, a manual touch counts as after
  the commands, and commands in their output order.
- sequences: `enrolled` = enroll events that started a run (the sequence not already running,
  the prospect not a customer); `completed` = the last step's decision record (sent or blocked,
  not `sequence.ended`); `exited_by_reply` = runs ended by a counted reply. A run also ends by a
  STOP word, an opt-out of all, do-not-contact, a complaint, an answered call, a booked meeting,
  a closed deal, and `unenroll`.
- A redelivered event (an id the prospect already had) has no effect.
- daily (not in the contract's keys: the page's plots): per UTC calendar day, the touches above
  by the day of their time and the counted replies by theirs, per channel.
"""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

CHANNELS = ["email", "sms", "phone", "chat", "linkedin"]
DAY = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(text: str) -> int:
    """RFC 3339 to integer milliseconds (floored, no float on the way)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return (dt - EPOCH) // timedelta(milliseconds=1)


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


class _Prospect:
    def __init__(self) -> None:
        self.commands: dict[str, dict[str, Any]] = {}  # id -> channel, ts, order, flags
        self.manual: list[tuple[int, str, int]] = []  # (ts, channel, order)
        self.order = 0
        self.replies: list[tuple[int, str]] = []
        self.conversions: list[int] = []
        self.opted: set[str] = set()
        self.stopped = False
        self.sms_out = False
        self.customer = False
        self.running: set[str] = set()
        self.seen_ids: set[str] = set()
        self.last_ts = -1

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def touches(self) -> list[tuple[int, int, int, str]]:
        """(ts, manual?, order, channel) of every touch, with hindsight."""
        out = [
            (c["ts"], 0, c["order"], c["channel"])
            for c in self.commands.values()
            if not c["released"]
        ]
        out += [(ts, 1, order, ch) for ts, ch, order in self.manual]
        return out


def reference_scorecard(
    events: list[dict[str, Any]],
    commands: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    policy: Any,
) -> dict[str, Any]:
    stop = {w.strip().upper() for w in policy.keywords.stop}
    start = {w.strip().upper() for w in policy.keywords.start}
    resume = {w.strip().upper() for w in policy.keywords.resume_after_stop}
    steps = {name: len(d.steps) for name, d in policy.sequences.items()}

    # -- one time line per prospect --------------------------------------------------------------
    lines: dict[str, list[tuple[int, int, int, str, dict[str, Any]]]] = defaultdict(list)
    for i, c in enumerate(commands):
        lines[c["prospect"]].append((_ms(c["ts"]), 0, i, "command", c))
    for i, d in enumerate(decisions):
        lines[d["prospect"]].append((_ms(d["ts"]), 0, len(commands) + i, "decision", d))
    for i, e in enumerate(events):
        lines[e["prospect"]].append((_ms(e["ts"]), 1, i, "event", e))

    seqs = {name: {"enrolled": 0, "completed": 0, "exited_by_reply": 0} for name in steps}
    campaigns: dict[str, dict[str, int]] = defaultdict(
        lambda: {"requested": 0, "sent": 0, "deferred": 0, "blocked": 0}
    )
    held: dict[str, dict[str, int]] = defaultdict(lambda: {"deferred": 0, "blocked": 0})
    complaints = 0
    people: dict[str, _Prospect] = {}

    for prospect, line in lines.items():
        p = people[prospect] = _Prospect()
        # events keep their file order (stable sort), outputs keep the replay's order
        line.sort(key=lambda x: (x[0], x[1], x[2]))
        for ts, _rank, _i, kind, rec in line:
            if kind == "command":
                if rec["channel"] != "rep" and rec["id"] not in p.commands:
                    p.commands[rec["id"]] = {
                        "channel": rec["channel"],
                        "ts": ts,
                        "order": p.next_order(),
                        "released": False,
                        "delivered": False,
                        "opened": False,
                        "answered": False,
                    }
                continue
            if kind == "decision":
                verdict, rule, reason = rec["verdict"], rec["rule"], rec["reason"]
                if rule is not None and verdict in ("deferred", "blocked"):
                    held[rule][verdict] += 1
                if reason.startswith("request:"):
                    campaigns[reason[len("request:") :]][verdict] += 1
                if reason.startswith("sequence:") and verdict in ("sent", "blocked"):
                    _, name, number = reason.split(":")
                    last = int(number) == steps.get(name)
                    ended = rule in ("sequence.ended", "sequence.customer")
                    if last and not ended and name in p.running:
                        seqs[name]["completed"] += 1
                        p.running.discard(name)
                continue
            # an event
            assert ts >= p.last_ts, "the reference needs each prospect's events in time order"
            p.last_ts = ts
            if rec["id"] in p.seen_ids:
                continue  # redelivered: no second effect
            p.seen_ids.add(rec["id"])
            kind = rec["type"]
            command = p.commands.get(rec.get("command") or "")
            if kind == "touch_sent":
                if not rec.get("command"):
                    p.manual.append((ts, rec["channel"], p.next_order()))
                elif command is not None:
                    command["channel"] = rec["channel"]
            elif kind == "touch_failed":
                if command is not None:
                    command["released"] = True
            elif kind == "delivered":
                if command is not None:
                    command["delivered"] = True
            elif kind == "opened":
                if command is not None:
                    command["opened"] = True
            elif kind == "call_outcome":
                if rec["outcome"] == "answered":
                    if command is not None:
                        command["answered"] = True
                    p.running.clear()
            elif kind == "replied":
                text = rec.get("text")
                word = text.strip().upper() if text is not None else None
                if rec["channel"] == "sms" and word in stop:
                    p.sms_out = True
                    p.opted.add("sms")
                    p.running.clear()
                elif rec["channel"] == "sms" and (word in start or (word in resume and p.sms_out)):
                    p.sms_out = False
                elif rec.get("sentiment") != "out_of_office":
                    p.replies.append((ts, rec["channel"]))
                    for name in p.running:
                        seqs[name]["exited_by_reply"] += 1
                    p.running.clear()
            elif kind == "opt_out":
                if rec["channel"] == "all":
                    p.stopped = True
                    p.running.clear()
                else:
                    p.opted.add(rec["channel"])
                    if rec["channel"] == "sms":
                        p.sms_out = True
            elif kind == "do_not_contact":
                p.stopped = True
                p.running.clear()
            elif kind == "complaint":
                complaints += 1
                p.running.clear()
            elif kind == "meeting_booked":
                p.conversions.append(ts)
                p.running.clear()
            elif kind == "deal_closed":
                p.running.clear()
                if rec["won"]:
                    p.customer = True
                    p.conversions.append(ts)
            elif kind == "enroll":
                name = rec["sequence"]
                if name in steps and not p.customer and name not in p.running:
                    p.running.add(name)
                    seqs[name]["enrolled"] += 1
            elif kind == "unenroll":
                if rec.get("sequence") is None:
                    p.running.clear()
                else:
                    p.running.discard(rec["sequence"])
            elif kind == "touch_request":
                campaigns[rec["campaign"]]["requested"] += 1

    # -- counting, with hindsight ------------------------------------------------------------------
    per = {c: dict.fromkeys(("touches", "delivered", "opened", "answered"), 0) for c in CHANNELS}
    for c in CHANNELS:
        per[c].update(replies=0, opt_outs=0, conversions=0)
    stopped = touched = replied = to_reply = 0
    multi = multi_replied = single = single_replied = 0
    days: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"touches": dict.fromkeys(CHANNELS, 0), "replies": dict.fromkeys(CHANNELS, 0)}
    )
    for p in people.values():
        touches = p.touches()
        for ts, _m, _o, ch in touches:
            per[ch]["touches"] += 1
            days[_day(ts)]["touches"][ch] += 1
        for ts, ch in p.replies:
            days[_day(ts)]["replies"][ch] += 1
        for cmd in p.commands.values():
            for flag in ("delivered", "opened", "answered"):
                if cmd[flag]:
                    per[cmd["channel"]][flag] += 1
        for _ts, ch in p.replies:
            per[ch]["replies"] += 1
        for ch in p.opted:
            per[ch]["opt_outs"] += 1
        stopped += p.stopped
        for conv in p.conversions:
            before = [t for t in touches if t[0] < conv]
            if before:
                last = max(before)
                if conv - last[0] < 30 * DAY:
                    per[last[3]]["conversions"] += 1
        channels = {t[3] for t in touches}
        touched += bool(touches)
        if p.replies:
            replied += 1
            first = min(p.replies, key=lambda r: r[0])[0]
            to_reply += sum(1 for t in touches if t[0] < first)
        if len(channels) >= 2:
            multi += 1
            multi_replied += bool(p.replies)
        elif len(channels) == 1:
            single += 1
            single_replied += bool(p.replies)

    total_conversions = sum(per[c]["conversions"] for c in CHANNELS)

    def rates(row: dict[str, Any]) -> dict[str, Any]:
        t = row["touches"]
        row["delivery_rate"] = _div(row["delivered"], t)
        row["open_rate"] = _div(row["opened"], row["delivered"])
        row["answer_rate"] = _div(row["answered"], t)
        row["reply_rate"] = _div(row["replies"], t)
        row["opt_out_rate"] = _div(row["opt_outs"], t)
        row["conversion_rate"] = _div(row["conversions"], t)
        row["conversion_share"] = _div(row["conversions"], total_conversions)
        return row

    channels_out = {c: rates(dict(per[c])) for c in CHANNELS}
    keys = ("touches", "delivered", "opened", "answered", "replies", "opt_outs", "conversions")
    overall = {k: sum(per[c][k] for c in CHANNELS) for k in keys}
    overall["opt_outs"] += stopped
    rates(overall)
    overall["prospects_touched"] = touched
    overall["prospects_replied"] = replied
    overall["avg_touches_to_reply"] = _div(to_reply, replied)
    overall["complaints_per_1000_touches"] = _div(complaints * 1000, overall["touches"])
    overall["multichannel_reply_rate"] = _div(multi_replied, multi)
    overall["single_channel_reply_rate"] = _div(single_replied, single)
    return {
        "channels": channels_out,
        "overall": overall,
        "sequences": {
            n: {**s, "reply_rate": _div(s["exited_by_reply"], s["enrolled"])}
            for n, s in seqs.items()
        },
        "campaigns": dict(campaigns),
        "held_back": dict(held),
        "daily": {day: days[day] for day in sorted(days)},
    }


def _day(ms: int) -> str:
    """The UTC calendar day of an instant, through datetime (not integer division)."""
    return (EPOCH + timedelta(milliseconds=ms)).date().isoformat()
