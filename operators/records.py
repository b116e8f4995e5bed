"""Output records (CONTRACT.md sections 2 and 3): commands, decision records, dead letters.

Field order here is the JSON field order on the wire; keep it stable, since replay output must be
byte-identical run to run and external tools read these records.
"""

from typing import Final, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

OutChannel = Literal["email", "sms", "phone", "chat", "linkedin", "rep"]
Action = Literal["send", "call", "chat_invite", "handoff"]
Verdict = Literal["sent", "deferred", "blocked"]

ACTION_FOR_CHANNEL: Final[dict[str, Action]] = {
    "email": "send",
    "sms": "send",
    "linkedin": "send",
    "phone": "call",
    "chat": "chat_invite",
    "rep": "handoff",
}


class RecentTouch(Struct, frozen=True, gc=False):
    """One recent touch in a command's context, so a writer can say "following up on my email"."""

    channel: str
    ts: str
    topic: str | None


class LastReply(Struct, frozen=True, gc=False):
    channel: str
    ts: str
    sentiment: str | None
    text: str | None


class ChannelChoice(Struct, frozen=True, gc=False):
    """Why an `auto` request or `preferred` step went to (or waits for) its channel (issue 15).

    `basis`: `stance.only` / `stance.prefer` (the prospect said so), `evidence` (their own
    answers and choices put it first), `segment` (their segment's prior alone does), `fallback`
    (a better channel is held now by rule `held`); on a `preference.wait` record, `held` is the
    rule the awaited channel waits out. `estimate` is the channel's posterior answer rate,
    `prior` its segment prior, `hits` / `misses` our touches answered or not, `weight` the
    behavioural evidence in hits (fast answers, channels the prospect chose), `ranking` every
    candidate channel, best first.
    """

    basis: str
    segment: str | None
    estimate: float
    prior: float
    hits: int
    misses: int
    weight: float
    ranking: list[str]
    held: str | None = None


class Context(Struct, frozen=True, gc=False):
    """Cross-channel memory for the message writer (contract: touches, clicks, last_reply).

    `preference` is only on the commands whose channel the engine chose (`auto`, `preferred`);
    unset, it is left out of the JSON, so every other command's bytes are as before.
    """

    touches: list[RecentTouch]
    clicks: list[str]
    last_reply: LastReply | None
    pages: list[str] = []  # recent page views (an addition to the contract's minimum)
    preference: ChannelChoice | UnsetType = UNSET  # why this channel (addition, issue 15)


class Command(Struct, frozen=True, gc=False):
    """A next-touch command for a downstream sender; `id` derives from its cause."""

    id: str
    prospect: str
    ts: str
    channel: OutChannel
    action: Action
    reason: str
    topic: str | None
    backup: str | None
    context: Context
    template: str | None = None  # e.g. "new_subject": the last email went unopened (addition)


class Decision(Struct, frozen=True, gc=False):
    """The audit record every considered touch leaves: sent, deferred (until) or blocked (rule)."""

    prospect: str
    ts: str
    channel: OutChannel
    reason: str
    verdict: Verdict
    rule: str | None = None
    until: str | None = None
    command: str | None = None
    # Why the engine chose (or waits for) this channel: only on `auto`/`preferred` decisions,
    # left out of the JSON otherwise (addition, issue 15).
    preference: ChannelChoice | UnsetType = UNSET


class DeadLetter(Struct, frozen=True, gc=False):
    """Rejected input: the raw line (never lost) and the decoder's reason.

    `event` is the raw text; a line that is not UTF-8 is kept as `event_hex` instead, so it
    survives JSON. `line` is its 1-based line number in a file (null on a stream).
    """

    event: str | None
    reason: str
    line: int | None = None
    event_hex: str | None = None


def dead_letter(raw: bytes, reason: str, line: int | None = None) -> DeadLetter:
    """Build a dead letter that keeps `raw` whole, whatever its bytes."""
    try:
        return DeadLetter(event=raw.decode("utf-8"), reason=reason, line=line)
    except UnicodeDecodeError:
        return DeadLetter(event=None, reason=f"not UTF-8; {reason}", line=line, event_hex=raw.hex())


ENCODER: Final = msgspec.json.Encoder()
