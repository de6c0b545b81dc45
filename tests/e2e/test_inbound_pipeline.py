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
from services.devtools.simulate import (
    HANG_UP_SHARE,
    SCRIPTS,
    PlannedInbound,
    Simulator,
    plan_inbound_calls,
)
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


async def test_missed_calls_and_voicemails_land_on_their_records_each_told_once(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    """CONTRACT.md section 12 end to end: simulated callers who hang up while it rings, leave
    a message, or say nothing at the beep, through the gateway (VOICEMAIL=on, transcribed),
    the recorder and kintone's stand-in: 不在着信 or 留守電 on each matched record, and one
    comment per missed call and record, mentioning MISSED_CALL_NOTIFY."""
    calls = plan_inbound_calls(16, seed=29, hang_ups=HANG_UP_SHARE)
    domain = KintoneDomain()
    add_customer_app(domain, APP, "token-customers")
    domain.add_entity("sato")
    expected = customers_for(calls, domain)
    by_sid = {c.parent_sid: c for c in calls}

    def result(call: PlannedInbound) -> str:
        if call.answered:
            return "completed"
        return "留守電" if not call.hangs_up and call.leaves_message else "不在着信"

    wanted = {sid: result(by_sid[sid]) for sid in expected}
    assert set(wanted.values()) == {"completed", "留守電", "不在着信"}
    assert any(by_sid[sid].hangs_up for sid in expected)
    assert any(not c.answered and not c.hangs_up and not c.leaves_message for c in calls)

    gateway, base = await asyncio.to_thread(
        start_gateway,
        kafka_broker.bootstrap,
        topic,
        tmp_path,
        ring_identities=["kintone_1", "kintone_2"],
        ring_timeout_s=15,
        voicemail="on",
        transcription="on",
    )
    async with KintoneStandin(domain) as kintone:
        env = recorder_env(
            kafka_broker.bootstrap, topic, database_url, free_port()
        ) | subtable_writeback_env(
            kintone.base_url, KINTONE_CUSTOMER_APP=str(APP), MISSED_CALL_NOTIFY="sato"
        )
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
            outcomes = {outcome.split()[1] for outcome in summary.inbound}
            assert {"answered", "hung-up", "voicemail", "voicemail-silent"} <= outcomes

            def written() -> dict[str, str]:
                found = {}
                for record_id in set(expected.values()):
                    for row in domain.record(APP, record_id)["通話履歴"]["value"]:
                        cells = row["value"]
                        found[cells["CallSid"]["value"]] = cells["通話結果"]["value"]
                return found

            def told() -> Counter[str]:
                return Counter(
                    sid
                    for sid, record_id in expected.items()
                    for comment in domain.comments(APP, record_id)
                    if sid in comment["text"]
                )

            missed = {sid for sid, value in wanted.items() if value != "completed"}
            for _ in range(300):
                if written() == wanted and set(told()) == missed:
                    break
                await asyncio.sleep(0.1)
            assert written() == wanted
            await asyncio.sleep(1)  # a second comment, if one were coming, would be in by now
            assert told() == Counter(dict.fromkeys(missed, 1))  # exactly one each
            for sid in missed:
                [comment] = [c for c in domain.comments(APP, expected[sid]) if sid in c["text"]]
                assert comment["mentions"] == [{"code": "sato", "type": "USER"}]
                lines = comment["text"].splitlines()
                assert f"{wanted[sid]}がありました。" in lines
                if wanted[sid] == "留守電":
                    # The message's first lines, as the caller said them.
                    assert f"  {SCRIPTS['voicemail'][0][1]}" in lines
        finally:
            await asyncio.to_thread(recorder.stop)
            await asyncio.to_thread(gateway.stop)
