"""Inbound calls on kintone (CONTRACT.md section 9): recorded with real PostgreSQL, matched to
customer records through the kintone stand-in's records query, written exactly once."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from services.recorder.adapters.kintone import KintoneUnavailableError
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.service_layer.costs import month_costs
from tests.inbound_calls import InboundCall, inbound_call
from tests.integration.writeback_support import AT, CALL_LOG, CUSTOMERS, Harness, one_call

CALLER = "+819011112222"
LINE_ID = "U" + "0123456789abcdef" * 2
GET_RECORDS = "/k/v1/records.json"


async def harness(make_harness, mode: str = "subtable", **overrides: object) -> Harness:  # type: ignore[no-untyped-def]
    return await make_harness(mode, kintone_customer_app=CUSTOMERS, **overrides)  # type: ignore[no-any-return]


async def record(h: Harness, *calls: InboundCall) -> None:
    await h.record_calls(*(call.events for call in calls))


def lookups(h: Harness) -> int:
    return h.domain.request_count(CUSTOMERS, method="GET", path=GET_RECORDS)


async def test_an_answered_call_lands_on_every_record_of_the_caller_however_written(
    make_harness,  # type: ignore[no-untyped-def]
) -> None:
    h = await harness(make_harness)
    forms = ["090-1111-2222", "09011112222", "+81 90 1111 2222", "(090)1111-2222"]
    mine = [h.customer(f"顧客{i}", 電話番号=form) for i, form in enumerate(forms)]
    others = [h.customer("他人", 電話番号="090-3333-2222"), h.customer("他人2", 電話番号="")]
    call = inbound_call(caller=CALLER, answered_by="kintone_7", talk_s=61, at=AT)
    await record(h, call)
    assert await h.outbox() == {"pending": 1}

    assert await h.worker().run_once() == 1
    for record_id in mine:
        [row] = h.history(record_id)
        assert row["CallSid"] == call.root  # the inbound (parent) leg's
        assert row["通話番号"] == CALLER  # the caller's number
        assert row["担当者"] == "kintone_7"  # who answered
        assert row["発着信"] == "着信"
        assert row["通話結果"] == "completed"
        assert row["通話時間"] == "61"
        assert row["通話日時"] == "2026-11-10T03:00:05Z"
    for record_id in others:
        assert h.history(record_id) == []
    assert await h.outbox() == {"done": 1}
    # One lookup, then one update per matching record: the lookup returned the revisions.
    assert lookups(h) == 1
    assert h.domain.request_count(CUSTOMERS, method="GET") == 1
    assert h.domain.request_count(CUSTOMERS, method="PUT") == len(mine)


async def test_one_matching_record_costs_two_requests(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    customer = h.customer(電話番号="090-1111-2222")
    await record(h, inbound_call(caller=CALLER, at=AT))
    await h.worker().run_once()
    assert len(h.history(customer)) == 1
    assert h.domain.request_count(CUSTOMERS) == 2


async def test_a_line_call_is_matched_by_the_line_user_id(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    customer = h.customer(LINEユーザーID=LINE_ID)
    h.customer(LINEユーザーID=LINE_ID[:-1] + "0")  # someone else
    call = inbound_call(line_user_id=LINE_ID, answered_by="kintone_5", at=AT)
    await record(h, call)
    await h.worker().run_once()
    [row] = h.history(customer)
    assert (row["CallSid"], row["通話番号"], row["発着信"], row["担当者"]) == (
        call.root,
        "LINE",
        "着信",
        "kintone_5",
    )
    # Every leg of the LINE call carries its user id and the inbound direction.
    legs = [
        row
        for row in await h.sql(
            "SELECT call_sid, parent_call_sid, direction, line_user_id FROM calls"
        )
        if call.root in row[:2]
    ]
    assert len(legs) == 3
    assert {(direction, line) for _, _, direction, line in legs} == {("inbound", LINE_ID)}


async def test_unmatched_calls_are_counted_and_listed(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    h.customer(電話番号="03-1234-5678")
    stranger = inbound_call(caller="+819099998888", at=AT)
    anonymous = inbound_call(caller="anonymous", at=AT)
    withheld = inbound_call(caller="+266696687", answered_by=None, at=AT)
    await record(h, stranger, anonymous, withheld)
    await h.worker().run_once()
    assert await h.outbox() == {"done": 3}
    assert lookups(h) == 1  # only the caller with a number was looked up
    assert h.domain.request_count(CUSTOMERS, method="PUT") == 0
    status = await KintoneOutbox(h.engine).status()
    assert sorted(status.unmatched) == sorted(c.root for c in (stranger, anonymous, withheld))


async def test_a_failing_lookup_delays_the_call_and_never_loses_it(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    customer = h.customer(電話番号="090-1111-2222")
    call = inbound_call(caller=CALLER, at=AT)
    await record(h, call)
    h.domain.fail_next(*([429, 503, 500] * 2))  # more than the client's five retries
    await h.worker().run_once()
    assert h.history(customer) == []
    [(state, attempts, error)] = await h.sql(
        "SELECT state, attempts, last_error FROM kintone_outbox"
    )
    assert (state, attempts) == ("pending", 1)
    assert "500" in str(error) or "503" in str(error) or "429" in str(error)
    await h.sql("UPDATE kintone_outbox SET available_at = now()")
    await h.worker().run_once()
    assert len(h.history(customer)) == 1
    assert await h.outbox() == {"done": 1}


async def test_after_the_lookup_a_retry_writes_to_the_same_records_without_asking_again(
    make_harness,  # type: ignore[no-untyped-def]
) -> None:
    h = await harness(make_harness)
    first = h.customer(電話番号="090-1111-2222")
    second = h.customer(電話番号="09011112222")
    await record(h, inbound_call(caller=CALLER, at=AT))
    original = h.client.update_record
    failed = False

    async def second_update_fails(app, record_id, record, revision=None):  # type: ignore[no-untyped-def]
        nonlocal failed
        if record_id == second and not failed:
            failed = True  # kintone stayed away through all of the client's retries
            raise KintoneUnavailableError(503, "", "Service Unavailable")
        return await original(app, record_id, record, revision)

    h.client.update_record = second_update_fails  # type: ignore[method-assign]
    await h.worker().run_once()
    assert (len(h.history(first)), len(h.history(second))) == (1, 0)
    assert await h.outbox() == {"pending": 1}
    # A record edited meanwhile matches no more: what the lookup found still decides.
    h.domain.edit_record(CUSTOMERS, second, {"電話番号": {"value": "0120-000-000"}})
    await h.sql("UPDATE kintone_outbox SET available_at = now()")
    await h.worker().run_once()
    assert (len(h.history(first)), len(h.history(second))) == (1, 1)
    assert lookups(h) == 1


async def test_lost_answers_and_colleagues_never_duplicate_a_row(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    customer = h.customer(電話番号="090-1111-2222")
    call = inbound_call(caller=CALLER, at=AT)
    outbound = one_call(customer)  # an outbound call to the same customer, ending together
    await h.record_calls(call.events, outbound)
    read = h.client.get_records
    armed = False

    async def lookup_then_trouble(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal armed
        result = await read(*args, **kwargs)
        if not armed:
            armed = True
            h.domain.edit_record(CUSTOMERS, customer, {"顧客名": {"value": "改名"}})
            h.domain.fail_next(503, after_apply=True)  # the next write lands, its answer lost
        return result

    h.client.get_records = lookup_then_trouble  # type: ignore[method-assign]
    await h.worker().run_once()
    rows = h.history(customer)
    assert sorted(row["CallSid"] for row in rows) == sorted([call.root, outbound[0].call_sid])
    assert {row["発着信"] for row in rows} == {"着信", "発信"}
    assert h.domain.record(CUSTOMERS, customer)["顧客名"]["value"] == "改名"
    assert await h.outbox() == {"done": 2}


async def test_app_mode_one_call_log_record_per_call(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness, "app")
    low = h.customer(電話番号="090-1111-2222")
    h.customer(電話番号="+819011112222")
    matched = [inbound_call(caller=CALLER, talk_s=30 + i, at=AT) for i in range(150)]
    stranger = inbound_call(caller="+819099998888", at=AT)
    anonymous = inbound_call(caller="anonymous", at=AT)
    await record(h, *matched, stranger, anonymous)
    await h.worker().run_once()
    logs = {r["CallSid"]["value"]: r for r in h.domain.records(CALL_LOG)}
    assert len(logs) == 152
    assert {logs[c.root]["顧客レコード番号"]["value"] for c in matched} == {str(low)}
    assert logs[stranger.root]["顧客レコード番号"]["value"] == ""
    assert logs[anonymous.root]["顧客レコード番号"]["value"] == ""
    assert {r["発着信"]["value"] for r in logs.values()} == {"着信"}
    assert h.domain.request_count(CALL_LOG, method="PUT") == 2  # 152 calls: two upserts
    assert lookups(h) == 151  # one per call with a number, at most
    assert await h.outbox() == {"done": 152}


async def test_the_job_waits_for_the_root_leg(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    call = inbound_call(caller=CALLER, at=AT)
    root_end = call.events[-1]
    await h.record_calls(call.events[:-1])  # the browsers stopped ringing, the call goes on
    assert await h.outbox() == {}
    await h.record_calls([root_end])
    assert await h.outbox() == {"pending": 1}


async def test_without_a_customer_app_inbound_calls_get_no_job(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness()
    await record(h, inbound_call(caller=CALLER, at=AT))
    assert await h.outbox() == {}


@pytest.mark.parametrize("forward", [None, "+81312345678"])
async def test_missed_and_forwarded_calls(make_harness, forward: str | None) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    customer = h.customer(電話番号="090-1111-2222")
    call = inbound_call(caller=CALLER, answered_by=None, forward_to=forward, talk_s=40, at=AT)
    await record(h, call)
    await h.worker().run_once()
    [row] = h.history(customer)
    assert row["担当者"] == ""
    if forward is None:  # a missed call (CONTRACT.md section 12)
        assert (row["通話結果"], row["通話時間"]) == ("不在着信", "0")
    else:
        assert (row["通話結果"], row["通話時間"]) == ("completed", "40")


async def test_costs_show_inbound_legs_unrated_apart_from_outbound(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await harness(make_harness)
    await record(h, inbound_call(caller=CALLER, talk_s=61, at=AT))
    await h.record_calls(one_call(h.customer(), duration_s=61))
    costs = await month_costs(h.engine, date(2026, 11, 1))
    lines = {(u.direction, u.leg, u.destination_type): u for u in costs.usage}
    inbound = lines[("inbound", "pstn", "mobile")]  # the customer's call, by who called
    assert (inbound.legs, inbound.charge, inbound.unrated_legs) == (1, None, 1)
    ringing = lines[("inbound", "browser", "client")]  # the browsers it rang: client legs
    assert (ringing.legs, ringing.charge) == (2, Decimal("0.50"))
    assert lines[("outbound", "pstn", "mobile")].charge == Decimal("32.4")
    assert costs.unrated_legs == 1


async def test_under_faults_and_restarts_every_call_lands_once_on_each_of_its_records(
    make_harness,  # type: ignore[no-untyped-def]
) -> None:
    h = await harness(make_harness)
    callers = [f"+8190{2000 + i:04d}{i:04d}" for i in range(12)]
    # Each caller has one or two records, written differently; a few strangers call too.
    records: dict[str, list[int]] = {}
    for i, caller in enumerate(callers):
        national = "0" + caller[3:]
        forms = [f"{national[:3]}-{national[3:7]}-{national[7:]}", national][: 1 + i % 2]
        records[caller] = [h.customer(f"顧客{i}", 電話番号=form) for form in forms]
    inbound = [inbound_call(caller=callers[i % 12], talk_s=10 + i, at=AT) for i in range(48)]
    strangers = [inbound_call(caller=f"+8180{9000 + i:04d}0000", at=AT) for i in range(3)]
    outbound = [one_call(records[callers[i % 12]][0], duration_s=5 + i) for i in range(24)]
    await record(h, *inbound, *strangers)
    await h.record_calls(*outbound)
    h.domain.set_failure_rate(0.25, (429, 500, 503), seed=11)
    h.domain.concurrency_limit = 3
    h.domain.latency_s = 0.02
    for _ in range(3):  # killed mid-way, three times
        task = asyncio.create_task(h.worker().run(asyncio.Event()))
        await asyncio.sleep(0.06)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (await h.outbox()).get("pending", 0) > 0
    await h.sql("UPDATE kintone_outbox SET leased_until = NULL, available_at = now()")
    h.domain.set_failure_rate(0.1, (429, 500, 503))
    for _ in range(100):
        if (await h.outbox()).get("pending", 0) == 0:
            break
        await h.worker().run_once()
        await h.sql("UPDATE kintone_outbox SET available_at = now() WHERE state = 'pending'")
    assert await h.outbox() == {"done": 48 + 3 + 24}
    for i, caller in enumerate(callers):
        calls_in = [c.root for c in inbound[i::12]]
        calls_out = [c[0].call_sid for c in outbound[i::12]]
        for n, record_id in enumerate(records[caller]):
            written = sorted(row["CallSid"] for row in h.history(record_id))
            assert written == sorted(calls_in + (calls_out if n == 0 else []))  # once each
    status = await KintoneOutbox(h.engine).status()
    assert sorted(status.unmatched) == sorted(c.root for c in strangers)


async def test_a_wrong_phone_field_parks_with_kintones_reason_and_a_retry_looks_again(
    make_harness,  # type: ignore[no-untyped-def]
) -> None:
    h = await harness(make_harness, kintone_field_phone="電話")
    customer = h.customer(電話番号="090-1111-2222")
    await record(h, inbound_call(caller=CALLER, at=AT))
    await h.worker().run_once()
    [(state, reason, matched)] = await h.sql(
        "SELECT state, last_error, matched_record_ids FROM kintone_outbox"
    )
    assert (state, matched) == ("parked", None)
    assert "GAIA_IQ11" in str(reason)
    h.settings = h.settings.model_copy(update={"kintone_field_phone": "電話番号"})
    assert await KintoneOutbox(h.engine).requeue_parked() == 1
    await h.worker().run_once()
    assert len(h.history(customer)) == 1
    assert await h.outbox() == {"done": 1}
