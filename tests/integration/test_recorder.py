"""The recorder in process against the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from services.devtools.broker import LocalBroker
from services.devtools.call_flows import answered_call
from services.recorder.app import init_app
from services.recorder.settings import RecorderSettings
from tests.conversation_events import (
    CUSTOMER_SAYS,
    STAFF_SAYS,
    recording_event,
    transcript,
    transcript_event,
)
from tests.integration.recorder_support import publish, query, wait_for_rows
from tests.integration.tcp_proxy import TcpProxy

RecorderFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def make_recorder(
    kafka_broker: LocalBroker, topic: str, database_url: str
) -> AsyncIterator[RecorderFactory]:
    async with AsyncExitStack() as stack:

        async def start(**overrides: object) -> TestClient:
            settings = RecorderSettings(
                **{
                    "kafka_bootstrap": kafka_broker.bootstrap,
                    "kafka_idempotence": False,
                    "kafka_topic": topic,
                    "database_url": database_url,
                    "recorder_group": f"{topic}.recorder",
                    "twilio_caller_id": "+815012345678",
                    **overrides,
                }
            )
            client = await stack.enter_async_context(TestClient(TestServer(init_app(settings))))
            for _ in range(200):
                if (await client.get("/readyz")).status == 200:
                    return client
                await asyncio.sleep(0.05)
            raise AssertionError("recorder never ready")

        yield start


async def read_dlq(
    bootstrap: str, topic: str, expected: int
) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[bytes, dict[str, bytes]]] = []
    try:
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=100)).values():
                out.extend((r.value, dict(r.headers)) for r in records)
            if len(out) >= expected:
                break
    finally:
        await consumer.stop()
    return out


async def test_records_calls_and_dead_letters_poison(
    make_recorder: RecorderFactory, kafka_broker: LocalBroker, topic: str, database_url: str
) -> None:
    await make_recorder()
    good = answered_call(duration_s=61)
    nul = orjson.loads(good[1].encode())
    nul["call_sid"] = "CA\u0000bad"
    huge = orjson.loads(good[1].encode())
    huge["sequence"] = 2**40
    poison = [
        b"not json at all",
        b'{"schema": "calltrail.call-event/9", "kind": "status"}',
        orjson.dumps(nul),
        orjson.dumps(huge),
    ]
    await publish(kafka_broker.bootstrap, topic, [*poison[:2], *good[:3], *poison[2:], *good[3:]])
    await wait_for_rows(database_url, 2)
    await wait_for_rows(
        database_url, 2, sql="SELECT count(*) FROM calls WHERE status = 'completed'"
    )
    [(charge,)] = await query(database_url, "SELECT sum(charge) FROM calls")
    assert charge == Decimal("32.90")

    dead = await read_dlq(kafka_broker.bootstrap, f"{topic}.dlq", 4)
    assert sorted(value for value, _ in dead) == sorted(poison)
    reasons = {headers["reason"].decode() for _, headers in dead}
    assert any("not JSON" in r for r in reasons)
    assert any("unknown schema" in r for r in reasons)
    assert any("NUL" in r for r in reasons)
    assert any("sequence out of range" in r for r in reasons)
    assert all(headers["source"].startswith(topic.encode()) for _, headers in dead)


async def test_database_outage_loses_nothing(
    make_recorder: RecorderFactory, kafka_broker: LocalBroker, topic: str, database_url: str
) -> None:
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (url.host or "127.0.0.1")
    proxy = await TcpProxy(host, url.port or 5432).start()
    via_proxy = url.set(host="127.0.0.1", port=proxy.port, query={}).render_as_string(
        hide_password=False
    )
    recorder = await make_recorder(database_url=via_proxy)

    await publish(kafka_broker.bootstrap, topic, answered_call())
    await wait_for_rows(database_url, 2)

    await proxy.cut()
    during = [event for _ in range(5) for event in answered_call()]
    await publish(kafka_broker.bootstrap, topic, during)
    await asyncio.sleep(1.5)
    ready = await recorder.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["database"] is False
    [(count,)] = await query(database_url, "SELECT count(*) FROM calls")
    assert count == 2

    await proxy.restore()
    await wait_for_rows(database_url, 12)
    await wait_for_rows(
        database_url, 12, sql="SELECT count(*) FROM calls WHERE status = 'completed'"
    )
    [(events,)] = await query(database_url, "SELECT count(*) FROM call_events")
    assert events == 6 * 6
    metrics = await (await recorder.get("/metrics")).text()
    assert "calltrail_recorder_db_failures_total" in metrics
    await proxy.cut()


async def test_two_recorders_share_the_partitions(
    make_recorder: RecorderFactory, kafka_broker: LocalBroker, topic: str, database_url: str
) -> None:
    first = await make_recorder()
    await publish(kafka_broker.bootstrap, topic, answered_call())  # creates the topic
    second = await make_recorder()
    events = [event for _ in range(40) for event in answered_call()]
    await publish(kafka_broker.bootstrap, topic, events)
    await wait_for_rows(
        database_url, 82, sql="SELECT count(*) FROM calls WHERE status = 'completed'"
    )
    [(legs, distinct)] = await query(
        database_url, "SELECT count(*), count(DISTINCT call_sid) FROM calls"
    )
    assert legs == distinct == 82
    [(total,)] = await query(database_url, "SELECT sum(charge) FROM calls")
    assert total == 41 * Decimal("32.90")
    for recorder in (first, second):
        assert (await recorder.get("/readyz")).status == 200


def test_recorder_settings_name_a_missing_database_url(tmp_path: Path) -> None:
    from services.common.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as raised:
        load_settings(
            RecorderSettings,
            "recorder",
            kafka_bootstrap="127.0.0.1:9092",
            calltrail_tariff=tmp_path / "missing.toml",
        )
    message = str(raised.value.code)
    assert "DATABASE_URL is required" in message
    assert "CALLTRAIL_TARIFF is malformed" in message


async def test_a_calls_conversation_through_the_broker(
    make_recorder: RecorderFactory, kafka_broker: LocalBroker, topic: str, database_url: str
) -> None:
    """Recording and transcript events on the topic with the call's status callbacks, in
    Twilio's jumbled order with repeats: stored once, in spoken order, with the speakers; a
    broken transcript to the DLQ with its reason (and never its text), the call unharmed."""
    await make_recorder()
    call = answered_call(duration_s=61)
    root = call[0].root_call_sid
    said = [("inbound_track", STAFF_SAYS), ("outbound_track", CUSTOMER_SAYS)]
    conversation = transcript(root, said, at=call[0].received_at)
    events = [*call, recording_event(root, at=call[0].received_at), *conversation]
    events += conversation[1:3] + call[2:4]  # Twilio repeats some
    random.Random(19).shuffle(events)
    broken = transcript_event(
        root,
        "transcription-content",
        at=call[0].received_at,
        sequence=7,
        track="inbound_track",
        data="{" + STAFF_SAYS,  # not JSON
    )
    await publish(kafka_broker.bootstrap, topic, [*events, broken])
    await wait_for_rows(
        database_url, 1, sql="SELECT count(*) FROM call_transcripts WHERE status = 'complete'"
    )
    await wait_for_rows(database_url, 1, sql="SELECT count(*) FROM recordings")
    rows = await query(database_url, "SELECT call_sid, text FROM call_transcripts")
    assert rows == [(root, f"担当者: {STAFF_SAYS}\nお客様: {CUSTOMER_SAYS}")]
    [(legs,)] = await query(database_url, "SELECT count(*) FROM calls WHERE status = 'completed'")
    assert legs == 2
    dead = await read_dlq(kafka_broker.bootstrap, f"{topic}.dlq", 1)
    assert [headers["reason"] for _, headers in dead] == [b"TranscriptionData is not JSON"]
