"""The policy compiled once for the engine: every duration in ms, every channel an index.

One frozen object instead of copies of policy values spread over the engine's attributes: the
fact handlers, the decider and the sequencer all read the same `Compiled`, so a value is
converted (hours to ms, names to channel indices, keywords upper-cased) in exactly one place.
`Rules` compiles the caps, gap and quiet hours for its hot path in the same spirit and is part
of it.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from operators.events import CHANNEL_INDEX
from operators.fatigue import FatigueConfig
from operators.policy import Policy, SequenceDef
from operators.preference import PreferenceConfig
from operators.rules import Rules
from operators.timeutil import DAY_MS, HOUR_MS, SECOND_MS

FORM, PRICING, PROPOSAL = 0, 1, 2  # trigger kinds: indices of `triggers` and `state.triggered`
TRIGGER_REASONS: Final = ("trigger:form_submit", "trigger:pricing_page", "trigger:proposal_view")


@dataclass(frozen=True, slots=True)
class Compiled:
    """The policy as the engine uses it. Immutable; built by `compile_policy`."""

    policy: Policy
    rules: Rules
    # limits
    dedupe: int  # event ids remembered per prospect
    ctx_touches: int
    ctx_clicks: int
    ctx_pages: int
    reply_chars: int
    # sms keywords, trimmed and upper-cased
    stop: frozenset[str]
    start: frozenset[str]
    resume: frozenset[str]  # lift an sms opt-out only after one (YES)
    # triggers: channel indices per trigger kind (FORM, PRICING, PROPOSAL)
    triggers: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    pricing_path: str
    throttle_ms: int
    # requests and orchestration
    arbitration_ms: int
    step_defer_ms: int
    open_watch_ms: int  # an opened sequence email, no click: the sms follow-up is due then
    click_watch_ms: int  # a clicked sequence email, no reply: the call is due then
    sequence_priority: int
    deal_lost_ms: int
    pause_ms: int  # out of office (rule 14)
    sequence_cooldown_ms: int
    sequences: dict[str, SequenceDef]
    step_reasons: dict[str, tuple[str, ...]]  # per sequence: each step's reason, built once
    preference: PreferenceConfig
    fatigue: FatigueConfig


def step_reason(name: str, index: int) -> str:
    """The contract's reason of a sequence step (`sequence:<name>:<n>`, counted from 1)."""
    return f"sequence:{name}:{index + 1}"


def _words(words: list[str]) -> frozenset[str]:
    return frozenset(w.strip().upper() for w in words)


def _channels(names: Sequence[str]) -> tuple[int, ...]:
    return tuple(CHANNEL_INDEX[c] for c in names)


def compile_policy(policy: Policy) -> Compiled:
    """Compile `policy`; raises nothing a validated `Policy` can hold."""
    lim, kw, trig, orch = policy.limits, policy.keywords, policy.triggers, policy.orchestration
    sequences = dict(policy.sequences)
    return Compiled(
        policy=policy,
        rules=Rules(policy),
        dedupe=lim.dedupe_ids,
        ctx_touches=lim.context_touches,
        ctx_clicks=lim.context_clicks,
        ctx_pages=lim.context_pages,
        reply_chars=lim.reply_text_chars,
        stop=_words(kw.stop),
        start=_words(kw.start),
        resume=_words(kw.resume_after_stop),
        triggers=(
            _channels(trig.form_submit),
            _channels(trig.pricing_page),
            _channels(trig.proposal_view),
        ),
        pricing_path=trig.pricing_path,
        throttle_ms=orch.trigger_throttle_hours * HOUR_MS,
        arbitration_ms=policy.requests.arbitration_seconds * SECOND_MS,
        step_defer_ms=orch.step_max_defer_hours * HOUR_MS,
        open_watch_ms=orch.opened_no_click_hours * HOUR_MS,
        click_watch_ms=orch.clicked_no_reply_hours * HOUR_MS,
        sequence_priority=orch.sequence_priority,
        deal_lost_ms=orch.deal_lost_cooldown_days * DAY_MS,
        pause_ms=orch.out_of_office_pause_days * DAY_MS,
        sequence_cooldown_ms=policy.cooldowns.sequence_days * DAY_MS,
        sequences=sequences,
        step_reasons={
            name: tuple(step_reason(name, i) for i in range(len(d.steps)))
            for name, d in sequences.items()
        },
        preference=policy.preference,
        fatigue=policy.fatigue,
    )
