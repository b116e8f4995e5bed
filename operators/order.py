"""One instant, one decision order (contract rule 13).

When several candidate touches of a prospect are due at the same instant (deferred touches whose
quiet-hours window opens, requests whose wait or arbitration window ends, sequence steps,
response follow-ups), the order in which they are decided decides which of them goes: the first
one sent takes the day's slot and the gap, and the others meet `cap.total.day` or `gap`. So they
are decided by rank, never in queue order:

1. touches that answer the prospect's own action (`Kind.TRIGGER`, rule 4), then
2. transactional requests (`Props.TRANSACTIONAL`), then
3. the rest by priority, highest first: a request's own `priority` (a field it keeps through
   every deferral), a sequence step's or response follow-up's `orchestration.sequence_priority`,
4. then by when each was first due (`first`: a request's arrival or the close of its arbitration
   window, a step's scheduled time, a trigger's event), earliest first,
5. then by position in `pending` (the order they were scheduled in).

An arbitration window is nothing else: its requests are due at the same instant (when the window
closes) and rank by priority, then arrival, so the window needs no code of its own.
"""

from typing import Final

from operators.state_records import TRANSACTIONAL, Kind, Pending

_OWN_ACTION: Final = 0
_TRANSACTIONAL: Final = 1
_REST: Final = 2
_FOLLOW_UPS: Final = (Kind.STEP, Kind.FOLLOW_UP)


def priority(item: Pending, sequence_priority: int) -> int:
    """A candidate's priority: a request's own, a step's or follow-up's configured one."""
    if item.kind in _FOLLOW_UPS:
        return sequence_priority
    return item.priority


def rank(item: Pending, sequence_priority: int) -> tuple[int, int, int]:
    """Sort key of a pending item among those due at its instant: lower is decided first."""
    if item.kind is Kind.TRIGGER:
        group = _OWN_ACTION
    elif int(item.props) & TRANSACTIONAL:  # ints: IntFlag operators cost ~0.4 us
        group = _TRANSACTIONAL
    else:
        group = _REST
    return group, -priority(item, sequence_priority), item.first


def next_index(pending: list[Pending], sequence_priority: int) -> int:
    """Index of the item to decide next: the best-ranked of those due at the earliest instant.

    `pending` is sorted by due time, so they are the run at its head; usually a run of one.
    """
    due = pending[0].due
    if len(pending) == 1 or pending[1].due != due:
        return 0
    best, best_key = 0, rank(pending[0], sequence_priority)
    for i in range(1, len(pending)):
        item = pending[i]
        if item.due != due:
            break
        key = rank(item, sequence_priority)
        if key < best_key:  # strict: the earlier of equals keeps its turn
            best, best_key = i, key
    return best
