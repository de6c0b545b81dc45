"""HttpMetrics counts with plain numbers and exposes them when scraped: what Prometheus reads
must be exactly what prometheus_client's own Counter and Histogram would have exposed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from services.common.observability import LATENCY_BUCKETS, HttpMetrics

_observations = st.lists(
    st.tuples(
        st.sampled_from(["/twilio/status", "/twiml/voice", "unmatched"]),
        st.sampled_from(["GET", "POST"]),
        st.sampled_from([200, 204, 403, 503]),
        # Bucket bounds themselves included: a bucket counts what is <= its bound.
        st.sampled_from(LATENCY_BUCKETS) | st.floats(min_value=0, max_value=30),
    ),
    max_size=40,
)


def _reference(observations: list[tuple[str, str, int, float]]) -> bytes:
    registry = CollectorRegistry()
    requests = Counter(
        "calltrail_http_requests",
        "HTTP requests by route, method and status.",
        ["route", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "calltrail_http_request_duration_seconds",
        "HTTP request latency by route.",
        ["route"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for route, method, status, seconds in observations:
        requests.labels(route, method, str(status)).inc()
        latency.labels(route).observe(seconds)
    return generate_latest(registry)


def _without_created(exposition: bytes) -> list[bytes]:
    return sorted(line for line in exposition.splitlines() if b"_created" not in line)


@settings(max_examples=200, deadline=None)
@given(_observations)
def test_exposition_is_prometheus_clients(observations: list[tuple[str, str, int, float]]) -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for observation in observations:
        metrics.observe(*observation)
    ours = generate_latest(registry)
    assert _without_created(ours) == _without_created(_reference(observations))
