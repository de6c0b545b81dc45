"""The broker goes away: callbacks are still answered 204 from the durable spool, and reach the
broker once it is back. Only when the spool cannot be written either does Twilio get 503."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient

from services.devtools.broker import LocalBroker, free_port
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    recording_callback_form,
    status_callback_form,
    transcription_callback_form,
)
from tests.factories import ACCOUNT_SID
from tests.integration.conftest import GatewayFactory, wait_broker


def callback(sequence: int) -> dict[str, str]:
    return status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        status="ringing",
        sequence=sequence,
        from_="client:u_1",
        to="+819012345678",
        direction="inbound",
    )


async def post_all(
    gateway: TestClient,
    twilio: TwilioSigner,
    forms: list[dict[str, str]],
    path: str = "/twilio/status",
) -> list[int]:
    statuses = []
    for form in forms:
        headers, body = twilio.request(path, form)
        statuses.append((await gateway.post(path, data=body, headers=headers)).status)
    return statuses


async def wait_spool_empty(gateway: TestClient, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if (await (await gateway.get("/readyz")).json())["spool_depth"] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("spool never drained")


async def test_broker_down_at_start_then_back(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str
) -> None:
    port = free_port()
    gateway = await make_gateway(
        wait_for_broker=False, kafka_bootstrap=f"127.0.0.1:{port}", publish_timeout_s=1.0
    )
    forms = [callback(i) for i in range(5)]
    assert await post_all(gateway, twilio, forms) == [204] * 5
    ready = await (await gateway.get("/readyz")).json()
    assert ready == {"status": "ready", "broker": False, "spool_depth": 5}

    with LocalBroker(port=port) as broker:
        await wait_broker(gateway, up=True, timeout_s=30)
        await wait_spool_empty(gateway)
        events = await read_all(broker.bootstrap, topic, 5)
    assert sorted(e for e in events) == sorted(f["CallSid"] for f in forms)


async def test_broker_lost_mid_run_nothing_lost(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str
) -> None:
    with LocalBroker() as broker:
        gateway = await make_gateway(kafka_bootstrap=broker.bootstrap, publish_timeout_s=1.0)
        before = [callback(0) for _ in range(3)]
        assert await post_all(gateway, twilio, before) == [204] * 3

        broker.pause()  # the broker hangs: every send times out
        during = [callback(1) for _ in range(10)]
        assert await post_all(gateway, twilio, during) == [204] * 10
        ready = await (await gateway.get("/readyz")).json()
        assert ready["broker"] is False
        assert ready["spool_depth"] == 10

        broker.resume()
        await wait_spool_empty(gateway, timeout_s=30)
        after = [callback(2)]
        assert await post_all(gateway, twilio, after) == [204]
        await wait_broker(gateway, up=True)
        delivered = await read_all(broker.bootstrap, topic, 14)
    # Every event arrived; some spooled ones may also have arrived twice (at-least-once).
    assert {f["CallSid"] for f in before + during + after} == set(delivered)


def conversation_callbacks(call_sid: str) -> list[tuple[str, dict[str, str]]]:
    """A call's recording and transcription callbacks, as Twilio posts them."""
    transcription = new_sid("GT")
    utterances = [
        transcription_callback_form(
            account_sid=ACCOUNT_SID,
            call_sid=call_sid,
            transcription_sid=transcription,
            event=event,
            sequence=sequence,
            track="inbound_track",
            transcript="はい、承知しました",
        )
        for sequence, event in enumerate(
            ["transcription-started", "transcription-content", "transcription-stopped"], 1
        )
    ]
    recording = recording_callback_form(
        account_sid=ACCOUNT_SID, call_sid=call_sid, recording_sid=new_sid("RE"), duration_s=30
    )
    return [*(("/twilio/transcription", u) for u in utterances), ("/twilio/recording", recording)]


async def test_recording_and_transcription_callbacks_spool_while_the_broker_is_frozen(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str
) -> None:
    with LocalBroker() as broker:
        gateway = await make_gateway(kafka_bootstrap=broker.bootstrap, publish_timeout_s=1.0)
        calls = [new_sid() for _ in range(3)]
        broker.pause()
        for call_sid in calls:
            for path, form in conversation_callbacks(call_sid):
                assert await post_all(gateway, twilio, [form], path) == [204]
        ready = await (await gateway.get("/readyz")).json()
        assert ready["spool_depth"] == 12
        broker.resume()
        await wait_spool_empty(gateway, timeout_s=30)
        delivered = await read_all(broker.bootstrap, topic, 12)
    assert set(delivered) == set(calls)
    assert len(delivered) >= 12  # at least once: a spooled event may arrive twice


async def test_neither_broker_nor_spool_means_503(
    make_gateway: GatewayFactory, twilio: TwilioSigner, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    gateway = await make_gateway(
        wait_for_broker=False,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        gateway_spool_path=blocker / "spool.sqlite3",
        publish_timeout_s=1.0,
    )
    headers, body = twilio.request("/twilio/status", callback(0))
    response = await gateway.post("/twilio/status", data=body, headers=headers)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    for path, form in conversation_callbacks(new_sid()):
        assert await post_all(gateway, twilio, [form], path) == [503]
    ready = await gateway.get("/readyz")
    assert ready.status == 503
    assert (await gateway.get("/healthz")).status == 200


async def read_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    from aiokafka import AIOKafkaConsumer

    from services.common.events import decode_event

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    sids: list[str] = []
    try:
        for _ in range(100):
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                sids.extend(decode_event(m.value).call_sid for m in messages)
            if len(sids) >= expected:
                break
    finally:
        await consumer.stop()
    return sids
