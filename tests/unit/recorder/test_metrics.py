"""The recorder's metrics that alerts watch: there from the start, and current when scraped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from services.recorder.metrics import EVENT_OUTCOMES, WRITEBACK_OUTCOMES, RecorderMetrics


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_outcome_counters_start_at_zero() -> None:
    registry = CollectorRegistry()
    RecorderMetrics(registry)
    for outcome in EVENT_OUTCOMES:
        assert sample(registry, "calltrail_recorder_events_total", outcome=outcome) == 0
    for outcome in WRITEBACK_OUTCOMES:
        assert sample(registry, "calltrail_kintone_writebacks_total", outcome=outcome) == 0
    assert sample(registry, "calltrail_unrated_legs_total") == 0
    assert sample(registry, "calltrail_kintone_writeback_oldest_seconds") == 0


def test_requests_today_is_read_when_scraped_so_it_drops_at_the_day_roll() -> None:
    registry = CollectorRegistry()
    metrics = RecorderMetrics(registry)
    counts = {12: 7999}  # what the kintone client would say for each app today

    metrics.kintone_request(12, "ok", counts.__getitem__)
    assert sample(registry, "calltrail_kintone_requests_today", app="12") == 7999
    assert sample(registry, "calltrail_kintone_requests_total", outcome="ok") == 1
    counts[12] = 0  # 00:00 UTC: the client's count rolls over, no request since
    assert sample(registry, "calltrail_kintone_requests_today", app="12") == 0


def test_oldest_waiting_call_ages_between_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    metrics = RecorderMetrics(registry)
    ended = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    now = ended + timedelta(minutes=16)
    monkeypatch.setattr("services.recorder.metrics.time.time", lambda: now.timestamp())

    metrics.writeback_waiting_since(ended)
    assert sample(registry, "calltrail_kintone_writeback_oldest_seconds") == 960
    now += timedelta(minutes=1)  # the database is away: no new reading, the call still waits
    assert sample(registry, "calltrail_kintone_writeback_oldest_seconds") == 1020
    metrics.writeback_waiting_since(None)
    assert sample(registry, "calltrail_kintone_writeback_oldest_seconds") == 0
