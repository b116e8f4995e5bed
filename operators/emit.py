"""Building the output records: commands with their cross-channel context, decision records.

A mixin of `Engine`. Every output takes the next per-prospect sequence number, which with its
time and prospect gives replay its canonical output order.
"""

import hashlib
from collections.abc import Sequence

from msgspec import UNSET

from operators.events import CHANNELS
from operators.preference import PreferenceConfig, Stats, estimate, evidence, priors_for
from operators.records import (
    ACTION_FOR_CHANNEL,
    ChannelChoice,
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
        choice: ChannelChoice | None = None,
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
            context=self._context(s, choice),
            template=template,
        )
        s.seq += 1
        out.append((now, s.seq, command))
        self._emit_decision(s, now, channel, reason, "sent", out, command=cid, choice=choice)
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
        choice: ChannelChoice | None = None,
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
            preference=UNSET if choice is None else choice,
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

    def _context(self, s: ProspectState, choice: ChannelChoice | None = None) -> Context:
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
            preference=UNSET if choice is None else choice,
        )


def channel_choice(
    stats: Stats | None,
    segment: str | None,
    cfg: PreferenceConfig,
    *,
    ranking: Sequence[int],
    prior_ranking: Sequence[int],
    channel: int,
    stance: str | None,
    held: str | None,
) -> ChannelChoice:
    """Why a touch goes to (or waits for) `channel`, for the rep and the audit (issue 15).

    `ranking` is the channel order the engine used (learned, under the stances), `prior_ranking`
    the one the segment's priors alone give (under the same stances). The basis is the stance
    (`stance.only`, `stance.prefer`) if one decided; `fallback` when a better channel is held
    now (`held` names its rule); `segment` when the priors alone rank it first; else `evidence`:
    the prospect's own answers and choices moved it to the top.
    """
    if stance is not None:
        basis = stance
    elif ranking and ranking[0] != channel:
        basis = "fallback"
    elif prior_ranking and prior_ranking[0] == channel:
        basis = "segment"
    else:
        basis = "evidence"
    e = evidence(stats, channel)
    return ChannelChoice(
        basis=basis,
        segment=segment,
        estimate=round(estimate(stats, channel, segment, cfg), 4),
        prior=priors_for(segment, cfg)[channel],
        hits=e.hits,
        misses=e.misses,
        weight=e.weight,
        ranking=[CHANNELS[c] for c in ranking],
        held=held,
    )
