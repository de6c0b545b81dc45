"""What an operator reads: both services' logs, as processes write them, for a batch of calls.

Every line is one JSON object; every line that mentions a CallSid names the call in a field
(``call_sid``, ``parent_call_sid`` or ``call_sids``), so one ``jq`` select tells a call's story;
no secret appears anywhere, whatever the log level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from services.devtools.broker import LocalBroker, free_port
from services.devtools.kintone_standin import KintoneDomain, KintoneStandin, add_customer_app
from services.devtools.simulate import Simulator, plan_calls
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    status_callback_form,
    voice_request_form,
)
from tests.e2e.conftest import recorder_env, start_gateway, start_recorder, subtable_writeback_env
from tests.factories import (
    ACCOUNT_SID,
    API_SECRET,
    APP_SID,
    AUTH_TOKEN,
    CALLER_ID,
    KINTONE_ORIGIN,
    TOKEN_KEY,
)
from tests.integration.recorder_support import query

APP = 12
KINTONE_TOKEN = "token-customers-secret"
CALL_SID_TEXT = re.compile(r"CA[0-9a-f]{32}")
CALL_FIELDS = ("call_sid", "parent_call_sid")


def read_log(path: Path) -> list[dict[str, Any]]:
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from None
        assert isinstance(entry, dict), line
        assert {"event", "level", "timestamp"} <= entry.keys(), line
        lines.append(entry)
    return lines


def named_calls(entry: dict[str, Any]) -> set[str]:
    named = {entry[f] for f in CALL_FIELDS if isinstance(entry.get(f), str)}
    return named | set(entry.get("call_sids") or ())


def story(entries: list[dict[str, Any]], call_sid: str) -> list[str]:
    """What `jq 'select(.call_sid == $sid or .parent_call_sid == $sid or ...)'` shows."""
    return [e["event"] for e in entries if call_sid in named_calls(e)]


async def publish_poison(bootstrap: str, topic: str, key: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{not json", key=key.encode())
    finally:
        await producer.stop()


async def test_every_line_is_json_names_its_call_and_hides_secrets(
    kafka_broker: LocalBroker,
    topic: str,
    database_url: str,
    twilio: TwilioSigner,
    tmp_path: Path,
) -> None:
    domain = KintoneDomain()
    add_customer_app(domain, APP, KINTONE_TOKEN, records=400)
    gateway, base = await asyncio.to_thread(
        start_gateway, kafka_broker.bootstrap, topic, tmp_path, log_level="DEBUG"
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(asyncio.to_thread, gateway.stop)
        kintone = await stack.enter_async_context(KintoneStandin(domain))
        recorder_settings = recorder_env(kafka_broker.bootstrap, topic, database_url, free_port())
        env = recorder_settings | subtable_writeback_env(
            kintone.base_url, KINTONE_TOKEN, LOG_LEVEL="DEBUG"
        )
        recorder = None
        try:
            recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder.log")
            # Calls to 050 numbers have no rate in the default tariff: some leg is unrated.
            calls = plan_calls(30, seed=21)
            assert any(c.destination == "ip_phone" and c.outcome == "completed" for c in calls)
            simulator = Simulator(
                base, twilio, account_sid=ACCOUNT_SID, app_sid=APP_SID, caller_id=CALLER_ID
            )
            summary = await simulator.run(calls, concurrency=4, progress=False)
            assert summary.failures == []

            refused_sid, forged_sid, poison_sid = new_sid(), new_sid(), new_sid()
            async with aiohttp.ClientSession() as session:
                voice = voice_request_form(
                    account_sid=ACCOUNT_SID,
                    call_sid=refused_sid,
                    identity="u_1",
                    to="0990-123-456",  # premium rate: refused
                    app_sid=APP_SID,
                    AppId=str(APP),
                    RecordId="1",
                )
                headers, body = twilio.request("/twiml/voice", voice)
                async with session.post(f"{base}/twiml/voice", data=body, headers=headers) as r:
                    assert r.status == 200
                    assert "<Hangup" in await r.text()
                forged = status_callback_form(
                    account_sid=ACCOUNT_SID,
                    call_sid=forged_sid,
                    status="completed",
                    sequence=3,
                    from_=CALLER_ID,
                    to="+819012345678",
                    direction="outbound-dial",
                )
                headers, body = twilio.request("/twilio/status", forged)
                headers["X-Twilio-Signature"] = "forged" + headers["X-Twilio-Signature"][6:]
                async with session.post(f"{base}/twilio/status", data=body, headers=headers) as r:
                    assert r.status == 403
                # After the calls, on the same keep-alive connections: no call_sid leaks in.
                async with session.post(
                    f"{base}/token",
                    json={"identity": "u_1"},
                    headers={"X-Calltrail-Key": TOKEN_KEY, "Origin": KINTONE_ORIGIN},
                ) as r:
                    assert r.status == 200
            await publish_poison(kafka_broker.bootstrap, topic, poison_sid)

            written: list[str] = []
            for _ in range(300):
                rows = await query(
                    database_url, "SELECT call_sid FROM kintone_outbox WHERE state = 'done'"
                )
                written = [row[0] for row in rows]
                if len(written) >= len(calls):
                    break
                await asyncio.sleep(0.1)
            assert sorted(written) == sorted(c.parent_sid for c in calls)
            for _ in range(100):
                if "event_dead_lettered" in (tmp_path / "recorder.log").read_text():
                    break
                await asyncio.sleep(0.1)
        finally:
            if recorder is not None:
                await asyncio.to_thread(recorder.stop)

    gateway_log = read_log(tmp_path / "gateway.log")
    recorder_log = read_log(tmp_path / "recorder.log")
    for entry in gateway_log + recorder_log:
        mentioned = set(CALL_SID_TEXT.findall(json.dumps(entry)))
        if mentioned:
            assert named_calls(entry), f"a line about a call does not name it: {entry}"

    text = (tmp_path / "gateway.log").read_text() + (tmp_path / "recorder.log").read_text()
    for secret in (AUTH_TOKEN, API_SECRET, TOKEN_KEY, KINTONE_TOKEN):
        assert secret not in text

    for call in calls:
        gateway_story = story(gateway_log, call.parent_sid)
        assert gateway_story.count("status_callback") >= 2, gateway_story  # both legs
        assert "dialling" in gateway_story
        assert story(recorder_log, call.parent_sid).count("kintone_call_written") == 1
    unrated = [e for e in recorder_log if e["event"] == "leg_unrated"]
    assert unrated
    assert {e["destination_type"] for e in unrated} == {"ip_phone"}
    assert all(e["parent_call_sid"] in {c.parent_sid for c in calls} for e in unrated)

    assert story(gateway_log, refused_sid) == ["dial_refused"]
    assert story(gateway_log, forged_sid) == ["twilio_signature_invalid"]
    (invalid,) = [e for e in gateway_log if e["event"] == "twilio_signature_invalid"]
    assert invalid["url"] == "https://calltrail.example.com/twilio/status"
    assert story(recorder_log, poison_sid) == ["event_dead_lettered"]

    (token,) = [e for e in gateway_log if e["event"] == "token_issued"]
    assert not named_calls(token)
