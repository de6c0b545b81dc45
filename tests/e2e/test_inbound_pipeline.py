"""Inbound calls end to end: Twilio's side played into the gateway process (the company number
and LINE, answered or missed), the broker, the recorder process, and kintone's stand-in — each
call lands once on the customer records it matches, and the rest are listed as unmatched."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import phonenumbers

from services.devtools.broker import LocalBroker, free_port
from services.devtools.kintone_standin import KintoneDomain, KintoneStandin, add_customer_app
from services.devtools.simulate import PlannedInbound, Simulator, plan_inbound_calls
from services.devtools.twilio_player import TwilioSigner
from tests.e2e.conftest import recorder_env, start_gateway, start_recorder, subtable_writeback_env
from tests.e2e.test_kintone import calltrail
from tests.factories import ACCOUNT_SID, APP_SID, AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.recorder_support import query

APP = 12


def as_written(e164: str) -> str:
    """The number as people write it in kintone: national, with hyphens (090-1234-5678)."""
    number = phonenumbers.parse(e164)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def customers_for(calls: list[PlannedInbound], domain: KintoneDomain) -> dict[str, int]:
    """One customer record per caller who can be matched: CallSid → record id."""
    records: dict[str, int] = {}
    by_caller: dict[str, int] = {}
    for call in calls:
        if call.kind == "line":
            key, cells = call.line_user_id, {"LINEユーザーID": {"value": call.line_user_id}}
        elif call.caller.startswith("+81") and call.caller != "+266696687":
            key, cells = call.caller, {"電話番号": {"value": as_written(call.caller)}}
        else:
            continue
        if key is None:
            continue  # a LINE call whose header carried no readable id
        if key not in by_caller:
            by_caller[key] = domain.add_record(APP, {"顧客名": {"value": key}, **cells})
        records[call.parent_sid] = by_caller[key]
    return records


async def test_inbound_calls_through_gateway_broker_recorder_and_kintone(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    calls = plan_inbound_calls(16, seed=23)
    domain = KintoneDomain()
    add_customer_app(domain, APP, "token-customers")
    expected = customers_for(calls, domain)
    unmatched = {c.parent_sid for c in calls} - set(expected)
    assert expected
    assert unmatched  # the plan has withheld callers and unreadable LINE headers too

    gateway, base = await asyncio.to_thread(
        start_gateway,
        kafka_broker.bootstrap,
        topic,
        tmp_path,
        ring_identities=["kintone_1", "kintone_2"],
        ring_timeout_s=15,
    )
    async with KintoneStandin(domain) as kintone:
        env = recorder_env(
            kafka_broker.bootstrap, topic, database_url, free_port()
        ) | subtable_writeback_env(kintone.base_url, KINTONE_CUSTOMER_APP=str(APP))
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder.log")
        try:
            simulator = Simulator(
                base,
                TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL),
                account_sid=ACCOUNT_SID,
                app_sid=APP_SID,
                caller_id=CALLER_ID,
            )
            summary = await simulator.run([], progress=False, inbound=calls)
            assert summary.failures == []

            wanted = Counter(expected.values())
            counts: dict[int, int] = {}
            for _ in range(300):
                counts = {r: len(domain.record(APP, r)["通話履歴"]["value"]) for r in wanted}
                if counts == dict(wanted):
                    break
                await asyncio.sleep(0.1)
            assert counts == dict(wanted)
            for call_sid, record_id in expected.items():
                rows = domain.record(APP, record_id)["通話履歴"]["value"]
                [row] = [r for r in rows if r["value"]["CallSid"]["value"] == call_sid]
                assert row["value"]["発着信"]["value"] == "着信"

            out = ""
            for _ in range(100):
                _code, out = await calltrail("kintone", "status", env=env)
                if f"unmatched {len(unmatched)}" in out:
                    break
                await asyncio.sleep(0.1)
            lines = out.splitlines()
            at = lines.index(f"unmatched {len(unmatched)}")
            assert {line.strip() for line in lines[at + 1 : at + 1 + len(unmatched)]} == unmatched
        finally:
            await asyncio.to_thread(recorder.stop)
            await asyncio.to_thread(gateway.stop)

    [(directions,)] = await query(database_url, "SELECT array_agg(DISTINCT direction) FROM calls")
    assert directions == ["inbound"]
    # At most one lookup per inbound call (none for a caller there is nothing to go by).
    assert domain.request_count(APP, method="GET", path="/records.json") <= len(calls)
