"""The gateway's hand-made fast parts give exactly what the libraries they stand in for give:
HMAC with primed pads (`hmac.new`), the per-request metrics kept as plain numbers
(`prometheus_client`'s Counter and Histogram, line for line in the exposition), and a request's
arrival kept per millisecond (`datetime.fromtimestamp`, as `rfc3339` formats it)."""

import hashlib
import hmac
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from connectors.gateway_auth import PrimedHmac
from connectors.gateway_metrics import _LATENCY_BUCKETS, PlainCounter, PlainHistogram
from operators.providers.common import arrival, rfc3339
from operators.timeutil import to_ms


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(max_size=200),  # shorter and longer than a block (64 bytes), and empty
    data=st.binary(max_size=500),
    digest=st.sampled_from([hashlib.sha1, hashlib.sha256]),
)
def test_primed_hmac_is_hmac(key: bytes, data: bytes, digest: object) -> None:
    assert PrimedHmac(key, digest).digest(data) == hmac.new(key, data, digest).digest()  # type: ignore[arg-type]
    primed = PrimedHmac.of(key, digest)  # type: ignore[arg-type]
    assert primed.digest(data) == primed.digest(data)  # copies: the primed state is untouched


_VALUES = st.one_of(
    st.sampled_from(_LATENCY_BUCKETS),  # exactly on a bound: counted in it (`le`)
    st.floats(min_value=0, max_value=10, allow_nan=False),
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["twilio", "sendgrid"]), st.sampled_from(["200", "401"]), _VALUES
        ),
        max_size=60,
    )
)
def test_plain_metrics_expose_what_the_client_library_would(
    requests: list[tuple[str, str, float]],
) -> None:
    library, plain = CollectorRegistry(), CollectorRegistry()
    counter = Counter("t_requests", "doc", ["provider", "status"], registry=library)
    histogram = Histogram(
        "t_seconds", "doc", ["provider"], buckets=_LATENCY_BUCKETS, registry=library
    )
    counter_plain = PlainCounter("t_requests", "doc", ["provider", "status"])
    histogram_plain = PlainHistogram("t_seconds", "doc", ["provider"], _LATENCY_BUCKETS)
    plain.register(counter_plain)
    plain.register(histogram_plain)
    for provider, status, seconds in requests:
        counter.labels(provider, status).inc()
        counter_plain.labels(provider, status).inc()
        histogram.labels(provider).observe(seconds)
        histogram_plain.labels(provider).observe(seconds)
    expected = [
        line
        for line in generate_latest(library).decode().splitlines()
        if "_created" not in line  # the library's creation times: not kept here
    ]
    assert generate_latest(plain).decode().splitlines() == expected


def _near(ms: int, offset_us: float, ulps: int) -> float:
    """A float time `offset_us` from the start of millisecond `ms`, moved by `ulps` floats."""
    t = ms / 1000 + offset_us / 1e6
    for _ in range(abs(ulps)):
        t = math.nextafter(t, math.inf if ulps > 0 else -math.inf)
    return t


# times in a few neighbouring milliseconds, most of them within microseconds of an edge (where
# the rounding to microseconds moves a time into the next millisecond), in any order
_TIMES = st.builds(
    _near,
    st.integers(1_700_000_000_000, 1_700_000_000_003),
    st.one_of(
        st.sampled_from([-2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5]).flatmap(
            lambda edge_us: st.sampled_from([edge_us, 1000 + edge_us])
        ),
        st.floats(0, 1000),
    ),
    st.integers(-3, 3),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_TIMES, min_size=1, max_size=30))
def test_an_arrival_is_its_millisecond(times: list[float]) -> None:
    for t in times:
        exact = datetime.fromtimestamp(t, UTC)
        moment = arrival(t)
        assert to_ms(moment) == to_ms(exact)
        assert moment == exact.replace(microsecond=exact.microsecond // 1000 * 1000)
        assert rfc3339(moment) == rfc3339(exact)
