"""The repository against real PostgreSQL: order, duplicates, charges, re-rating, the view."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.devtools.call_flows import answered_call
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.domain.batch import ReceivedEvent
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.service_layer.recording import BatchOutcome, CallRecorder, rerate_month
from services.recorder.settings import DEFAULT_TARIFF
from tests.integration.recorder_support import query

TOKYO = ZoneInfo("Asia/Tokyo")
NOV = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def received(events):  # type: ignore[no-untyped-def]
    return [ReceivedEvent(e, e.encode().decode()) for e in events]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


class Recording:
    """The use case on the real repository, as the consumer and `calltrail rerate` use it."""

    def __init__(self, engine: AsyncEngine, tariff_text: str | None) -> None:
        self.repository = CallRepository(engine)
        self.recorder = CallRecorder(
            self.repository, parse_tariffs(tariff_text or DEFAULT_TARIFF.read_text()), TOKYO
        )

    async def record(self, items: list[ReceivedEvent]) -> BatchOutcome:
        return await self.recorder.record_events(items)

    async def rerate(self, month: date) -> tuple[int, int]:
        return await rerate_month(self.repository, self.recorder.tariffs, TOKYO, month)

    async def hold_number(self, e164: str, since: date) -> None:
        await self.repository.hold_number(e164, since)


async def make_repository(engine: AsyncEngine, tariff_text: str | None = None) -> Recording:
    recording = Recording(engine, tariff_text)
    await recording.repository.store_tariffs(recording.recorder.tariffs)
    return recording


async def test_any_order_any_repeats_same_rows_and_charges(
    database_url: str, engine: AsyncEngine
) -> None:
    repository = await make_repository(engine)
    events = answered_call(to="+819012345678", duration_s=61, at=NOV)
    shuffled = events + events[:3]
    random.Random(7).shuffle(shuffled)
    # Split over three batches, as three polls of the consumer would.
    for batch in (shuffled[:3], shuffled[3:6], shuffled[6:]):
        await repository.record(received(batch))
    again = await repository.record(received(events))
    assert again.new_events == 0
    assert again.duplicate_events == len(events)

    rows = await query(
        database_url,
        "SELECT leg, destination_type, status, duration_s, billable_minutes, charge, currency,"
        " billing_month, kintone_app_id, kintone_record_id, user_identity FROM calls ORDER BY leg",
    )
    assert rows == [
        (
            "browser",
            "client",
            "completed",
            61,
            2,
            Decimal("0.50"),
            "JPY",
            date(2026, 11, 1),
            "12",
            "345",
            "u_1",
        ),
        (
            "pstn",
            "mobile",
            "completed",
            61,
            2,
            Decimal("32.4"),
            "JPY",
            date(2026, 11, 1),
            "12",
            "345",
            "u_1",
        ),
    ]
    [(count,)] = await query(database_url, "SELECT count(*) FROM call_events")
    assert count == len(events)


async def test_unrated_destination_is_null_then_rerated(
    database_url: str, engine: AsyncEngine
) -> None:
    repository = await make_repository(engine)
    outcome = await repository.record(
        received(answered_call(to="+815098765432", duration_s=30, at=NOV))
    )
    assert [leg.destination_type.value for leg in outcome.unrated_legs] == ["ip_phone"]
    [(charge, minutes)] = await query(
        database_url, "SELECT charge, billable_minutes FROM calls WHERE leg = 'pstn'"
    )
    assert charge is None  # unrated: never zero
    assert minutes == 1

    fixed = DEFAULT_TARIFF.read_text().replace(
        'mobile = "16.2"', 'mobile = "16.2"\nip_phone = "10.8"'
    )
    repository = await make_repository(engine, fixed)
    legs, unrated = await repository.rerate(date(2026, 11, 1))
    assert (legs, unrated) == (2, 0)
    [(charge,)] = await query(database_url, "SELECT charge FROM calls WHERE leg = 'pstn'")
    assert charge == Decimal("10.8")


async def test_monthly_charges_view_adds_number_rental(
    database_url: str, engine: AsyncEngine
) -> None:
    repository = await make_repository(engine)
    await repository.hold_number("+815012345678", date(2026, 10, 15))
    await repository.hold_number("+815011112222", date(2026, 11, 1))
    await repository.record(received(answered_call(to="+81312345678", duration_s=125, at=NOV)))
    rows = await query(
        database_url,
        "SELECT month, usage_charge, rental_charge, total, currency FROM monthly_charges"
        " WHERE month IN ('2026-10-01', '2026-11-01') ORDER BY month",
    )
    usage = 3 * Decimal("5.4") + 3 * Decimal("0.25")
    assert rows == [
        (date(2026, 10, 1), Decimal(0), Decimal("108"), Decimal("108"), "JPY"),
        (date(2026, 11, 1), usage, Decimal("216"), usage + 216, "JPY"),
    ]


async def test_a_number_held_since_this_month_is_charged_whatever_the_session_time_zone(
    engine: AsyncEngine,
) -> None:
    """The recorder holds its number from the first of the month in Tokyo. For nine hours at
    every month's end Tokyo is in the next month while UTC is not; the view must still charge
    that month (it once stopped at the session's current_date, and charged nothing)."""
    repository = await make_repository(engine)
    month = datetime.now(ZoneInfo("Pacific/Kiritimati")).date().replace(day=1)  # UTC+14
    await repository.hold_number("+815012345678", month)
    async with engine.connect() as conn:
        for zone in ("Etc/GMT+12", "UTC", "Asia/Tokyo", "Pacific/Kiritimati"):
            await conn.exec_driver_sql(f"SET TIME ZONE '{zone}'")
            result = await conn.exec_driver_sql(
                "SELECT rental_charge FROM monthly_charges WHERE month = $1", (month,)
            )
            assert result.all() == [(Decimal("108"),)], zone


async def test_call_belongs_to_the_month_it_started_in_tokyo(
    database_url: str, engine: AsyncEngine
) -> None:
    repository = await make_repository(engine)
    late_october_utc = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 2026-11-01 00:30 in Tokyo
    await repository.record(received(answered_call(duration_s=10, at=late_october_utc)))
    months = await query(database_url, "SELECT DISTINCT billing_month FROM calls")
    assert months == [(date(2026, 11, 1),)]
