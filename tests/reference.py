"""An independent, deliberately naive reference checker for the contact rules.

It re-derives, from the input events and the engine's outputs alone, whether any command broke a
cap, the 24-hour rule, quiet hours, consent, suppression, preference or a cooldown, or the order
of one instant (rule 13), with none of the engine's code: plain loops over everything, O(n^2),
easy to read.

Ordering assumption (the generator guarantees it): one prospect's events have strictly increasing
timestamps, duplicates aside. Then a fact counts for a command iff its ts is strictly earlier,
since a timer due at an event's ts fires before that event is applied.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_tz

from operators.timeutil import parse_ts

DAY = 86_400_000
WEEK_CAP = {"email": 3, "sms": 2, "phone": 1, "linkedin": 2, "chat": 2}
WEEK_TOTAL = 5
STRICT_REGIONS = {"US-FL", "US-OK", "US-MD"}
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
SEQUENCE_PRIORITY = 5  # orchestration.sequence_priority: a step's or follow-up's priority


@dataclass
class Touch:
    ts: int
    channel: str
    command: str | None  # our command id, or None for an outside touch
    released_at: int | None = None


@dataclass
class Facts:
    """Input events of one prospect, deduplicated, with ts in ms."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def before(self, t: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["_ms"] < t]


def check(
    events: list[dict[str, Any]], commands: list[dict[str, Any]], decisions: list[dict[str, Any]]
) -> list[str]:
    """Every rule violation found, as readable strings (empty means the output is sound)."""
    problems: list[str] = []
    facts: dict[str, Facts] = {}
    seen: set[tuple[str, str]] = set()
    for e in events:
        if (e["prospect"], e["id"]) in seen:
            continue  # a redelivery has no effect
        seen.add((e["prospect"], e["id"]))
        facts.setdefault(e["prospect"], Facts()).events.append({**e, "_ms": parse_ts(e["ts"])})
    ids = [c["id"] for c in commands]
    if len(ids) != len(set(ids)):
        problems.append("a command id appears twice")
    sent = {d["command"] for d in decisions if d["verdict"] == "sent"}
    for c in commands:
        if c["id"] not in sent:
            problems.append(f"command {c['id']} has no 'sent' decision")
    for prospect, f in facts.items():
        mine = [c for c in commands if c["prospect"] == prospect]
        records = [d for d in decisions if d["prospect"] == prospect]
        problems += _check_prospect(f, mine)
        problems += _check_sequences(f, mine)
        problems += _check_deferrals(records)
        problems += _check_one_instant(f, mine)
        problems += _check_priority(f, records)
    return problems


def _check_prospect(f: Facts, commands: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    touches = _touches(f, commands)
    for i, c in enumerate(commands):
        t = parse_ts(c["ts"])
        ch = c["channel"]
        prior = f.before(t)
        where = f"{c['prospect']} {ch} {c['reason']} at {c['ts']}"
        if any(e["type"] == "do_not_contact" for e in prior):
            problems.append(f"{where}: after do_not_contact")
        if any(e["type"] == "opt_out" and e["channel"] == "all" for e in prior):
            problems.append(f"{where}: after opt_out all")
        if ch == "rep":
            continue
        if _opted_out(prior, ch):
            problems.append(f"{where}: opted out")
        if any(e["type"] == "bounce" and e["channel"] == ch and e["hard"] for e in prior):
            problems.append(f"{where}: hard bounce")
        if any(e["type"] == "complaint" and e["channel"] == ch for e in prior):
            problems.append(f"{where}: complaint on channel")
        if ch in ("sms", "phone") and not _consented(prior, ch):
            problems.append(f"{where}: no consent")
        if not _preference_allows(prior, ch):
            problems.append(f"{where}: against the prospect's preference")
        if ch in ("sms", "phone") and not _inside_quiet_hours(prior, t):
            problems.append(f"{where}: in quiet hours")
        if c["reason"].startswith("request:txn"):
            continue  # transactional: no caps, no cooldowns
        if any(e["type"] == "complaint" and t - e["_ms"] < 90 * DAY for e in prior):
            problems.append(f"{where}: inside complaint cooldown")
        if any(
            e["type"] == "replied"
            and e.get("sentiment") == "negative"
            and not _is_keyword(e)
            and t - e["_ms"] < 90 * DAY
            for e in prior
        ):
            problems.append(f"{where}: inside negative-reply cooldown")
        earlier = [
            x
            for x in touches
            if (
                x.ts < t
                or (x.command is not None and x.command in _ids(commands[:i]) and x.ts == t)
            )
            and (x.released_at is None or x.released_at >= t)
            and x.command != c["id"]
        ]
        week = [x for x in earlier if x.ts > t - 7 * DAY]
        if len([x for x in week if x.channel == ch]) >= WEEK_CAP[ch]:
            problems.append(f"{where}: over the {ch} week cap")
        if len(week) >= WEEK_TOTAL:
            problems.append(f"{where}: over the total week cap")
        if not c["reason"].startswith("trigger:") and any(x.ts > t - DAY for x in earlier):
            problems.append(f"{where}: within 24 h of another touch")
    return problems


def _ids(commands: list[dict[str, Any]]) -> set[str]:
    return {c["id"] for c in commands}


def _touches(f: Facts, commands: list[dict[str, Any]]) -> list[Touch]:
    """Our reservations plus outside touches, with releases by touch_failed (rule 5).

    One command id is at most one touch: a `touch_sent` naming a command already counted (ours,
    or named by an earlier `touch_sent`) and not released confirms it.
    """
    held = {
        c["id"]: Touch(parse_ts(c["ts"]), c["channel"], c["id"])
        for c in commands
        if c["channel"] != "rep"
    }
    touches = list(held.values())
    for e in f.events:
        named = held.get(e.get("command") or "")
        live = named is not None and named.ts <= e["_ms"] and named.released_at is None
        # A `delivered` naming a command reports that touch as a `touch_sent` naming it does.
        reported = e["type"] == "touch_sent" or (e["type"] == "delivered" and e.get("command"))
        if reported and not live:
            touch = Touch(e["_ms"], e["channel"], None)
            touches.append(touch)
            if e.get("command"):
                held[e["command"]] = touch
        elif e["type"] == "touch_failed" and live:
            assert named is not None
            named.released_at = e["_ms"]
    return touches


def _is_keyword(e: dict[str, Any]) -> bool:
    text = (e.get("text") or "").strip().upper()
    return e["channel"] == "sms" and text in STOP | {"START", "UNSTOP", "YES"}


def _opted_out(prior: list[dict[str, Any]], ch: str) -> bool:
    out = False
    for e in prior:
        if e["type"] == "opt_out" and e["channel"] == ch:
            out = True
        elif ch == "sms" and e["type"] == "replied" and e["channel"] == "sms":
            text = (e.get("text") or "").strip().upper()
            if text in STOP:
                out = True
            elif text in ("START", "UNSTOP") or (text == "YES" and out):
                out = False
    return out


def _consented(prior: list[dict[str, Any]], ch: str) -> bool:
    granted = False
    for e in prior:
        if e["type"] == "consent" and e["channel"] == ch:
            granted = e["granted"]
    return granted


def _preference_allows(prior: list[dict[str, Any]], ch: str) -> bool:
    avoid: set[str] = set()
    only: str | None = None
    for e in prior:
        if e["type"] != "preference":
            continue
        c, stance = e["channel"], e["stance"]
        if stance == "avoid":
            avoid.add(c)
            only = None if only == c else only
        else:
            avoid.discard(c)
            if stance == "only":
                only = c
            elif only not in (None, c):
                only = None
    return ch not in avoid and only in (None, ch)


def _inside_quiet_hours(prior: list[dict[str, Any]], t: int) -> bool:
    tz = phone = region = None
    for e in prior:
        if e["type"] == "profile":
            tz = e.get("timezone") or tz
            phone = e.get("phone") or phone
            region = (e.get("region") or region or "").upper() or None
    if tz:
        zones = [tz]
    elif phone:
        parsed = phonenumbers.parse(phone, None)
        zones = [z for z in phone_tz.time_zones_for_number(parsed) if z != "Etc/Unknown"]
        zones = zones or ["UTC"]
    else:
        zones = ["UTC"]
    end_hour = 20 if region in STRICT_REGIONS else 21
    for name in zones:
        local = datetime.fromtimestamp(t / 1000, ZoneInfo(name))
        if not 8 <= local.hour < end_hour:
            return False
    return True


def _ends_sequences(e: dict[str, Any], name: str) -> bool:
    """Events after which no touch of sequence `name` may follow (until a new enrollment)."""
    kind = e["type"]
    if kind in ("meeting_booked", "deal_closed", "do_not_contact", "complaint"):
        return True
    if kind == "opt_out":
        return bool(e["channel"] == "all")
    if kind == "unenroll":
        return e.get("sequence") in (None, name)
    if kind == "call_outcome":
        return bool(e["outcome"] == "answered")
    if kind == "replied":
        if e.get("sentiment") == "out_of_office":
            return False
        text = (e.get("text") or "").strip().upper()
        ambiguous = e["channel"] == "sms" and text in ("START", "UNSTOP", "YES")
        return not ambiguous
    return False


def _check_sequences(f: Facts, commands: list[dict[str, Any]]) -> list[str]:
    """No sequence touch after an exit: a reply, a booking, a closed deal, a full stop."""
    problems = []
    for c in commands:
        if not c["reason"].startswith("sequence:"):
            continue
        name = c["reason"].split(":")[1]
        t = parse_ts(c["ts"])
        enrolls = [
            e["_ms"] for e in f.before(t + 1) if e["type"] == "enroll" and e["sequence"] == name
        ]
        if not enrolls:
            problems.append(f"{c['prospect']} {c['reason']} at {c['ts']}: never enrolled")
            continue
        start = max(enrolls)
        if any(start <= e["_ms"] < t and _ends_sequences(e, name) for e in f.events):
            problems.append(f"{c['prospect']} {c['reason']} at {c['ts']}: after an exit")
    return problems


def _check_deferrals(decisions: list[dict[str, Any]]) -> list[str]:
    """A deferred touch is decided again by its `until` at the latest, never silently dropped."""
    problems = []
    for i, d in enumerate(decisions):
        if d["verdict"] != "deferred":
            continue
        later = [
            x
            for x in decisions[i + 1 :]
            if x["reason"] == d["reason"] and d["ts"] <= x["ts"] <= d["until"]
        ]
        if not later:
            problems.append(
                f"{d['prospect']} {d['reason']} deferred to {d['until']}: never decided"
            )
    return problems


# -- rule 13: one instant, one decision order -------------------------------------------------


def _answers_event_at(f: Facts, t: int) -> set[str]:
    """Reasons of the candidates an input event at `t` creates and decides at once.

    An event is applied after the timers due at its time (an event at `t` never jumps ahead of
    what was due at `t`), so these are decided after the instant's due candidates, by design.
    """
    reasons: set[str] = set()
    for e in f.events:
        if e["_ms"] != t:
            continue
        kind = e["type"]
        if kind in ("form_submit", "proposal_view"):
            reasons.add(f"trigger:{kind}")
        elif kind == "page_view" and "/pricing" in urlsplit(e["url"]).path:
            reasons.add("trigger:pricing_page")
        elif kind == "touch_request" and e.get("transactional"):
            reasons.add(f"request:{e['campaign']}")
        elif kind == "enroll":
            reasons.add(f"sequence:{e['sequence']}:1")
    return reasons


def _transactional(f: Facts) -> set[str]:
    return {
        f"request:{e['campaign']}"
        for e in f.events
        if e["type"] == "touch_request" and e.get("transactional")
    }


def _exempt(reason: str, transactional: set[str]) -> bool:
    """Exempt from rule 3: answers the prospect's own action (rule 4), or transactional."""
    return reason.startswith("trigger:") or reason in transactional


def _check_one_instant(f: Facts, commands: list[dict[str, Any]]) -> list[str]:
    """No two touches in one instant unless all are exempt from rule 3 (own action: a trigger;
    or transactional), save exempt touches answering an event at that very instant.

    Rule 13 decides own-action touches, then transactional ones, then the rest, and the first of
    the rest to go takes the gap: so a touch that is not exempt shares its instant with no other
    touch, in whichever order they were decided. Read literally, "all but one exempt" would pass
    the issue's case (a campaign call, then the exempt text it should have yielded to), since
    the text is exempt; what rule 13 forbids there is the call going at all. The exception is by
    design: an event is applied after the timers due at its time, so a trigger or transactional
    request arriving at the instant a timer touch went out still answers its event.
    """
    problems: list[str] = []
    transactional = _transactional(f)
    touches = [c for c in commands if c["channel"] != "rep"]
    for c in touches:
        if _exempt(c["reason"], transactional):
            continue
        t = parse_ts(c["ts"])
        own = _answers_event_at(f, t)
        others = [
            x["reason"]
            for x in touches
            if x is not c
            and x["ts"] == c["ts"]
            and not (_exempt(x["reason"], transactional) and x["reason"] in own)
        ]
        if others:
            problems.append(
                f"{c['prospect']} {c['channel']} {c['reason']} at {c['ts']}: shares its instant "
                f"with {others} (rule 13: own-action and transactional touches first)"
            )
    return problems


def _priorities(f: Facts) -> dict[str, int | None]:
    """Each campaign's priority; None where this prospect's requests of it disagree."""
    found: dict[str, set[int]] = {}
    for e in f.events:
        if e["type"] == "touch_request" and not e.get("transactional"):
            found.setdefault(f"request:{e['campaign']}", set()).add(e.get("priority") or 0)
    return {reason: next(iter(p)) if len(p) == 1 else None for reason, p in found.items()}


def _priority(reason: str, campaigns: dict[str, int | None]) -> int | None:
    if reason.startswith(("sequence:", "escalation:")):
        return SEQUENCE_PRIORITY
    return campaigns.get(reason)  # None: not a deferrable candidate, or ambiguous


def _check_priority(f: Facts, decisions: list[dict[str, Any]]) -> list[str]:
    """No priority inversion within an instant (rule 13).

    Among the deferrable candidates (requests that are not transactional, at their campaign's
    priority; sequence steps and response follow-ups, at `SEQUENCE_PRIORITY`): once one is sent
    at an instant, no candidate of higher priority decided later in that instant is deferred or
    blocked by a cap or the gap. Being decided at that instant, it was due then (or earlier), so
    it had to be decided first, whichever of its decisions this is (a deferral does not lower a
    priority). Candidates answering an event at that instant are decided after the instant's due
    ones by design and are left out.
    """
    problems: list[str] = []
    campaigns = _priorities(f)
    for i, low in enumerate(decisions):
        low_priority = _priority(low["reason"], campaigns)
        if low["verdict"] != "sent" or low_priority is None:
            continue
        own = _answers_event_at(f, parse_ts(low["ts"]))
        for high in decisions[i + 1 :]:
            if high["ts"] != low["ts"]:
                break
            high_priority = _priority(high["reason"], campaigns)
            stopped = (high["rule"] or "").startswith("cap.") or high["rule"] == "gap"
            if (
                high["verdict"] != "sent"
                and stopped
                and high_priority is not None
                and high_priority > low_priority
                and high["reason"] not in own
            ):
                problems.append(
                    f"{low['prospect']} priority inversion at {low['ts']}: {low['reason']} "
                    f"(priority {low_priority}) sent, then {high['reason']} (priority "
                    f"{high_priority}) {high['verdict']} by {high['rule']}"
                )
    return problems
