"""Rule 12's pricing path, and the signals main dropped (issue 12, item 3).

`chat_started` is the prospect's own action and an answer on chat; `content_download` is
engagement on no channel; `delivered` confirms the touch of the command it names.
"""

import pytest

from operators import fatigue
from operators.actions import url_path
from operators.events import CHANNEL_INDEX
from operators.preference import NONE
from operators.records import Command
from operators.state import ProspectState
from tests.harness import T0, D, H, Prospect, request

CHAT = CHANNEL_INDEX["chat"]


@pytest.mark.parametrize(
    ("url", "invited"),
    [
        ("/pricing", True),
        ("https://x.com/pricing?a=1#f", True),
        ("/pricing/enterprise", True),
        ("/en/pricing?x=1", True),
        ("/blog?ref=/pricing", False),  # the query is not the path
        ("/blog#/pricing", False),  # nor is the fragment
        ("//pricing.example/blog", False),  # nor the host of a scheme-relative url
        ("http://[::1/pricing", True),  # a host urlsplit refuses: the path read by hand
    ],
)
def test_the_pricing_trigger_reads_the_urls_path_only(url: str, invited: bool) -> None:
    p = Prospect()
    p.ready()
    p.send("page_view", T0, url=url)
    assert [c.reason for c in p.commands] == (["trigger:pricing_page"] if invited else [])


def test_url_path() -> None:
    assert url_path("https://x.com/pricing?a=1#f") == "/pricing"
    assert url_path("/blog?ref=/pricing") == "/blog"
    assert url_path("http://[::1/pricing?x#y") == "/pricing"  # urlsplit refuses the host
    assert url_path("http://[::1") == "/"


def _score(s: ProspectState, at: int) -> float:
    return fatigue.score(s.fatigue, at, Prospect().engine.policy.fatigue)


def _tired() -> Prospect:
    """Three emails, none answered: a fatigue score to relieve."""
    p = Prospect()
    p.ready()
    for day in (0, 2, 4):
        request(p, T0 + day * D, "email", campaign=f"c{day}")
    request(p, T0 + 8 * D, "email", campaign="settle")  # the windows closed: misses counted
    return p


def test_chat_started_is_an_answer_on_chat_and_sends_nothing() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    assert request(p, T0 + D, "chat").verdict == "sent"  # a chat touch awaiting an answer
    hits = (p.state.answers or (0,) * 10)[2 * CHAT]
    assert p.send("chat_started", T0 + D + H) == []  # no trigger: rule 12 names none
    s = p.state
    assert (s.engaged_at, s.responded_at) == (T0 + D + H, T0 + D + H)
    assert (s.answers or ())[2 * CHAT] == hits + 1  # a hit for chat
    assert (s.open_touches or ())[CHAT] == NONE  # the chat touch is answered
    assert s.sequences is not None  # not a reply: the sequence goes on


def test_chat_started_relieves_fatigue() -> None:
    p = _tired()
    at = T0 + 8 * D + H
    before = _score(p.state, at)
    p.send("chat_started", at)
    assert _score(p.state, at) < before


def test_chat_started_answers_the_sms_follow_up_of_an_opened_email() -> None:
    p = Prospect()
    p.ready("sms")
    p.send("enroll", T0, sequence="basic")
    [intro] = p.commands
    p.send("opened", T0 + H, channel="email", command=intro.id)
    p.send("chat_started", T0 + 2 * H)
    p.fire(T0 + 4 * D)
    assert "escalation:sms" not in [c.reason for c in p.commands]


def test_content_download_is_engagement_without_a_channel() -> None:
    p = _tired()
    at = T0 + 8 * D + H
    before = _score(p.state, at)
    answers, track = p.state.answers, p.state.open_touches
    assert p.send("content_download", at, asset="guide") == []
    s = p.state
    assert s.engaged_at == at
    assert s.responded_at == 0  # not a response: `no_response` steps still go
    assert (s.answers, s.open_touches) == (answers, track)  # no preference evidence
    assert _score(s, at) < before


def test_content_download_keeps_the_next_emails_subject() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="basic")
    p.send("content_download", T0 + D, asset="guide")
    p.fire(T0 + 2 * D)
    second = p.commands[-1]
    assert (second.reason, second.template) == ("sequence:basic:2", None)  # engaged since


def test_delivered_confirms_a_held_touch_without_counting_it_twice() -> None:
    p = Prospect()
    p.ready()
    sent = [request(p, T0 + day * D, "email", campaign=f"c{day}") for day in (0, 2)]
    before = list(p.state.touches or ())
    for decision in sent:
        p.send("delivered", T0 + 5 * D, channel="email", command=decision.command)
    assert p.state.touches == before
    assert request(p, T0 + 5 * D, "email").verdict == "sent"  # the third of the week


def test_delivered_after_a_release_counts_the_touch_again() -> None:
    """The sender reported a failure, then the provider delivered it after all (or the sender
    fell back to the backup channel and reports only the delivery): the message went out."""
    p = Prospect()
    p.ready()
    decision = request(p, T0, "email")
    p.send("touch_failed", T0 + H, channel="email", command=decision.command)
    assert p.state.touches is None
    p.send("delivered", T0 + 2 * H, channel="linkedin", command=decision.command)
    linkedin = CHANNEL_INDEX["linkedin"]
    touches = p.state.touches
    assert touches is not None
    assert [(t.ts, t.channel) for t in touches] == [(T0 + 2 * H, linkedin)]
    held = request(p, T0 + 3 * H, "email")
    assert (held.verdict, held.rule) == ("deferred", "cap.total.day")
    p.send("touch_sent", T0 + 4 * H, channel="linkedin", command=decision.command)
    assert len(p.state.touches or ()) == 1  # a later touch_sent confirms it: still one touch


def test_delivered_without_a_command_and_is_never_a_reply() -> None:
    p = Prospect()
    p.ready()
    p.send("enroll", T0, sequence="email_first")
    before = (list(p.state.touches or ()), p.state.answers, p.state.fatigue)
    out = p.send("delivered", T0 + H, channel="email")  # counted from its own touch_sent
    out += p.send("delivered", T0 + 2 * H, channel="email", command=p.commands[0].id)
    assert out == []  # no hand-off: not a reply
    s = p.state
    assert (list(s.touches or ()), s.answers, s.fatigue) == before
    assert (s.engaged_at, s.responded_at) == (0, 0)
    assert s.sequences is not None
    assert [c.channel for c in p.commands if isinstance(c, Command)] == ["email"]
