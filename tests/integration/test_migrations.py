"""Alembic: upgrade and downgrade on an empty database, and no drift from the models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from services.devtools.postgres import LocalPostgres
from services.recorder.adapters.migrations import downgrade, upgrade
from services.recorder.adapters.repository import make_engine
from services.recorder.adapters.tables import metadata

TABLES = {
    "calls",
    "call_events",
    "numbers",
    "tariffs",
    "kintone_outbox",
    "recordings",
    "transcriptions",
    "transcript_segments",
}
VIEWS = {"monthly_charges", "call_transcripts"}


@pytest.fixture
def empty_database(postgres: LocalPostgres) -> Iterator[str]:
    name = f"calltrail_empty_{uuid.uuid4().hex[:10]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


async def relations(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
            return {row[0] for row in rows} - {"alembic_version"}
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    await asyncio.to_thread(upgrade, empty_database)
    assert await relations(empty_database) == TABLES | VIEWS
    await asyncio.to_thread(downgrade, empty_database)
    assert await relations(empty_database) == set()
    await asyncio.to_thread(upgrade, empty_database)
    assert await relations(empty_database) == TABLES | VIEWS


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: (
                    not (type_ == "table" and name in VIEWS)
                ),
            },
        )
        return compare_metadata(context, metadata)

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_0004_gives_existing_legs_a_direction_and_shares_line_ids(
    empty_database: str,
) -> None:
    """Rows recorded before inbound calls: Twilio's Direction moves to twilio_direction; legs of
    calls whose root is SIP or not from a browser become inbound, the rest outbound."""
    await asyncio.to_thread(upgrade, empty_database, "0003")
    engine = make_engine(empty_database)
    rows = [
        # call_sid, parent, leg, direction (Twilio's), from, line_user_id
        ("CAb", None, "browser", "inbound", "client:u_1", None),
        ("CAp", "CAb", "pstn", "outbound-dial", "+815012345678", None),
        ("CAi", None, "pstn", "inbound", "+819011112222", None),
        ("CAc", "CAi", "browser", "outbound-dial", "+819011112222", None),
        ("CAs", None, "sip", "inbound", "sip:x@calltrail.sip.twilio.com", "Uabc"),
        ("CAsc", "CAs", "browser", "outbound-dial", "sip:x@calltrail.sip.twilio.com", None),
        ("CAo", "CAgone", "pstn", "outbound-dial", "+815012345678", None),
    ]
    try:
        async with engine.begin() as conn:
            for row in rows:
                await conn.exec_driver_sql(
                    "INSERT INTO calls (call_sid, parent_call_sid, leg, destination_type, status,"
                    " status_sequence, direction, from_number, line_user_id)"
                    " VALUES ($1, $2, $3, 'unknown', 'completed', 0, $4, $5, $6)",
                    row,
                )
        await asyncio.to_thread(upgrade, empty_database)
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT call_sid, direction, twilio_direction, line_user_id FROM calls"
            )
            found = {sid: (d, t, line) for sid, d, t, line in result}
    finally:
        await engine.dispose()
    assert found == {
        "CAb": ("outbound", "inbound", None),
        "CAp": ("outbound", "outbound-dial", None),
        "CAi": ("inbound", "inbound", None),
        "CAc": ("inbound", "outbound-dial", None),
        "CAs": ("inbound", "inbound", "Uabc"),
        "CAsc": ("inbound", "outbound-dial", "Uabc"),
        "CAo": ("outbound", "outbound-dial", None),
    }
