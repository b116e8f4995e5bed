"""The live scorecard in Redis: its counts, and each prospect's facts next to its state.

What the live flow keeps (written by `connectors.redis_sink`'s checkpoint, one Lua call per
chunk of prospects, with those prospects' states and the acknowledgements of their inputs):

- each prospect's `ProspectFacts` (MessagePack) in its state's value, after the state
  (`connectors.state_value`: one trailing extension element, which a reader that knows nothing
  of it ignores), written with every state and expiring with it. Versions before kept them in
  a key of their own, `prefix:facts:{prospect}`, which is still read for a state that holds
  none (written by such a version) until that key expires; a state written before the
  scorecard existed has neither, which reads as empty facts.
- `prefix:scorecard`: one hash of every count, a field per number (`touches:email`, `stopped`,
  `campaigns:{name}:sent`, `daily:2026-11-30:replies:sms`, ...: the tally's own field names,
  `operators.scorecard_facts.Fields`), and `as_of`, the latest stream time (ms) a checkpoint
  reached. Each chunk adds the counts of exactly its prospects with HINCRBY (zeros left out),
  so any number of workers and processes add into the same hash without
  coordination, a kill between chunks leaves each count matching the states written, and a
  reader needs one HGETALL, whatever the number of prospects (a few hundred fields, plus ten a
  day of the per-day series). Readable field names cost a few bytes per field, once.

`read_scorecard` is what `touchflow report --redis` and the page show; `prospects` streams the
rows of prospects.csv with SCAN, a batch at a time.
"""

from collections.abc import Iterable, Iterator
from typing import Any, Final

import redis

from connectors.keys import Keys
from connectors.state_value import legacy_facts, split
from operators.events import CHANNELS
from operators.policy import Policy
from operators.scorecard_facts import (
    COUNT_LISTS,
    DAILY,
    ROWS,
    SCALARS,
    Counts,
    Fields,
    ProspectFacts,
    add_fields,
    counts_from,
    day_text,
    decode_facts,
)
from operators.scorecard_view import Scorecard, scorecard
from operators.state import ProspectState, decode_state
from operators.timeutil import format_ts

AS_OF: Final = "as_of"


def count_fields(counts: Counts) -> list[bytes | str | int]:
    """The hash fields and increments of `counts`, flat (`field, n, field, n, ...`), zeros left
    out (the inverse of `counts_from`: to write counts computed elsewhere, such as a file's)."""
    out: list[bytes | str | int] = []
    for name in COUNT_LISTS:
        for i, n in enumerate(getattr(counts, name)):
            if n:
                out += (f"{name}:{CHANNELS[i]}", n)
    for name in SCALARS:
        n = getattr(counts, name)
        if n:
            out += (name, n)
    for table, columns in ROWS.items():
        for key, row in getattr(counts, table).items():
            for column, n in zip(columns, row, strict=True):
                if n:
                    out += (f"{table}:{key}:{column}", n)
    for day, row in counts.daily.items():
        text = day_text(day)
        for column, n in zip(DAILY, row, strict=True):
            if n:
                out += (f"daily:{text}:{column}", n)
    return out


def counts_args(deltas: Iterable[Fields], stream_ms: int) -> list[bytes | str | int]:
    """A checkpoint chunk's counts as the commit sink's script takes them: how many fields, the
    stream time the chunk reached, then each field and its increment (the sum of the counts of
    the chunk's prospects, and of nobody else's; zeros left out). The fields are the tally's
    own names (`operators.scorecard_facts.Fields`): nothing to translate."""
    total: Fields = {}
    for delta in deltas:
        add_fields(total, delta)
    out: list[bytes | str | int] = [0, stream_ms]
    for name, n in total.items():
        if n:
            out += (name, n)
    out[0] = len(out) // 2 - 1
    return out


def counts_of(fields: dict[bytes, bytes]) -> tuple[Counts, int]:
    """The counts and `as_of` (ms, 0 if never written) of the hash's fields; unknown fields
    (a newer version's) are left out."""
    named = {raw.decode(): int(value) for raw, value in fields.items()}
    return counts_from(named.items()), named.get(AS_OF, 0)


def read_counts(client: Any, keys: Keys) -> tuple[Counts, int] | None:
    """The live counts and `as_of`; None when no checkpoint ever wrote any."""
    fields = client.hgetall(keys.scorecard)
    return counts_of(fields) if fields else None


def read_scorecard(client: redis.Redis, keys: Keys, policy: Policy) -> Scorecard | None:
    """The live scorecard (the contract's JSON, `daily`, and `as_of`: RFC 3339, the stream time
    its counts stand at); None when the deployment has written no counts (yet). One HGETALL:
    well under a second for any number of prospects."""
    found = read_counts(client, keys)
    if found is None:
        return None
    counts, as_of = found
    card = scorecard(counts, policy.sequences)
    card[AS_OF] = format_ts(as_of) if as_of else None
    return card


def read_prospect(
    client: Any, keys: Keys, prospect: str
) -> tuple[ProspectState, ProspectFacts] | None:
    """A prospect's checkpointed state and facts (empty facts for a state written before the
    scorecard); None when Redis holds no state for it."""
    for _name, state, facts in _decoded(client, keys, [prospect], [keys.state(prospect)]):
        return state, facts
    return None


def prospects(
    client: Any, keys: Keys, *, batch: int = 1_000
) -> Iterator[tuple[str, ProspectFacts, ProspectState]]:
    """Every prospect with a checkpointed state, with its facts, a SCAN batch at a time (never
    all in memory); in SCAN's order, which is no order (sorting would need them all)."""
    head = keys.state("")
    pattern = _glob_escape(head) + "*"
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=batch)
        if found:
            names = [k.decode()[len(head) :] for k in found]
            for name, state, facts in _decoded(client, keys, names, found):
                yield name, facts, state
        if cursor == 0:
            return


def _decoded(
    client: Any, keys: Keys, names: list[str], state_keys: list[Any]
) -> Iterator[tuple[str, ProspectState, ProspectFacts]]:
    """The states of `names` (read from `state_keys`, one MGET) with their facts: from the
    state's value, else from the key a version before kept them in (a second MGET, for those
    states alone), else empty. A state gone since it was named (expired) is left out."""
    read = {
        name: split(value)
        for name, value in zip(names, client.mget(state_keys), strict=True)
        if value is not None
    }
    older = legacy_facts(read, client.mget, keys.facts)
    for name, (state, facts) in read.items():
        facts = facts if facts is not None else older.get(name)
        yield (
            name,
            decode_state(state),
            decode_facts(facts) if facts is not None else ProspectFacts(),
        )


def _glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern (a prefix may hold `*`, `?`, `[`)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


__all__ = [
    "AS_OF",
    "count_fields",
    "counts_args",
    "counts_of",
    "prospects",
    "read_counts",
    "read_prospect",
    "read_scorecard",
]
