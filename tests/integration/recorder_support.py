"""Helpers for recorder tests: events as the gateway publishes them, and database reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.events import CallContext, CallEvent, EventKind
from services.devtools.twilio_player import new_sid, status_callback_form
from services.gateway.callbacks import call_event, status_event
from services.recorder.adapters.repository import make_engine
from tests.conftest import ACCOUNT_SID, CALLER_ID

PSTN_STATUSES = ("initiated", "ringing", "in-progress", "completed")


def call_events(
    to: str = "+819012345678",
    duration_s: int = 61,
    record_id: str = "345",
    at: datetime | None = None,
    app_id: str = "12",
) -> list[CallEvent]:
    """One answered call as the gateway publishes it: the ``dial`` event (from /twiml/voice),
    the PSTN leg's four callbacks and the browser leg's completion."""
    parent, child = new_sid(), new_sid()
    stamp = at or datetime.now(UTC)
    query = {"app_id": app_id, "record_id": record_id, "identity": "u_1"}
    dial = call_event(
        EventKind.DIAL,
        {"CallSid": parent, "CallStatus": "ringing", "From": "client:u_1", "To": to},
        CallContext(app_id=app_id, record_id=record_id, identity="u_1"),
        stamp,
    )
    events = [dial] + [
        status_event(
            status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=child,
                parent_call_sid=parent,
                status=status,
                sequence=sequence,
                from_=CALLER_ID,
                to=to,
                direction="outbound-dial",
                duration_s=duration_s if status == "completed" else None,
                timestamp=stamp,
            ),
            query,
            stamp,
        )
        for sequence, status in enumerate(PSTN_STATUSES)
    ]
    events.append(
        status_event(
            status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=parent,
                status="completed",
                sequence=None,
                from_="client:u_1",
                to=to,
                direction="inbound",
                duration_s=duration_s,
                timestamp=stamp,
            ),
            {},
            stamp,
        )
    )
    return events


async def publish(bootstrap: str, topic: str, events: list[CallEvent] | list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for event in events:
            if isinstance(event, bytes):
                await producer.send_and_wait(topic, event, key=b"poison")
            else:
                await producer.send_and_wait(topic, event.encode(), key=event.key())
    finally:
        await producer.stop()


async def query(database_url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.exec_driver_sql(sql, args)]
    finally:
        await engine.dispose()


async def wait_for_rows(
    database_url: str,
    expected: int,
    timeout_s: float = 30.0,
    sql: str = "SELECT count(*) FROM calls",
) -> int:
    count = 0
    for _ in range(int(timeout_s / 0.1)):
        [(count,)] = await query(database_url, sql)
        if count >= expected:
            return count
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} rows, expected {expected}")
