"""Building the output records: commands with their cross-channel context, decision records.

`Recorder` is the one place records are made: every output takes the next per-prospect sequence
number, which with its time and prospect gives replay its canonical output order, and a command
is always followed by its `sent` decision record.
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
    Verdict,
)
from operators.state import ProspectState
from operators.timeutil import format_ts

# An output: (time it is about, per-prospect sequence number, record).
Out = tuple[int, int, Command | Decision]


def command_id(prospect: str, cause: str, channel: str, reason: str) -> str:
    """Deterministic id: the same cause always yields the same command id."""
    key = "\x1f".join((prospect, cause, channel, reason)).encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


class Recorder:
    """Commands and decision records out of state; `ctx_touches` bounds a command's context."""

    def __init__(self, ctx_touches: int) -> None:
        self.ctx_touches = ctx_touches

    def command(
        self,
        s: ProspectState,
        now: int,
        out: list[Out],
        *,
        channel: OutChannel,
        reason: str,
        topic: str | None,
        cause: str,
        backup: str | None = None,
        template: str | None = None,
        choice: ChannelChoice | None = None,
    ) -> str:
        """Emit a command and its `sent` decision record; the command's id."""
        cid = command_id(s.prospect, cause, channel, reason)
        command = Command(
            id=cid,
            prospect=s.prospect,
            ts=format_ts(now),
            channel=channel,
            action=ACTION_FOR_CHANNEL[channel],
            reason=reason,
            topic=topic,
            backup=backup,
            context=self.context(s, choice),
            template=template,
        )
        s.seq += 1
        out.append((now, s.seq, command))
        self.decision(s, now, out, channel, reason, "sent", command=cid, choice=choice)
        return cid

    def decision(
        self,
        s: ProspectState,
        now: int,
        out: list[Out],
        channel: OutChannel,
        reason: str,
        verdict: Verdict,
        *,
        rule: str | None = None,
        until: int | None = None,
        command: str | None = None,
        choice: ChannelChoice | None = None,
    ) -> None:
        """Emit the decision record of one consideration of a candidate touch."""
        s.seq += 1
        record = Decision(
            prospect=s.prospect,
            ts=format_ts(now),
            channel=channel,
            reason=reason,
            verdict=verdict,
            rule=rule,
            until=format_ts(until) if until is not None else None,
            command=command,
            preference=UNSET if choice is None else choice,
        )
        out.append((now, s.seq, record))

    def context(self, s: ProspectState, choice: ChannelChoice | None = None) -> Context:
        """The cross-channel memory a command carries for the message writer."""
        n = self.ctx_touches
        recent = s.touches[-n:] if s.touches and n else ()
        reply = s.last_reply
        return Context(
            touches=[RecentTouch(CHANNELS[t.channel], format_ts(t.ts), t.topic) for t in recent],
            clicks=list(s.clicks or ()),
            pages=list(s.pages or ()),
            last_reply=(
                LastReply(CHANNELS[reply.channel], format_ts(reply.ts), reply.sentiment, reply.text)
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
