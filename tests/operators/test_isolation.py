"""Per-event isolation: an event or timer that raises costs itself alone (issue 10, item 1).

The failures are real exceptions from a real engine: a subclass whose handler for one event
raises part-way through changing the state, as a bug in a rule would.
"""

from typing import Any

from operators import actions
from operators import events as ev
from operators.decider import Decider
from operators.emit import Out
from operators.engine import Engine
from operators.isolation import apply_isolated, fire_due_isolated
from operators.parts import Parts
from operators.policy import Policy, load_policy
from operators.records import Command, DeadLetter, Verdict
from operators.state import ProspectState, encode_state
from operators.state_records import Candidate
from tests.harness import T0, H, event, immediate


class FaultyEngine(Engine):
    """Raises on a `form_submit` whose form is "boom", after changing the state."""

    def __init__(self) -> None:
        super().__init__(immediate(load_policy()))
        self._handlers[ev.FormSubmit] = self._faulty_form

    def _faulty_form(self, p: Parts, s: ProspectState, e: Any, ts: int, out: list[Out]) -> None:
        actions.form_submit(p, s, e, ts, out)  # sends, reserves touches, then ...
        if e.form == "boom":
            s.opted_out_all = True
            msg = "maximum recursion depth exceeded"
            raise RecursionError(msg)


def run(engine: Engine, state: ProspectState, *events: Any) -> tuple[list[Any], list[DeadLetter]]:
    out: list[Any] = []
    dead: list[DeadLetter] = []
    for e in events:
        apply_isolated(engine, state, e, out, dead)
    return [o[2] for o in out], dead


def test_a_raising_event_leaves_the_state_as_before_and_is_dead_lettered() -> None:
    engine = FaultyEngine()
    state = ProspectState(prospect="p")
    run(engine, state, event("page_view", T0 - H, url="/blog"))
    before = encode_state(state)
    records, dead = run(engine, state, event("form_submit", T0, id="bad", form="boom"))
    assert records == []  # the outputs it made before raising are withdrawn
    assert encode_state(state) == before
    (letter,) = dead
    assert "RecursionError" in letter.reason
    assert '"id":"bad"' in (letter.event or "")
    # The flow goes on: the next event of the prospect is decided on the untouched state.
    records, dead = run(engine, state, event("form_submit", T0 + H, form="ok"))
    assert dead == []
    assert [r.channel for r in records if isinstance(r, Command)] == ["email"]


def test_a_failed_event_is_not_remembered_so_a_redelivery_fails_again() -> None:
    engine = FaultyEngine()
    state = ProspectState(prospect="p")
    bad = event("form_submit", T0, id="bad", form="boom")
    assert len(run(engine, state, bad)[1]) == 1
    assert len(run(engine, state, bad)[1]) == 1  # its dead letter is written again


def test_without_faults_isolation_changes_nothing() -> None:
    plain, isolated = Engine(load_policy()), Engine(load_policy())
    a, b = ProspectState(prospect="p"), ProspectState(prospect="p")
    docs = [
        event("profile", T0 - 40 * H, timezone="Europe/Paris"),
        event("consent", T0 - 40 * H, channel="sms", granted=True),
        event("touch_request", T0, channel="auto", campaign="c", priority=3),
        event("proposal_view", T0 + 30_000),
        event("touch_request", T0 + 50 * H, channel="email", campaign="d"),
    ]
    expected = [o for d in docs for o in plain.apply(a, d)]
    fire: list[Any] = []
    plain.fire_due(a, T0 + 200 * H, fire)
    out: list[Any] = []
    dead: list[DeadLetter] = []
    for d in docs:
        apply_isolated(isolated, b, d, out, dead)
    fire_due_isolated(isolated, b, T0 + 200 * H, out, dead)
    assert out == expected + fire
    assert dead == []
    assert encode_state(a) == encode_state(b)


class FaultyTimerDecider(Decider):
    """The decision of every deferred request of campaign "boom" raises."""

    calls = 0

    def decide(
        self,
        s: ProspectState,
        c: Candidate,
        now: int,
        out: list[Out],
        template: str | None = None,
    ) -> Verdict:
        if c.reason == "request:boom" and s.clock >= T0 + 30_000:
            FaultyTimerDecider.calls += 1
            msg = "date value out of range"
            raise OverflowError(msg)
        return super().decide(s, c, now, out, template)


class FaultyTimerEngine(Engine):
    def __init__(self, policy: Policy) -> None:
        super().__init__(policy, decider=FaultyTimerDecider)


def test_a_raising_timer_is_dropped_with_a_record_not_retried_at_every_event() -> None:
    engine = FaultyTimerEngine(load_policy())  # with its 60 s arbitration window
    state = ProspectState(prospect="p")
    FaultyTimerDecider.calls = 0
    _, dead = run(engine, state, event("touch_request", T0, channel="email", campaign="boom"))
    assert dead == []
    assert state.pending
    _, dead = run(engine, state, event("page_view", T0 + 2 * 60_000, url="/blog"))
    calls = FaultyTimerDecider.calls  # the whole event, then its timers one by one
    _, later = run(
        engine,
        state,
        event("page_view", T0 + 3 * 60_000, url="/blog"),
        event("touch_request", T0 + 4 * 60_000, channel="email", campaign="fine"),
    )
    assert FaultyTimerDecider.calls == calls  # dropped: not tried again at later events
    assert later == []
    (letter,) = dead
    assert "timer raised OverflowError" in letter.reason
    assert '"reason":"request:boom"' in (letter.event or "")
    assert state.pending is not None  # the later request waits in its own window
    fire: list[Any] = []
    dead2: list[DeadLetter] = []
    fire_due_isolated(engine, state, T0 + 10 * 60_000, fire, dead2)
    assert dead2 == []
    assert [r.reason for _t, _s, r in fire if isinstance(r, Command)] == ["request:fine"]
