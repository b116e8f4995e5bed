"""What events tell about the prospect: facts, engagement, reservations, learning.

A mixin of `Engine`: each handler updates the prospect's state for one event type; the ones that
end sequences or relieve fatigue call into the sequencer and the fatigue model. Split from the
engine so that each module stays readable; the attributes it uses are set by `Engine.__init__`.
"""

import bisect
from sys import intern

from operators import events as ev
from operators import fatigue, preference
from operators.emit import Out
from operators.events import CHANNEL_INDEX
from operators.fatigue import FatigueConfig
from operators.preference import PreferenceConfig
from operators.rules import Rules
from operators.sequences import Sequencer
from operators.state import AUTO, ProspectState, command_key
from operators.timeutil import HOUR_MS


class FactHandlers:
    """Event handlers that change what we know, not whom we contact."""

    rules: Rules
    sequencer: Sequencer
    _pref: PreferenceConfig
    _fatigue: FatigueConfig
    _ctx_clicks: int
    _deal_lost_ms: int

    # -- facts about the prospect ---------------------------------------------------------------

    def _profile(self, s: ProspectState, e: ev.Profile, ts: int, now: int, out: list[Out]) -> None:
        # Interned: the same few zones, regions and segments recur across millions of prospects.
        if e.timezone is not None:
            s.timezone = intern(e.timezone)
        if e.phone is not None:
            s.phone = e.phone
        if e.region is not None:
            s.region = intern(e.region.upper())
        if e.segment is not None:
            s.segment = intern(e.segment)

    def _consent(self, s: ProspectState, e: ev.Consent, ts: int, now: int, out: list[Out]) -> None:
        bit = 1 << CHANNEL_INDEX[e.channel]
        s.consent = s.consent | bit if e.granted else s.consent & ~bit

    def _opt_out(self, s: ProspectState, e: ev.OptOut, ts: int, now: int, out: list[Out]) -> None:
        s.fatigue = fatigue.on_opt_out(s.fatigue, now, self._fatigue)
        if e.channel == "all":
            s.opted_out_all = True
            self.sequencer.exit_all(s, now, out)
        else:
            s.opted_out |= 1 << CHANNEL_INDEX[e.channel]

    def _do_not_contact(
        self, s: ProspectState, e: ev.DoNotContact, ts: int, now: int, out: list[Out]
    ) -> None:
        s.do_not_contact = True
        self.sequencer.exit_all(s, now, out)

    def _bounce(self, s: ProspectState, e: ev.Bounce, ts: int, now: int, out: list[Out]) -> None:
        if e.hard:
            s.bounced |= 1 << CHANNEL_INDEX[e.channel]

    def _complaint(
        self, s: ProspectState, e: ev.Complaint, ts: int, now: int, out: list[Out]
    ) -> None:
        s.complained |= 1 << CHANNEL_INDEX[e.channel]
        s.complaint_until = max(s.complaint_until, now + self.rules.complaint_ms)
        s.fatigue = fatigue.on_complaint(s.fatigue, now, self._fatigue)
        self.sequencer.exit_all(s, now, out)

    def _preference(
        self, s: ProspectState, e: ev.Preference, ts: int, now: int, out: list[Out]
    ) -> None:
        ch = CHANNEL_INDEX[e.channel]
        if e.stance == "avoid":
            s.avoid |= 1 << ch
            s.only = AUTO if s.only == ch else s.only
            s.prefer = AUTO if s.prefer == ch else s.prefer
        else:
            s.avoid &= ~(1 << ch)
            if e.stance == "only":
                s.only = ch
            else:
                s.prefer = ch
                s.only = AUTO if s.only not in (AUTO, ch) else s.only

    def _clicked(self, s: ProspectState, e: ev.Clicked, ts: int, now: int, out: list[Out]) -> None:
        s.engaged_at = max(s.engaged_at, ts)
        s.responded_at = max(s.responded_at, ts)
        self._answered(s, CHANNEL_INDEX[e.channel], ts)
        self.sequencer.responded(s)
        if e.url is not None and self._ctx_clicks:
            clicks = s.clicks or []
            clicks.append(e.url)
            s.clicks = clicks[-self._ctx_clicks :]

    # -- engagement signals ---------------------------------------------------------------------

    def _chat_started(
        self, s: ProspectState, e: ev.ChatStarted, ts: int, now: int, out: list[Out]
    ) -> None:
        """The prospect opened a chat: their own action, and an answer on chat.

        As a click is: engagement and response (step conditions, the sms follow-up of an opened
        email is not sent), a hit for chat in the learned preference (a chat touch awaiting an
        answer is credited; with none, the prospect chose chat: `chosen_weight`) and fatigue
        relief. It sends nothing: rule 12 names no trigger for
        it (rule 4 only makes a touch answering it exempt from rule 3), and it ends no
        sequence (rule 10: a reply does; the chat's first message arrives as `replied` chat).
        """
        s.engaged_at = max(s.engaged_at, ts)
        s.responded_at = max(s.responded_at, ts)
        self._answered(s, _CHAT, ts, chosen=True)
        self.sequencer.responded(s)

    def _content_download(
        self, s: ProspectState, e: ev.ContentDownload, ts: int, now: int, out: list[Out]
    ) -> None:
        """The prospect downloaded an asset: engagement on no channel.

        `engaged_at` (step conditions `engaged`, `no_engagement`; the next sequence email keeps
        its subject) and fatigue relief. Not a response (`no_response` steps still go) and no
        preference evidence: no touch of ours on any channel was answered.
        """
        s.engaged_at = max(s.engaged_at, ts)
        s.fatigue = fatigue.on_engagement(s.fatigue, ts, self._fatigue)

    def _delivered(
        self, s: ProspectState, e: ev.Delivered, ts: int, now: int, out: list[Out]
    ) -> None:
        """A provider confirmed delivery: a fact about our touch, not an answer from the prospect.

        Naming a command, it confirms that command's touch as a `touch_sent` naming it does
        (rule 5): a held reservation is counted already and stays one touch; a reservation
        released by `touch_failed` (or one we never held) went out after all, so it counts as a
        touch at the delivery's time on its channel. A later `touch_sent` naming the same
        command then confirms it. Without a command it changes nothing: a message we did not
        command is counted from its own `touch_sent` (the gateway emits one beside the
        `delivered`), and counting the delivery too would count it twice. Never a reply, no
        preference evidence, no fatigue relief (a delivery says nothing of the prospect).
        """
        if e.command:
            self._count_touch(s, CHANNEL_INDEX[e.channel], command_key(e.command), None, ts, now)

    # -- reservations (rule 5) ------------------------------------------------------------------

    def _touch_sent(
        self, s: ProspectState, e: ev.TouchSent, ts: int, now: int, out: list[Out]
    ) -> None:
        key = command_key(e.command) if e.command else 0
        self._count_touch(s, CHANNEL_INDEX[e.channel], key, e.topic, ts, now)

    def _count_touch(
        self, s: ProspectState, ch: int, key: int, topic: str | None, ts: int, now: int
    ) -> None:
        """A touch reported at `ts`: counted once per command key (0: no command, always new)."""
        touches = s.touches or []
        if key and any(t[2] == key for t in touches):
            return  # confirms our own reservation: already counted
        bisect.insort(touches, (ts, ch, key, topic), key=_touch_ts)
        s.touches = touches
        self._prune(s, now)

    def _touch_failed(
        self, s: ProspectState, e: ev.TouchFailed, ts: int, now: int, out: list[Out]
    ) -> None:
        key = command_key(e.command)
        if s.touches:
            s.touches = [t for t in s.touches if t[2] != key] or None

    def _prune(self, s: ProspectState, now: int) -> None:
        touches = s.touches
        if touches and touches[0][0] <= now - self.rules.horizon_ms:
            since = now - self.rules.horizon_ms
            s.touches = [t for t in touches if t[0] > since] or None

    def _opened(self, s: ProspectState, e: ev.Opened, ts: int, now: int, out: list[Out]) -> None:
        s.engaged_at = max(s.engaged_at, ts)
        self._answered(s, CHANNEL_INDEX[e.channel], ts)

    def _call_outcome(
        self, s: ProspectState, e: ev.CallOutcome, ts: int, now: int, out: list[Out]
    ) -> None:
        if e.outcome == "answered":
            s.engaged_at = max(s.engaged_at, ts)
            s.responded_at = max(s.responded_at, ts)
            self._answered(s, CHANNEL_INDEX["phone"], ts)
            self.sequencer.exit_all(s, now, out)  # a conversation happened: sequences end

    def _unenroll(
        self, s: ProspectState, e: ev.Unenroll, ts: int, now: int, out: list[Out]
    ) -> None:
        self.sequencer.unenroll(s, e.sequence, now, out)

    def _meeting_booked(
        self, s: ProspectState, e: ev.MeetingBooked, ts: int, now: int, out: list[Out]
    ) -> None:
        s.booked_at = max(s.booked_at, ts)
        self.sequencer.exit_all(s, now, out)

    def _deal_closed(
        self, s: ProspectState, e: ev.DealClosed, ts: int, now: int, out: list[Out]
    ) -> None:
        self.sequencer.exit_all(s, now, out)
        if e.won:
            s.customer = True
        else:
            s.deal_lost_until = max(s.deal_lost_until, now + self._deal_lost_ms)

    # -- learning from answers ------------------------------------------------------------------

    def _answered(self, s: ProspectState, ch: int, ts: int, *, chosen: bool = False) -> None:
        """An open, click, reply or answered call: credit the open touch, relieve fatigue.

        `chosen`: the prospect picked the channel themselves (a reply, a chat they opened), so
        with no touch of ours open there it is still evidence for it (issue 15).
        """
        tracked = preference.track_response(
            s.open_touches, s.answers, ch, ts, self._pref, chosen=chosen
        )
        self._learned(s, tracked)
        s.fatigue = fatigue.on_engagement(s.fatigue, ts, self._fatigue)

    def _settle(self, s: ProspectState, now: int) -> None:
        """Touches whose answer window closed unanswered become misses (and raise fatigue)."""
        track = s.open_touches
        if track is None:
            return
        cutoff = now - self._pref.response_window_hours * HOUR_MS
        if all(t == preference.NONE or t > cutoff for t in track[:-1]):
            return  # no window has closed: the common case, without rebuilding the tuples
        self._learned(s, preference.settle(track, s.answers, now, self._pref))

    def _learned(self, s: ProspectState, tracked: preference.Attribution) -> None:
        s.open_touches, s.answers = tracked.track, tracked.stats
        for ch, at, declining in tracked.misses:
            s.fatigue = fatigue.on_unanswered_touch(
                s.fatigue, ch, at, self._fatigue, declining=declining
            )


def _touch_ts(t: tuple[int, int, int, str | None]) -> int:
    return t[0]


_CHAT = CHANNEL_INDEX["chat"]
