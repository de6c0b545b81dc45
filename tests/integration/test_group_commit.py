"""Group commit against the real broker: many concurrent callbacks, each answered 204 only once
its group is acknowledged (or spooled), all of them on the topic; and the ``dial`` events that
/twiml/voice does not wait for are stored all the same, by the broker or, at shutdown with the
broker away, by the spool, from which the next gateway delivers them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.devtools.broker import LocalBroker
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    status_callback_form,
    voice_request_form,
)
from services.gateway.adapters.spool import Spool
from services.gateway.app import init_app
from services.gateway.settings import GatewaySettings
from tests.conftest import ReadEvents
from tests.factories import ACCOUNT_SID, APP_SID
from tests.integration.conftest import GatewayFactory, wait_broker
from tests.integration.test_broker_outage import read_all, wait_spool_empty


def callback(call_sid: str, parent: str | None, sequence: int) -> dict[str, str]:
    return status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=call_sid,
        parent_call_sid=parent,
        status="ringing",
        sequence=sequence,
        from_="+815012345678",
        to="+819012345678",
        direction="outbound-dial",
    )


async def post(client: TestClient, twilio: TwilioSigner, path: str, form: dict[str, str]) -> int:
    headers, body = twilio.request(path, form)
    response = await client.post(path, data=body, headers=headers)
    await response.read()
    return response.status


async def published(client: TestClient) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    out = {}
    for line in text.splitlines():
        if line.startswith("calltrail_events_published_total{"):
            labels, _, value = line.partition(" ")
            out[labels.split('"')[1]] = float(value)
    return out


@pytest.mark.parametrize("hot", [False, True], ids=["spread", "one-hot-call"])
async def test_concurrent_callbacks_are_all_answered_and_all_on_the_topic(
    gateway: TestClient, twilio: TwilioSigner, topic: str, read_events: ReadEvents, hot: bool
) -> None:
    parent = new_sid() if hot else None
    forms = [callback(new_sid(), parent, n) for n in range(300)]
    statuses = await asyncio.gather(*(post(gateway, twilio, "/twilio/status", f) for f in forms))
    assert statuses == [204] * 300
    assert (await published(gateway)).get("broker") == 300
    events = await read_events(topic, 300, timeout_s=20)
    assert sorted(e.call_sid for _key, e in events) == sorted(f["CallSid"] for f in forms)
    if hot:
        assert {key for key, _e in events} == {parent.encode()}  # type: ignore[union-attr]


async def test_no_204_before_the_broker_acknowledged(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str
) -> None:
    with LocalBroker() as broker:
        gateway = await make_gateway(kafka_bootstrap=broker.bootstrap, publish_timeout_s=10.0)
        broker.pause()
        forms = [callback(new_sid(), None, n) for n in range(40)]
        posts = [asyncio.create_task(post(gateway, twilio, "/twilio/status", f)) for f in forms]
        await asyncio.sleep(1.5)
        assert not any(p.done() for p in posts), "answered while the broker could not ack"
        broker.resume()
        assert await asyncio.gather(*posts) == [204] * 40
        assert (await published(gateway)).get("broker") == 40
        delivered = await read_all(broker.bootstrap, topic, 40)
    assert {f["CallSid"] for f in forms} <= set(delivered)


async def test_a_group_the_broker_does_not_ack_is_spooled_event_by_event(
    make_gateway: GatewayFactory, twilio: TwilioSigner, topic: str
) -> None:
    with LocalBroker() as broker:
        gateway = await make_gateway(kafka_bootstrap=broker.bootstrap, publish_timeout_s=1.0)
        broker.pause()
        forms = [callback(new_sid(), None, n) for n in range(50)]
        statuses = await asyncio.gather(
            *(post(gateway, twilio, "/twilio/status", f) for f in forms)
        )
        assert statuses == [204] * 50
        counts = await published(gateway)
        assert counts.get("spool") == 50
        assert counts.get("broker", 0) == 0
        ready = await (await gateway.get("/readyz")).json()
        assert ready["spool_depth"] == 50
        broker.resume()
        await wait_spool_empty(gateway, timeout_s=30)
        delivered = await read_all(broker.bootstrap, topic, 50)
    assert {f["CallSid"] for f in forms} <= set(delivered)


def voice(call_sid: str) -> dict[str, str]:
    return voice_request_form(
        account_sid=ACCOUNT_SID,
        call_sid=call_sid,
        identity="u_1",
        to="090-1234-5678",
        app_sid=APP_SID,
        AppId="12",
        RecordId="345",
    )


async def test_dial_events_not_waited_for_are_flushed_at_shutdown(
    gateway_settings: GatewaySettings, twilio: TwilioSigner, topic: str, read_events: ReadEvents
) -> None:
    sids = [new_sid() for _ in range(100)]
    async with TestClient(TestServer(init_app(gateway_settings))) as client:
        await wait_broker(client)
        statuses = await asyncio.gather(
            *(post(client, twilio, "/twiml/voice", voice(s)) for s in sids)
        )
        assert statuses == [200] * 100
    # The gateway has shut down (its cleanup closed the publisher) right after answering.
    events = await read_events(topic, 100, timeout_s=20)
    assert sorted(e.call_sid for _k, e in events) == sorted(sids)


async def test_dial_events_queued_at_shutdown_without_a_broker_reach_it_from_the_spool(
    gateway_settings: GatewaySettings, twilio: TwilioSigner, topic: str, tmp_path: Path
) -> None:
    spool_path = tmp_path / "spool.sqlite3"
    sids = [new_sid() for _ in range(20)]
    with LocalBroker() as broker:
        settings = gateway_settings.model_copy(
            update={
                "kafka_bootstrap": broker.bootstrap,
                "publish_timeout_s": 1.0,
                "gateway_spool_path": spool_path,
            }
        )
        async with TestClient(TestServer(init_app(settings))) as client:
            await wait_broker(client)
            broker.pause()
            statuses = await asyncio.gather(
                *(post(client, twilio, "/twiml/voice", voice(s)) for s in sids)
            )
            assert statuses == [200] * 20  # answered at once, broker or not
        spool = Spool(spool_path)
        await spool.open()
        assert spool.depth == 20
        spool.close()

        broker.resume()
        async with TestClient(TestServer(init_app(settings))) as client:
            await wait_broker(client)
            await wait_spool_empty(client, timeout_s=30)
        delivered = await read_all(broker.bootstrap, topic, 20)
    assert set(sids) <= set(delivered)
