"""Helpers for recorder tests: events as the gateway publishes them, and database reads."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common.events import CallEvent
from services.recorder.adapters.repository import make_engine


async def publish(bootstrap: str, topic: str, events: list[CallEvent] | list[bytes]) -> None:
    """Publish in order, acknowledged; sends are pipelined (awaited together per thousand)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        pending = []
        for event in events:
            if isinstance(event, bytes):
                pending.append(await producer.send(topic, event, key=b"poison"))
            else:
                pending.append(await producer.send(topic, event.encode(), key=event.key()))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
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
