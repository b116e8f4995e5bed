"""Prometheus metrics of the gateway, on a registry of its own. Labels are bounded: providers,
statuses, contract types and a fixed set of provider event kinds; never a prospect id, an
email address or a phone number."""

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class GatewayMetrics:
    """All gateway metrics (a fresh registry per instance, so tests stay apart)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "touchflow_gateway_requests",
            "Requests answered, by provider and HTTP status",
            ["provider", "status"],
            registry=r,
        )
        self.appended = Counter(
            "touchflow_gateway_events_appended",
            "Contract events appended to the event streams, by type",
            ["type"],
            registry=r,
        )
        self.ignored = Counter(
            "touchflow_gateway_provider_events_ignored",
            "Provider events without contract meaning (counted, not appended), by provider, kind",
            ["provider", "kind"],
            registry=r,
        )
        self.signature_failures = Counter(
            "touchflow_gateway_signature_failures",
            "Requests refused 401, by provider and why (missing, bad, stale)",
            ["provider", "reason"],
            registry=r,
        )
        self.unknown = Counter(
            "touchflow_gateway_unknown_prospects",
            "Provider events for an address no profile holds (dead-lettered and parked)",
            ["provider"],
            registry=r,
        )
        self.dead = Counter(
            "touchflow_gateway_dead_letters",
            "Entries the gateway wrote to the dead-letter stream, by provider",
            ["provider"],
            registry=r,
        )
        self.spooled = Counter(
            "touchflow_gateway_spooled_requests",
            "Requests accepted into the local spool while Redis was away",
            registry=r,
        )
        self.spool_pending = Gauge(
            "touchflow_gateway_spool_pending",
            "1 while the spool holds requests not yet drained into Redis",
            registry=r,
        )
        self.latency = Histogram(
            "touchflow_gateway_request_seconds",
            "From a request's arrival to its answer, by provider",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
