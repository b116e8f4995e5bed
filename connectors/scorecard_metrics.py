"""The live scorecard as `touchflow_scorecard_*` Prometheus series, read on scrape.

The counts already live in the scorecard the flow checkpoints (CONTRACT.md section 8); the
collector asks the same provider `/scorecard.json` asks and turns its answer into gauges, so
no second set of counters runs beside the flow's, and nothing is counted twice or drifts from
`touchflow report --redis`. Gauges, not counters: a `touch_failed` takes a touch back, so a
count can go down.

Labels stay bounded: `channel` (five), `rule` and `sequence` (the policy's names), `verdict`.
Campaigns are left out: their names come from requests, without bound. No prospect id anywhere.
A provider that fails or has nothing yet leaves the scorecard series out of that scrape; the
other series of the registry are still served.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connectors.redis_client import redacted
from operators.scorecard_view import COUNT_KEYS
from operators.timeutil import parse_ts

log = logging.getLogger("touchflow")

Card = dict[str, Any]
ScorecardProvider = Callable[[], Card | None]

PREFIX: Final = "touchflow_scorecard_"
_CHANNEL_HELP: Final = {
    "touches": "Touches per channel: commands not released by a touch_failed, plus manual ones",
    "delivered": "Distinct commands per channel named by a delivered event",
    "opened": "Distinct commands per channel named by an opened event",
    "answered": "Distinct commands per channel named by an answered call_outcome",
    "replies": "Counted replies per channel (no out-of-office, no STOP/START keywords)",
    "opt_outs": "Distinct prospects who opted out of the channel",
    "conversions": "Meetings and won deals credited to the channel of the last touch",
}
_OVERALL_HELP: Final = {
    "prospects_touched": "Prospects with at least one touch",
    "prospects_replied": "Prospects with a counted reply",
    "overall_opt_outs": "Opt-outs over every channel, plus prospects who opted out of all",
    "avg_touches_to_reply": "Touches before a prospect's first reply, averaged over repliers",
    "complaints_per_1000_touches": "Complaints per 1,000 touches",
    "multichannel_reply_rate": "Reply rate of prospects touched on two or more channels",
    "single_channel_reply_rate": "Reply rate of prospects touched on exactly one channel",
}
_SEQUENCE_KEYS: Final = ("enrolled", "completed", "exited_by_reply")
_LOG_EVERY_S: Final = 60.0


class Latest:
    """A provider whose answer is shared for `max_age_s`: a scrape and a page refresh arriving
    together read Redis once, and a burst of reloads cannot turn into a burst of reads. A failed
    read is shared the same way: while Redis stalls, requests queued behind the one read in
    flight get its error instead of each waiting out a read of their own (on the thread pool
    that `/healthz` needs too)."""

    def __init__(self, provider: ScorecardProvider, max_age_s: float = 1.0) -> None:
        self._provider = provider
        self._max_age = max_age_s
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._card: Card | None = None
        self._failure: Exception | None = None

    def __call__(self) -> Card | None:
        with self._lock:  # callers wait for the one read in flight rather than start their own
            now = time.monotonic()
            if now - self._at >= self._max_age:
                try:
                    self._card, self._failure = self._provider(), None
                except Exception as exc:
                    self._card, self._failure = None, exc
                self._at = time.monotonic()
            if self._failure is not None:
                raise self._failure
            return self._card


class ScorecardCollector(Collector):
    """Calls the provider at each collection; registered on process 0's registry only."""

    def __init__(self, provider: ScorecardProvider) -> None:
        self._provider = provider
        self._logged = float("-inf")

    def describe(self) -> list[Metric]:
        """Nothing: registering must not read the scorecard (the flow may not have started)."""
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            card = self._provider()
        except Exception as exc:  # a scrape must still serve the flow's own series
            if time.monotonic() - self._logged >= _LOG_EVERY_S:
                self._logged = time.monotonic()
                log.warning("scorecard series left out of a scrape: %s", redacted(str(exc)))
            return
        if card is not None:
            yield from families(card)


def families(card: Card) -> list[Metric]:
    """The series of one scorecard (the contract's JSON object, `as_of` optional)."""
    out: list[Metric] = []
    channels: dict[str, dict[str, Any]] = card["channels"]
    for key in COUNT_KEYS:
        family = GaugeMetricFamily(PREFIX + key, _CHANNEL_HELP[key], labels=["channel"])
        for channel, row in channels.items():
            family.add_metric([channel], row[key])
        out.append(family)
    overall = {**card["overall"], "overall_opt_outs": card["overall"]["opt_outs"]}
    for key, doc in _OVERALL_HELP.items():
        if overall[key] is not None:  # null (nobody replied yet): no sample rather than a NaN
            out.append(GaugeMetricFamily(PREFIX + key, doc, value=overall[key]))
    held = GaugeMetricFamily(
        PREFIX + "held_back",
        "Decision records holding a touch back, by rule and verdict",
        labels=["rule", "verdict"],
    )
    for rule, row in card["held_back"].items():
        for verdict in ("deferred", "blocked"):
            held.add_metric([rule, verdict], row[verdict])
    out.append(held)
    for key in _SEQUENCE_KEYS:
        family = GaugeMetricFamily(
            f"{PREFIX}sequence_{key}",
            f"Sequence enrolments {key.replace('_', ' ')}",
            labels=["sequence"],
        )
        for name, row in card["sequences"].items():
            family.add_metric([name], row[key])
        out.append(family)
    as_of = card.get("as_of")
    if isinstance(as_of, str):
        out.append(
            GaugeMetricFamily(
                PREFIX + "as_of_timestamp_seconds",
                "Stream time the scorecard counts up to (its last checkpoint)",
                value=parse_ts(as_of) / 1000,
            )
        )
    return out
