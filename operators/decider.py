"""Deciding one candidate touch: send it, defer it, or block it, and leave its decision record.

`Decider` owns what a decision needs and nothing else: the compiled rules, the channel chooser
for `auto` touches, and the `Recorder` of the records. The engine's event handlers and the
sequencer hand it `Candidate`s; every consideration leaves exactly one decision record, and the
verdict comes back as the contract's `Verdict`.

Deferral policy: quiet hours always defer (the touch goes at the opening); a cap or the gap
defers a deferrable touch (anything but a trigger, whose moment passes) while the retry is
within its budget from `first` (`step_max_defer_hours` for sequence steps, `max_defer_hours`
otherwise); everything else blocks. Which rules are capacity rules the compiled `Rules` says
(`Rules.capacity`), not the rule's name.
"""

from typing import NamedTuple

from operators.compiled import Compiled
from operators.emit import Out, Recorder
from operators.events import CHANNELS
from operators.history import reserve, settle
from operators.records import ChannelChoice, Verdict
from operators.rules import QUIET_HOURS, ChannelChooser
from operators.state import ProspectState, add_pending, command_key
from operators.state_records import AUTO, HELD, Candidate, Kind, Touch, waiting, with_props


class Hold(NamedTuple):
    """What stops a candidate now: on which channel, by which rule, and until when (None: it
    does not clear by itself); `choice` says why that channel, for an `auto` touch."""

    channel: int
    rule: str
    retry: int | None
    choice: ChannelChoice | None = None


class Decider:
    """The rules applied to one candidate at a time, with the records they leave. Stateless."""

    def __init__(self, k: Compiled) -> None:
        self.k = k
        self.rules = k.rules
        self.chooser = ChannelChooser(k.rules)
        self.records = Recorder(k.ctx_touches)

    def decide(
        self,
        s: ProspectState,
        c: Candidate,
        now: int,
        out: list[Out],
        template: str | None = None,
    ) -> Verdict:
        """Send, defer or block `c` at `now`, leaving its decision record; the verdict.

        `template` asks the writer for a variant (a sequence email after an unopened one).
        """
        if s.open_touches is not None:
            settle(self.k, s, now)
        if c.channel == AUTO:
            return self._decide_auto(s, c, now, out, template)
        rule, retry = self.rules.verdict(s, c.channel, now, c.exempt)
        if rule is None:
            self.send(s, c, c.channel, now, out, template=template)
            return "sent"
        return self.hold(s, c, Hold(c.channel, rule, retry), now, out)

    def _decide_auto(
        self, s: ProspectState, c: Candidate, now: int, out: list[Out], template: str | None
    ) -> Verdict:
        """`auto`: send on the channel `ChannelChooser.pick` picks, wait for a better one
        (`preference.wait`), or hold on the one that clears soonest; each record says which
        evidence chose the channel (`ChannelChoice`)."""
        p = self.chooser.pick(s, c, now)
        if p.action == "send":
            backup = CHANNELS[p.backup] if p.backup != AUTO else None
            self.send(s, c, p.channel, now, out, backup=backup, template=template, choice=p.choice)
            return "sent"
        assert p.rule is not None
        if p.action == "wait":
            assert p.retry is not None
            add_pending(s, waiting(c, p.retry, with_props(c.props, HELD)))
            self.records.decision(
                s, now, out, CHANNELS[p.channel], c.reason, "deferred",
                rule=p.rule, until=p.retry, choice=p.choice,
            )  # fmt: skip
            return "deferred"
        return self.hold(s, c, Hold(p.channel, p.rule, p.retry, p.choice), now, out)

    def hold(self, s: ProspectState, c: Candidate, h: Hold, now: int, out: list[Out]) -> Verdict:
        """Defer `c` (quiet hours always; caps and the gap for deferrable touches) or block it.

        A deferred candidate waits on its own channel (AUTO stays AUTO: it is chosen again).
        """
        rule, retry = h.rule, h.retry
        defers = rule == QUIET_HOURS or (c.deferrable and rule in self.rules.capacity)
        budget = self.k.step_defer_ms if c.kind is Kind.STEP else self.rules.max_defer_ms
        channel = CHANNELS[h.channel]
        if retry is not None and defers and (rule == QUIET_HOURS or retry - c.first <= budget):
            add_pending(s, waiting(c, retry, with_props(c.props, HELD)))
            self.records.decision(
                s, now, out, channel, c.reason, "deferred", rule=rule, until=retry, choice=h.choice
            )
            return "deferred"
        self.records.decision(s, now, out, channel, c.reason, "blocked", rule=rule, choice=h.choice)
        return "blocked"

    def send(
        self,
        s: ProspectState,
        c: Candidate,
        ch: int,
        now: int,
        out: list[Out],
        *,
        backup: str | None = None,
        template: str | None = None,
        choice: ChannelChoice | None = None,
    ) -> None:
        """Emit the command on channel `ch` and reserve the touch at once (rule 5)."""
        cid = self.records.command(
            s, now, out, channel=CHANNELS[ch], reason=c.reason, topic=c.topic, cause=c.cause,
            backup=backup, template=template, choice=choice,
        )  # fmt: skip
        reserve(self.k, s, Touch(now, ch, command_key(cid), c.topic))
