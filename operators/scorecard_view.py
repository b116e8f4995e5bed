"""The scorecard as shown: counts into the contract's JSON shape, table rows and CSV rows. Pure.

Rates are computed here, from the integer `Counts`, and only here: unrounded fractions, None
(JSON null) when the denominator is 0. Every key is present in every row, in the contract's
table order, which is also the column order of the CSV files.
"""

from collections.abc import Iterable, Iterator
from typing import Any, Final

from operators import fatigue
from operators.events import CHANNELS
from operators.inspect_view import preferred_channel, settled
from operators.policy import Policy
from operators.scorecard_facts import (
    BLOCKED,
    COMPLETED,
    CONVERTED,
    COUNT_LISTS,
    DEFERRED,
    ENROLLED,
    EXITED_BY_REPLY,
    HELD_BLOCKED,
    HELD_DEFERRED,
    REPLIED,
    REQUESTED,
    SENT,
    Counts,
    ProspectFacts,
)
from operators.state import ProspectState
from operators.timeutil import DAY_MS, format_ts

COUNT_KEYS: Final = COUNT_LISTS  # the per-channel counts, in table order
CHANNEL_KEYS: Final = (
    *COUNT_KEYS,
    "delivery_rate",
    "open_rate",
    "answer_rate",
    "reply_rate",
    "opt_out_rate",
    "conversion_rate",
    "conversion_share",
)
OVERALL_KEYS: Final = (
    *CHANNEL_KEYS,
    "prospects_touched",
    "prospects_replied",
    "avg_touches_to_reply",
    "complaints_per_1000_touches",
    "multichannel_reply_rate",
    "single_channel_reply_rate",
)
SEQUENCE_KEYS: Final = ("enrolled", "completed", "exited_by_reply", "reply_rate")
CAMPAIGN_KEYS: Final = ("requested", "sent", "deferred", "blocked")
HELD_BACK_KEYS: Final = ("deferred", "blocked")
PROSPECT_COLUMNS: Final = (
    "prospect",
    "touches",
    *(f"touches_{c}" for c in CHANNELS),
    "first_touch",
    "last_touch",
    "replied",
    "first_reply_channel",
    "first_reply_ts",
    "converted",
    "status",
    "preferred_channel",
    "fatigue_class",
)

Row = dict[str, Any]
Scorecard = dict[str, Any]


def ratio(part: int, whole: int) -> float | None:
    """An unrounded fraction, None when the denominator is 0."""
    return part / whole if whole else None


def _rates(row: Row, total_conversions: int) -> Row:
    touches = row["touches"]
    row["delivery_rate"] = ratio(row["delivered"], touches)
    row["open_rate"] = ratio(row["opened"], row["delivered"])
    row["answer_rate"] = ratio(row["answered"], touches)
    row["reply_rate"] = ratio(row["replies"], touches)
    row["opt_out_rate"] = ratio(row["opt_outs"], touches)
    row["conversion_rate"] = ratio(row["conversions"], touches)
    row["conversion_share"] = ratio(row["conversions"], total_conversions)
    return row


def scorecard(counts: Counts, sequences: Iterable[str] = ()) -> Scorecard:
    """The contract's JSON object, plus `daily` (`daily_rows`). `sequences`: the policy's,
    listed first and always present (others that the counts hold follow, by name); campaigns
    and rules by name."""
    c = counts
    total_conversions = sum(c.conversions)
    channels = {
        name: _rates({k: getattr(c, k)[i] for k in COUNT_KEYS}, total_conversions)
        for i, name in enumerate(CHANNELS)
    }
    overall: Row = {k: sum(getattr(c, k)) for k in COUNT_KEYS}
    overall["opt_outs"] += c.stopped
    _rates(overall, total_conversions)
    overall["prospects_touched"] = c.prospects_touched
    overall["prospects_replied"] = c.prospects_replied
    overall["avg_touches_to_reply"] = ratio(c.touches_to_reply, c.prospects_replied)
    touches = overall["touches"]
    overall["complaints_per_1000_touches"] = c.complaints * 1000 / touches if touches else None
    overall["multichannel_reply_rate"] = ratio(c.multi_replied, c.multi_touched)
    overall["single_channel_reply_rate"] = ratio(c.single_replied, c.single_touched)
    named = list(dict.fromkeys(sequences))
    names = named + sorted(n for n in c.sequences if n not in named)
    return {
        "channels": channels,
        "overall": overall,
        "sequences": {n: _sequence(c.sequences.get(n)) for n in names},
        "campaigns": {
            n: {
                "requested": r[REQUESTED],
                "sent": r[SENT],
                "deferred": r[DEFERRED],
                "blocked": r[BLOCKED],
            }
            for n, r in sorted(c.campaigns.items())
        },
        "held_back": {
            rule: {"deferred": r[HELD_DEFERRED], "blocked": r[HELD_BLOCKED]}
            for rule, r in sorted(c.held_back.items())
        },
        "daily": daily_rows(c),
    }


def daily_rows(counts: Counts) -> dict[str, dict[str, dict[str, int]]]:
    """Touches and replies per UTC day and channel, for the page's plots: `{"YYYY-MM-DD":
    {"touches": {channel: n}, "replies": {channel: n}}}`, by day, every channel present; a day
    whose touches were all released since (and that has no reply) is left out."""
    n = len(CHANNELS)
    return {
        format_ts(day * DAY_MS)[:10]: {
            "touches": dict(zip(CHANNELS, row[:n], strict=True)),
            "replies": dict(zip(CHANNELS, row[n:], strict=True)),
        }
        for day, row in sorted(counts.daily.items())
        if any(row)
    }


def _sequence(row: list[int] | None) -> Row:
    enrolled, completed, exited = (
        (row[ENROLLED], row[COMPLETED], row[EXITED_BY_REPLY]) if row is not None else (0, 0, 0)
    )
    return {
        "enrolled": enrolled,
        "completed": completed,
        "exited_by_reply": exited,
        "reply_rate": ratio(exited, enrolled),
    }


# -- tables (the CSV files and the terminal tables) ---------------------------------------------

_EXTRA_OVERALL: Final = OVERALL_KEYS[len(CHANNEL_KEYS) :]
TABLES: Final[dict[str, tuple[str, ...]]] = {
    "channels": ("channel", *OVERALL_KEYS),
    "sequences": ("sequence", *SEQUENCE_KEYS),
    "campaigns": ("campaign", *CAMPAIGN_KEYS),
    "held_back": ("rule", *HELD_BACK_KEYS),
}


def table_rows(card: Scorecard, table: str) -> Iterator[list[Any]]:
    """The rows of one table, first cell the row's name. `channels` ends with an `overall` row;
    its overall-only columns are None (empty in CSV) for the channels."""
    if table == "channels":
        for name, row in card["channels"].items():
            yield [name, *(row[k] for k in CHANNEL_KEYS), *(None for _ in _EXTRA_OVERALL)]
        yield ["overall", *(card["overall"][k] for k in OVERALL_KEYS)]
        return
    keys = TABLES[table][1:]
    for name, row in card[table].items():
        yield [name, *(row[k] for k in keys)]


# -- prospects.csv -------------------------------------------------------------------------------


def status(state: ProspectState, now: int) -> str:
    """`do_not_contact`, `opted_out` (of all, or of every channel), `customer`, `cooldown` (a
    complaint, negative-reply, sequence or lost-deal cooldown running at `now`), else `active`."""
    if state.do_not_contact:
        return "do_not_contact"
    if state.opted_out_all or state.opted_out == (1 << len(CHANNELS)) - 1:
        return "opted_out"
    if state.customer:
        return "customer"
    ends = (state.complaint_until, state.negative_until, state.sequence_until)
    if max(*ends, state.deal_lost_until) > now:
        return "cooldown"
    return "active"


def prospect_row(
    prospect: str, facts: ProspectFacts, state: ProspectState | None, now: int, policy: Policy
) -> list[Any]:
    """One row of prospects.csv (`PROSPECT_COLUMNS`), as of `now`."""
    touches = facts.touches or [0] * len(CHANNELS)
    total = sum(touches)
    replied = bool(facts.flags & REPLIED)
    if state is None:
        state = ProspectState(prospect=prospect)
    return [
        prospect,
        total,
        *touches,
        format_ts(facts.first_touch) if total else None,
        format_ts(facts.last_touch) if total else None,
        replied,
        CHANNELS[facts.first_reply_channel] if replied else None,
        format_ts(facts.first_reply_ts) if replied else None,
        bool(facts.flags & CONVERTED),
        status(state, now),
        preferred_channel(state, now, policy),
        fatigue_class(state, now, policy),
    ]


def fatigue_class(state: ProspectState, now: int, policy: Policy) -> str:
    """The fatigue class at `now`, with the answer windows closed by then settled."""
    return fatigue.fatigue_class(settled(state, now, policy)[1], now, policy.fatigue)


def prospect_rows(
    items: Iterable[tuple[str, ProspectFacts, ProspectState | None]], now: int, policy: Policy
) -> Iterator[list[Any]]:
    """prospects.csv rows, one at a time (a million prospects are never all rows at once)."""
    for prospect, facts, state in items:
        yield prospect_row(prospect, facts, state, now, policy)
