"""The recorder's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "calltrail_recorder_events_total",
            "Events consumed, by outcome: new, duplicate, dead_lettered.",
            ["outcome"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "calltrail_recorder_batch_size",
            "Events per batch.",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
            registry=registry,
        )
        self.db_write = Histogram(
            "calltrail_recorder_db_write_seconds",
            "Time to write one batch to PostgreSQL (one transaction).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.db_failures = Counter(
            "calltrail_recorder_db_failures_total",
            "Batch writes that failed and were retried.",
            registry=registry,
        )
        self.unrated = Counter(
            "calltrail_unrated_legs_total",
            "Ended legs with no rate in the tariff (stored with a null charge).",
            registry=registry,
        )
        self.lag = Gauge(
            "calltrail_recorder_consumer_lag",
            "Events on the topic not yet recorded, over this recorder's partitions.",
            registry=registry,
        )
        self.kintone_requests = Counter(
            "calltrail_kintone_requests_total",
            "Requests to kintone by outcome (ok, conflict, rate_limited, unavailable, …).",
            ["outcome"],
            registry=registry,
        )
        self.kintone_requests_today = Gauge(
            "calltrail_kintone_requests_today",
            "Requests to a kintone app today (UTC day; kintone allows about 10,000).",
            ["app"],
            registry=registry,
        )
