"""The last decisions `touchflow inspect` shows: kept in the facts, bounded, the replay's own."""

from pathlib import Path

from operators.scorecard_facts import LAST_DECISIONS
from operators.timeutil import parse_ts
from tests.report.helpers import card_of, closed_loop, engine_outputs, write_events


def test_each_prospect_keeps_its_last_decision_records(tmp_path: Path) -> None:
    events = closed_loop(40, seed=5)
    until = max(parse_ts(e["ts"]) for e in events)
    _card, lane = card_of(write_events(tmp_path / "e.jsonl", events), until=until)
    _commands, decisions = engine_outputs(events, until)
    # What the facts keep of a record: all but the command id (and any explanation a newer
    # record carries: the compact record names the rule, the reason and the times).
    kept_keys = ("prospect", "ts", "channel", "reason", "verdict", "rule", "until")
    by_prospect: dict[str, list[dict[str, object]]] = {}
    for d in decisions:
        by_prospect.setdefault(str(d["prospect"]), []).append({k: d[k] for k in kept_keys})
    assert max(len(v) for v in by_prospect.values()) > LAST_DECISIONS, "the bound is exercised"
    for prospect, facts in lane.facts.items():
        kept = [r.record(prospect) for r in facts.decisions or ()]
        assert kept == by_prospect.get(prospect, [])[-LAST_DECISIONS:], prospect
