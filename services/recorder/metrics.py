"""The recorder's own Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Created at 0 when the recorder starts, so that ``increase()`` sees the first one after a
# restart (a series born at 1 has no increase): the alerts count on it.
EVENT_OUTCOMES = ("new", "duplicate", "dead_lettered")
WRITEBACK_OUTCOMES = ("written", "retried", "parked")


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "calltrail_recorder_events_total",
            "Events consumed, by outcome: new, duplicate, dead_lettered.",
            ["outcome"],
            registry=registry,
        )
        for outcome in EVENT_OUTCOMES:
            self.events.labels(outcome)
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
        self.writebacks = Counter(
            "calltrail_kintone_writebacks_total",
            "Calls the write-back worker settled, by outcome: written (on kintone), retried"
            " (tried again later), parked (given up until `calltrail kintone retry`).",
            ["outcome"],
            registry=registry,
        )
        for outcome in WRITEBACK_OUTCOMES:
            self.writebacks.labels(outcome)
        self.writeback_oldest = Gauge(
            "calltrail_kintone_writeback_oldest_seconds",
            "Age of the oldest finished call still waiting for its kintone write-back"
            " (0: none waiting).",
            registry=registry,
        )
        self._oldest_waiting: float | None = None
        self.writeback_oldest.set_function(self._oldest_age)
        self._apps_counted: set[int] = set()

    def kintone_request(self, app: int, outcome: str, requests_today: Callable[[int], int]) -> None:
        """One request to kintone. ``requests_today(app)`` is read when scraped, so the count
        drops to 0 when the UTC day rolls over, with or without a new request."""
        self.kintone_requests.labels(outcome).inc()
        if app not in self._apps_counted:
            self._apps_counted.add(app)
            self.kintone_requests_today.labels(str(app)).set_function(lambda: requests_today(app))

    def writeback_waiting_since(self, oldest: datetime | None) -> None:
        """When the oldest call still waiting for its write-back ended (None: none waits).
        Its age is taken when scraped, so it keeps growing while the database is away."""
        self._oldest_waiting = None if oldest is None else oldest.timestamp()

    def _oldest_age(self) -> float:
        if self._oldest_waiting is None:
            return 0.0
        return max(0.0, time.time() - self._oldest_waiting)
