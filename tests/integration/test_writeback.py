"""kintone write-back: outbox jobs from the recorder's transaction, drained into a kintone
stand-in that behaves as kintone documents (revisions, subtable replacement, upserts, errors)."""

from __future__ import annotations

import asyncio

import structlog
from structlog.testing import capture_logs

from tests.integration.writeback_support import CALL_LOG, CUSTOMERS, Harness, one_call


async def test_subtable_rows_appended_once_keeping_what_was_there(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    busy, quiet = h.customer(), h.customer("有限会社テスト")
    # A salesperson already keeps a note row in the table: it must survive our updates.
    h.domain.edit_record(
        CUSTOMERS, busy, {"通話履歴": {"value": [{"value": {"通話結果": {"value": "手書きメモ"}}}]}}
    )
    calls = [one_call(busy, duration_s=61), one_call(busy, duration_s=5), one_call(quiet)]
    await h.record_calls(*calls)
    assert await h.outbox() == {"pending": 3}

    assert await h.worker().run_once() == 3
    rows = h.history(busy)
    assert [row["通話結果"] for row in rows] == ["手書きメモ", "completed", "completed"]
    # One row per call, keyed by the call as made: the browser leg's CallSid.
    by_sid = {row["CallSid"]: row for row in rows[1:]}
    assert set(by_sid) == {calls[0][0].call_sid, calls[1][0].call_sid}
    first = by_sid[calls[0][0].call_sid]
    assert first["通話番号"] == "+819012345678"
    assert first["通話日時"] == "2026-11-10T03:00:05Z"
    assert first["通話時間"] == "61"
    assert first["通話料金"] == "32.9"  # 2 minutes × (16.2 + 0.25) yen
    assert first["担当者"] == "u_1"
    assert first["発着信"] == "発信"
    assert len(h.history(quiet)) == 1
    assert await h.outbox() == {"done": 3}
    # Several calls for one record went out in one update: GET + PUT per record, not per call.
    assert h.domain.request_count(CUSTOMERS, method="PUT") == 2
    assert h.domain.request_count(CUSTOMERS) == 4


async def test_replays_never_add_a_row_twice(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    customer = h.customer()
    call = one_call(customer)
    await h.record_calls(call)
    await h.worker().run_once()
    # The recorder sees the same events again (a replay), and a crash left the job pending.
    await h.record_calls(call)
    await h.sql(
        "UPDATE kintone_outbox SET state = 'pending', available_at = now()",
    )
    await h.worker().run_once()
    assert len(h.history(customer)) == 1


async def test_another_writer_between_read_and_write(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    customer = h.customer()
    call = one_call(customer)
    await h.record_calls(call)
    read = h.client.get_record
    edits = 0

    async def read_then_someone_edits(app: int, record_id: int):  # type: ignore[no-untyped-def]
        nonlocal edits
        result = await read(app, record_id)
        if edits < 2:  # a colleague saves the record twice while we prepare our update
            edits += 1
            h.domain.edit_record(CUSTOMERS, record_id, {"顧客名": {"value": f"改名{edits}"}})
        return result

    h.client.get_record = read_then_someone_edits  # type: ignore[method-assign]
    await h.worker().run_once()
    record = h.domain.record(CUSTOMERS, customer)
    assert record["顧客名"]["value"] == "改名2"  # their edit kept
    assert len(record["通話履歴"]["value"]) == 1  # our row added once
    assert h.domain.request_count(CUSTOMERS, method="PUT") == 3  # 409, 409, then success


async def test_write_applied_but_answer_lost(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    customer = h.customer()
    call = one_call(customer)
    await h.record_calls(call)
    read = h.client.get_record
    armed = False

    async def read_then_lose_the_next_answer(app: int, record_id: int):  # type: ignore[no-untyped-def]
        nonlocal armed
        result = await read(app, record_id)
        if not armed:
            armed = True
            h.domain.fail_next(503, after_apply=True)  # the PUT is applied, its answer lost
        return result

    h.client.get_record = read_then_lose_the_next_answer  # type: ignore[method-assign]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await h.worker().run_once()
    assert len(h.history(customer)) == 1
    assert await h.outbox() == {"done": 1}
    # The client's retry line says which calls the request carried; the outcome names the call.
    root = call[0].root_call_sid
    (retry,) = [line for line in logs if line["event"] == "kintone_retry"]
    assert retry["call_sids"] == [root]
    (written,) = [line for line in logs if line["event"] == "kintone_call_written"]
    assert (written["call_sid"], written["record"]) == (root, customer)


async def test_call_log_app_upserts_a_hundred_calls_a_request(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness("app")
    customer = h.customer()
    calls = [one_call(customer, duration_s=30 + i) for i in range(250)]
    await h.record_calls(*calls)
    await h.worker().run_once()
    assert h.domain.request_count(CALL_LOG, method="PUT") == 3
    records = h.domain.records(CALL_LOG)
    assert len(records) == 250
    assert {r["CallSid"]["value"] for r in records} == {c[0].call_sid for c in calls}
    assert {r["顧客レコード番号"]["value"] for r in records} == {str(customer)}
    # A replay upserts the same records again: still one per call.
    await h.sql(
        "UPDATE kintone_outbox SET state = 'pending', available_at = now()",
    )
    await h.worker().run_once()
    assert len(h.domain.records(CALL_LOG)) == 250


async def test_unfixable_jobs_are_parked_and_do_not_block_the_rest(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    customer = h.customer()
    gone = one_call(99999)  # a record deleted since
    await h.record_calls(one_call(customer), gone)
    with capture_logs() as logs:
        await h.worker().run_once()
    assert len(h.history(customer)) == 1
    assert await h.outbox() == {"done": 1, "parked": 1}
    (parked,) = [line for line in logs if line["event"] == "kintone_call_parked"]
    assert parked["call_sid"] == gone[0].root_call_sid
    assert "GAIA_RE01" in parked["reason"]
    [(reason,)] = await h.sql(
        "SELECT last_error FROM kintone_outbox WHERE state = 'parked'",
    )
    assert "GAIA_RE01" in reason
    assert "token" not in reason


async def test_a_wrong_table_code_parks_with_a_clear_reason(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness(kintone_history_table="通話記録")
    await h.record_calls(one_call(h.customer()))
    await h.worker().run_once()
    [(reason,)] = await h.sql("SELECT last_error FROM kintone_outbox")
    assert "通話記録" in reason
    assert "KINTONE_HISTORY_TABLE" in reason


async def test_under_faults_and_restarts_every_call_lands_exactly_once(make_harness) -> None:  # type: ignore[no-untyped-def]
    h: Harness = await make_harness()
    customers = [h.customer(f"顧客{i}") for i in range(20)]
    calls = [one_call(customers[i % 20], duration_s=10 + i) for i in range(120)]
    gone = [one_call(77777 + i) for i in range(3)]  # records deleted: kintone rejects for good
    await h.record_calls(*calls, *gone)
    h.domain.set_failure_rate(0.25, (429, 500, 503), seed=7)
    h.domain.concurrency_limit = 3

    stop_editing = asyncio.Event()

    async def colleague() -> None:
        n = 0
        while not stop_editing.is_set():
            n += 1
            h.domain.edit_record(CUSTOMERS, customers[n % 20], {"顧客名": {"value": f"編集{n}"}})
            await asyncio.sleep(0.005)

    editing = asyncio.create_task(colleague())
    h.domain.latency_s = 0.02  # so the kills below land while writes are in flight
    for _ in range(3):  # the recorder is killed mid-way, three times, and started again
        stopping = asyncio.Event()
        task = asyncio.create_task(h.worker().run(stopping))
        await asyncio.sleep(0.06)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    killed_with = await h.outbox()
    assert killed_with.get("pending", 0) > 0  # the kills interrupted real work
    await h.sql(
        "UPDATE kintone_outbox SET leased_until = NULL, available_at = now()"
        " WHERE state = 'pending'",
    )
    h.domain.set_failure_rate(0.1, (429, 500, 503))
    for _ in range(100):
        if (await h.outbox()).get("pending", 0) == 0:
            break
        await h.worker().run_once()
        await h.sql(
            "UPDATE kintone_outbox SET available_at = now() WHERE state = 'pending'",
        )
    stop_editing.set()
    await editing

    written = [row["CallSid"] for c in customers for row in h.history(c)]
    assert sorted(written) == sorted(call[0].call_sid for call in calls)  # each exactly once
    parked = await h.sql(
        "SELECT call_sid FROM kintone_outbox WHERE state = 'parked'",
    )
    assert sorted(sid for (sid,) in parked) == sorted(call[0].call_sid for call in gone)
    assert await h.outbox() == {"done": 120, "parked": 3}
