"""Idle prospects leave the live worker (issue 12, item 4): which, and how the logic leaves."""

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from dataflows.live_logic import Evict, LiveProspectLogic
from operators.engine import Engine
from operators.events import decode_event
from operators.policy import load_policy
from operators.residency import Residency
from operators.state import ProspectState, encode_state
from tests.dataflows.test_live_logic import DictLoader

ENGINE = Engine(load_policy())


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 50)), max_size=40))
def test_idle_gives_exactly_the_prospects_not_seen_for_the_idle_time(
    sightings: list[tuple[str, int]],
) -> None:
    residency = Residency(idle_ms=10)
    last: dict[str, int] = {}
    now = 0
    for prospect, step in sightings:
        now += step
        residency.saw([prospect], now)
        last[prospect] = now
    gone = residency.idle(now + 5)
    assert sorted(gone) == sorted(p for p, at in last.items() if at <= now + 5 - 10)
    times = [last[p] for p in gone]
    assert times == sorted(times)  # least recently seen first
    assert residency.idle(now + 5) == []  # forgotten once given
    assert len(residency) == len(last) - len(gone)


def test_a_zero_idle_time_keeps_everyone_and_a_call_is_bounded() -> None:
    keep = Residency(idle_ms=0)
    keep.saw(["a", "b"], 0)
    assert keep.idle(10**12) == []
    some = Residency(idle_ms=1, most=3)
    some.saw([f"p{n}" for n in range(10)], 0)
    assert len(some.idle(100)) == 3
    assert len(some) == 7


class ForgettingLoader(DictLoader):
    def __init__(self, states: dict[str, bytes]) -> None:
        super().__init__(states, frozenset(states))
        self.forgotten: list[str] = []

    def forget(self, prospect: str) -> None:
        self.forgotten.append(prospect)


def _event(**doc: Any) -> Any:
    base = {"id": "e1", "type": "page_view", "prospect": "p", "ts": "2026-03-02T15:00:00Z"}
    return decode_event(msgspec.json.encode(base | {"url": "/blog"} | doc))


def test_an_eviction_alone_discards_the_prospect_and_more_input_keeps_it() -> None:
    loader = ForgettingLoader({"p": encode_state(ProspectState(prospect="p"))})
    logic = LiveProspectLogic(ENGINE, loader)
    (_fx,), verdict = logic.on_batch([(_event(), (0, b"1-0"))])
    assert verdict == logic.RETAIN
    out, verdict = logic.on_batch([(Evict("p"), None), (_event(id="e2"), (0, b"2-0"))])
    assert verdict == logic.RETAIN  # an event came with the eviction: it stays
    assert [fx.acks for fx in out] == [[(0, b"2-0")]]
    out, verdict = logic.on_batch([(Evict("p"), None)])
    assert (list(out), verdict) == ([], logic.DISCARD)
    assert loader.forgotten == ["p"]


def test_a_prospect_whose_state_is_loading_does_not_leave() -> None:
    loader = ForgettingLoader({})
    loader.prefetched = set()  # not ready: the first batch is held
    logic = LiveProspectLogic(ENGINE, loader)
    assert list(logic.on_batch([(_event(), (0, b"1-0"))])[0]) == []
    assert logic.on_batch([(Evict("p"), None)])[1] == logic.RETAIN
    assert loader.forgotten == []
