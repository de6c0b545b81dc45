"""What the write-back alerts read: each call's outcome, and how long the oldest waiting call
has waited (real PostgreSQL outbox, kintone stand-in)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from services.recorder.metrics import RecorderMetrics
from tests.integration.writeback_support import CUSTOMERS, Harness, one_call


def outcomes(registry: CollectorRegistry) -> dict[str, float | None]:
    return {
        outcome: registry.get_sample_value(
            "calltrail_kintone_writebacks_total", {"outcome": outcome}
        )
        for outcome in ("written", "retried", "parked")
    }


async def test_outcomes_count_calls_and_a_conflict_that_then_succeeds_is_written(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    registry = CollectorRegistry()
    metrics = RecorderMetrics(registry)
    edited, plain = h.customer(), h.customer("有限会社テスト")
    await h.record_calls(one_call(edited), one_call(plain), one_call(99999))  # 99999: deleted
    read = h.client.get_record
    edits = 0

    async def read_then_someone_edits(app: int, record_id: int):  # type: ignore[no-untyped-def]
        nonlocal edits
        result = await read(app, record_id)
        if record_id == edited and edits == 0:  # a colleague saves it: our update gets 409
            edits += 1
            h.domain.edit_record(CUSTOMERS, record_id, {"顧客名": {"value": "改名"}})
        return result

    h.client.get_record = read_then_someone_edits  # type: ignore[method-assign]
    await h.worker(metrics).run_once()
    assert outcomes(registry) == {"written": 2, "retried": 0, "parked": 1}
    assert edits == 1  # the 409 happened, and the reread and second update succeeded

    await h.record_calls(one_call(plain, duration_s=5))
    h.domain.set_failure_rate(1.0, statuses=(500,))
    await h.worker(metrics).run_once()
    assert outcomes(registry) == {"written": 2, "retried": 1, "parked": 1}


async def test_oldest_waiting_call_is_measured_each_round_and_clears_once_written(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    registry = CollectorRegistry()
    await h.record_calls(one_call(h.customer()))
    await h.sql("UPDATE kintone_outbox SET created_at = now() - interval '20 minutes'")
    h.domain.set_failure_rate(1.0, statuses=(500,))  # kintone down: the call keeps waiting

    async def oldest_settles(low: float, high: float) -> None:
        value = None
        for _ in range(200):
            value = registry.get_sample_value("calltrail_kintone_writeback_oldest_seconds")
            if value is not None and low <= value <= high:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"oldest waiting {value}s, expected {low}..{high}")

    stopping = asyncio.Event()
    task = asyncio.create_task(h.worker(RecorderMetrics(registry)).run(stopping))
    try:
        await oldest_settles(20 * 60, 21 * 60)
        h.domain.set_failure_rate(0.0)
        await h.sql("UPDATE kintone_outbox SET available_at = now()")  # retry it now
        await oldest_settles(0, 0)
        assert await h.outbox() == {"done": 1}
    finally:
        stopping.set()
        await task
