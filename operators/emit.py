"""Building the output records: commands with their cross-channel context, decision records.

A mixin of `Engine`. Every output takes the next per-prospect sequence number, which with its
time and prospect gives replay its canonical output order.
"""

import hashlib

from operators.events import CHANNELS
from operators.records import (
    ACTION_FOR_CHANNEL,
    Command,
    Context,
    Decision,
    LastReply,
    OutChannel,
    RecentTouch,
)
from operators.state import ProspectState
from operators.timeutil import format_ts

# An output: (time it is about, per-prospect sequence number, record).
Out = tuple[int, int, Command | Decision]


def command_id(prospect: str, cause: str, channel: str, reason: str) -> str:
    """Deterministic id: the same cause always yields the same command id."""
    key = "\x1f".join((prospect, cause, channel, reason)).encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class Emitter:
    """Records out of state; the limits are set by `Engine.__init__`."""

    _ctx_touches: int

    # -- records ----------------------------------------------------------------------------------

    def _emit_command(
        self,
        s: ProspectState,
        now: int,
        channel: OutChannel,
        reason: str,
        topic: str | None,
        backup: str | None,
        cause: str,
        out: list[Out],
        template: str | None = None,
    ) -> str:
        cid = command_id(s.prospect, cause, channel, reason)
        ts = format_ts(now)
        command = Command(
            id=cid,
            prospect=s.prospect,
            ts=ts,
            channel=channel,
            action=ACTION_FOR_CHANNEL[channel],
            reason=reason,
            topic=topic,
            backup=backup,
            context=self._context(s),
            template=template,
        )
        s.seq += 1
        out.append((now, s.seq, command))
        self._emit_decision(s, now, channel, reason, "sent", out, command=cid)
        return cid

    def _emit_decision(
        self,
        s: ProspectState,
        now: int,
        channel: OutChannel,
        reason: str,
        verdict: str,
        out: list[Out],
        *,
        rule: str | None = None,
        until: int | None = None,
        command: str | None = None,
    ) -> None:
        s.seq += 1
        record = Decision(
            prospect=s.prospect,
            ts=format_ts(now),
            channel=channel,
            reason=reason,
            verdict=verdict,  # type: ignore[arg-type]
            rule=rule,
            until=format_ts(until) if until is not None else None,
            command=command,
        )
        out.append((now, s.seq, record))

    def _record(
        self,
        s: ProspectState,
        now: int,
        channel: str,
        reason: str,
        verdict: str,
        out: list[Out],
        rule: str,
        until: int | None = None,
    ) -> None:
        self._emit_decision(s, now, channel, reason, verdict, out, rule=rule, until=until)  # type: ignore[arg-type]

    def _context(self, s: ProspectState) -> Context:
        n = self._ctx_touches
        recent = s.touches[-n:] if s.touches and n else ()
        reply = s.last_reply
        return Context(
            touches=[RecentTouch(CHANNELS[t[1]], format_ts(t[0]), t[3]) for t in recent],
            clicks=list(s.clicks or ()),
            pages=list(s.pages or ()),
            last_reply=(
                LastReply(CHANNELS[reply[0]], format_ts(reply[1]), reply[2], reply[3])
                if reply is not None
                else None
            ),
        )
