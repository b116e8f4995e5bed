"""Prometheus metrics of live mode (served by `connectors/web.py`). No prospect id in any label.

Label values are bounded: reasons keep their trigger or sequence name but campaign requests are
folded to `request` (campaign names are unbounded), rules are the policy's rule names.
"""

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors.health import HEALTH, Health
from operators.records import Command

_LATENCY_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def reason_label(reason: str) -> str:
    """A bounded label for a reason: `request:<campaign>` becomes `request`."""
    return "request" if reason.startswith("request:") else reason


class _Children:
    """A labelled metric's children, cached by label values: `labels()` costs microseconds, and
    the hot path asks for the same few children thousands of times a second."""

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    """All live-mode metrics on one registry (a fresh one per instance, so tests stay apart)."""

    def __init__(self, registry: CollectorRegistry | None = None, health: Health = HEALTH) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.refusing = Gauge(
            "touchflow_redis_refusing",
            "1 while a write of this process waits because Redis refuses it (OOM, READONLY...)",
            registry=r,
        )
        self.refusing.set_function(lambda: 1.0 if health.refusing() else 0.0)
        self._problem: Callable[[], str | None] = health.problem
        self.healthy = Gauge(
            "touchflow_healthy",
            "1 while this process does its work (/healthz answers 200), else 0; read on scrape",
            registry=r,
        )
        self.healthy.set_function(self._healthy)
        self.events = Counter("touchflow_events", "Events applied, by type", ["type"], registry=r)
        self.commands = Counter(
            "touchflow_commands",
            "Commands emitted, by channel and reason",
            ["channel", "reason"],
            registry=r,
        )
        self.decisions = Counter(
            "touchflow_decisions",
            "Decision records, by verdict and rule",
            ["verdict", "rule"],
            registry=r,
        )
        self.events_of, self.commands_of = _Children(self.events), _Children(self.commands)
        self.decisions_of = _Children(self.decisions)
        self.dead = Counter("touchflow_dead_letters", "Inputs rejected to dead letters", registry=r)
        self.latency = Histogram(
            "touchflow_trigger_to_command_seconds",
            "From an input entering its stream to its commands being written",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "touchflow_checkpoint_seconds",
            "Duration of one checkpoint transaction",
            registry=r,
        )
        self.checkpoint_states = Histogram(
            "touchflow_checkpoint_states",
            "Prospect states written per checkpoint",
            buckets=(1, 10, 100, 1_000, 10_000, 100_000),
            registry=r,
        )
        self.checkpoint_bytes = Counter(
            "touchflow_checkpoint_bytes",
            "Bytes of prospect state written",
            registry=r,
        )
        self.lag = Gauge(
            "touchflow_consumer_lag",
            "Entries not yet delivered or acknowledged, per shard",
            ["shard"],
            registry=r,
        )
        self.in_memory = Gauge(
            "touchflow_prospects_in_memory",
            "Prospect states held by this process",
            registry=r,
        )
        self.last_checkpoint = Gauge(
            "touchflow_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint",
            registry=r,
        )

    def watch_health(self, problem: Callable[[], str | None]) -> None:
        """Base `touchflow_healthy` on `problem()`, the check `/healthz` answers with."""
        self._problem = problem

    def _healthy(self) -> float:
        try:
            return 0.0 if self._problem() is not None else 1.0
        except Exception:  # a check that fails is an unhealthy answer, not a failed scrape
            return 0.0

    def events_decoded(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            self.events_of(kind).inc(count)

    def outputs_written(self, items: Iterable[tuple[str, Any]], now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        for _prospect, fx in items:
            sent = False
            for _ts, _seq, record in fx.outputs:
                if type(record) is Command:
                    self.commands_of(record.channel, reason_label(record.reason)).inc()
                    sent = True
                else:
                    self.decisions_of(record.verdict, record.rule or "").inc()
            if sent and fx.first_seen_ms is not None:
                self.latency.observe(max(0, now - fx.first_seen_ms) / 1000)

    def checkpointed(self, states: int, size: int, seconds: float) -> None:
        self.checkpoint_seconds.observe(seconds)
        self.checkpoint_states.observe(states)
        self.checkpoint_bytes.inc(size)
        self.last_checkpoint.set(time.time())

    def dead_letters(self, count: int) -> None:
        self.dead.inc(count)
