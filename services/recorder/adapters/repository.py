"""Call legs in PostgreSQL: one transaction per batch of events, set-based statements.

Per batch: insert the events (deduplicated by key; repeats are skipped), lock and load the
legs they touch, merge in the pure domain, price the legs that ended, upsert them. Applying a
batch twice changes nothing, so a crash between this commit and the Kafka offset commit only
costs a replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.common.database import async_url
from services.common.events import CallEvent, CallStatus
from services.common.numbers import DestinationType
from services.recorder.domain.charges import billing_month, charge_leg, leg_started
from services.recorder.domain.legs import CallLeg, Leg, apply_event, merge_legs
from services.recorder.domain.tariff import TariffBook

LEG_COLUMNS = (
    "call_sid",
    "parent_call_sid",
    "leg",
    "destination_type",
    "status",
    "status_sequence",
    "direction",
    "from_number",
    "to_number",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_s",
    "kintone_app_id",
    "kintone_record_id",
    "user_identity",
    "line_user_id",
)
PRICE_COLUMNS = (
    "billable_minutes",
    "charge",
    "currency",
    "rate",
    "tariff_effective_from",
    "billing_month",
)
_TYPES = {
    "status_sequence": "int",
    "started_at": "timestamptz",
    "answered_at": "timestamptz",
    "ended_at": "timestamptz",
    "duration_s": "int",
    "billable_minutes": "int",
    "charge": "numeric",
    "rate": "numeric",
    "tariff_effective_from": "date",
    "billing_month": "date",
}
ALL_COLUMNS = LEG_COLUMNS + PRICE_COLUMNS
CHARGE = ALL_COLUMNS.index("charge")

# New events only: repeats are skipped by key. Payloads travel as text and are cast in SQL,
# which spares a Python-level JSON encoder call per event.
INSERT_EVENTS = """
INSERT INTO call_events
    (event_key, call_sid, root_call_sid, kind, status, sequence, received_at, payload)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
    $7::timestamptz[], $8::text[]::json[])
ON CONFLICT (event_key) DO NOTHING
"""
# Column names below are module constants, never input: the f-strings cannot inject.
_SELECT_LEGS = f"SELECT {', '.join(LEG_COLUMNS)} FROM calls"  # noqa: S608
SELECT_LEGS = f"{_SELECT_LEGS} WHERE call_sid = ANY($1::text[]) ORDER BY call_sid FOR UPDATE"
SELECT_MONTH_LEGS = f"{_SELECT_LEGS} WHERE billing_month = $1 ORDER BY call_sid FOR UPDATE"
UPSERT_LEGS = (
    f"INSERT INTO calls ({', '.join(ALL_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(ALL_COLUMNS, 1))
    + ") ON CONFLICT (call_sid) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ALL_COLUMNS[1:])
    + ", updated_at = now()"
)


# A write-back job per call whose leg just ended, in the same transaction (transactional
# outbox). The call's kintone record comes from any of its legs (the dial event's or the
# callback query's context); calls without one (inbound LINE calls) get no job.
INSERT_OUTBOX = """
INSERT INTO kintone_outbox (call_sid, kintone_app_id, kintone_record_id, available_at)
SELECT coalesce(parent_call_sid, call_sid), max(kintone_app_id), max(kintone_record_id),
       now() + make_interval(secs => $2)
FROM calls
WHERE call_sid = ANY($1::text[]) OR parent_call_sid = ANY($1::text[])
GROUP BY 1
HAVING max(kintone_app_id) IS NOT NULL AND max(kintone_record_id) IS NOT NULL
ON CONFLICT (call_sid) DO NOTHING
"""


@dataclass(slots=True)  # not frozen: one per consumed event (see CallLeg)
class ReceivedEvent:
    event: CallEvent
    payload: str  # the event's JSON exactly as it came off the topic


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    event_columns: tuple[list[object], ...]  # the distinct events, column by column (unnest)
    partial_legs: dict[str, CallLeg]  # each leg as this batch's events describe it
    received: int
    unique: int


@dataclass(slots=True)
class BatchOutcome:
    new_events: int = 0
    duplicate_events: int = 0
    legs_written: int = 0
    ended_legs: list[CallLeg] = field(default_factory=list)  # ended in this batch
    unrated_legs: list[CallLeg] = field(default_factory=list)  # of those, no rate


def event_key(event: CallEvent) -> str:
    """Twilio repeats callbacks verbatim; (leg, kind, status, sequence) identifies one."""
    sequence = "-" if event.sequence is None else str(event.sequence)
    return f"{event.call_sid}:{event.kind.value}:{event.status.value}:{sequence}"


def make_engine(database_url: str, **kwargs: object) -> AsyncEngine:
    return create_async_engine(async_url(database_url), pool_pre_ping=True, **kwargs)  # type: ignore[arg-type]


def _leg_from_row(row: Sequence[object]) -> CallLeg:
    values = dict(zip(LEG_COLUMNS, row, strict=True))
    values["leg"] = Leg(values["leg"])
    values["destination_type"] = DestinationType(values["destination_type"])
    values["status"] = CallStatus(values["status"])
    values["sequence"] = values.pop("status_sequence")
    return CallLeg(**values)  # type: ignore[arg-type]


def _columns(rows: Iterable[tuple[object, ...]], width: int) -> list[list[object]]:
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


class CallRepository:
    def __init__(
        self,
        engine: AsyncEngine,
        tariffs: TariffBook,
        zone: ZoneInfo,
        home_region: str = "JP",
        *,
        writeback_delay_s: float | None = None,
    ) -> None:
        """``writeback_delay_s``: when set, ended calls get a kintone write-back job, due that
        many seconds later (so the call's last legs are in); None: write-back is off."""
        self._engine = engine
        self.tariffs = tariffs
        self._zone = zone
        self._home_region = home_region
        self._writeback_delay_s = writeback_delay_s

    def prepare(self, received: Sequence[ReceivedEvent]) -> PreparedBatch:
        """The CPU half of a batch, no I/O: so the consumer can do it for the next batch while
        this one's transaction is in flight. Events are folded per leg here already, so the
        transaction merges one partial leg per leg, not one event at a time."""
        unique: dict[str, ReceivedEvent] = {}
        for item in received:
            unique.setdefault(event_key(item.event), item)
        partial: dict[str, CallLeg] = {}
        home = self._home_region
        for item in unique.values():
            event = item.event
            partial[event.call_sid] = apply_event(partial.get(event.call_sid), event, home)
        rows = [
            (
                key,
                item.event.call_sid,
                item.event.root_call_sid,
                item.event.kind.value,
                item.event.status.value,
                item.event.sequence,
                item.event.received_at,
                item.payload,
            )
            for key, item in unique.items()
        ]
        return PreparedBatch(
            event_columns=tuple(_columns(rows, 8)),
            partial_legs=partial,
            received=len(received),
            unique=len(unique),
        )

    async def record(self, received: Sequence[ReceivedEvent]) -> BatchOutcome:
        return await self.write(self.prepare(received))

    async def write(self, batch: PreparedBatch) -> BatchOutcome:
        """One transaction: store the new events, merge the legs they touch, price, upsert."""
        outcome = BatchOutcome(duplicate_events=batch.received - batch.unique)
        if not batch.unique:
            return outcome
        async with self._engine.begin() as conn:
            result = await conn.exec_driver_sql(INSERT_EVENTS, batch.event_columns)
            outcome.new_events = result.rowcount
            outcome.duplicate_events += batch.unique - outcome.new_events
            if not outcome.new_events:
                return outcome  # a pure replay: every leg already has all of it
            # Every leg of the batch is merged, even one whose events were all repeats: the
            # merge is idempotent, and sorting out which legs had news would cost more.
            touched = sorted(batch.partial_legs)
            stored = await self._load_legs(conn, touched)
            rows = []
            for call_sid in touched:
                before = stored.get(call_sid)
                partial = batch.partial_legs[call_sid]
                leg = partial if before is None else merge_legs(before, partial)
                row = self.leg_row(leg)
                rows.append(row)
                if leg.ended and (before is None or not before.ended):
                    outcome.ended_legs.append(leg)
                    if row[CHARGE] is None:
                        outcome.unrated_legs.append(leg)
            await self._upsert(conn, rows)
            outcome.legs_written = len(rows)
            if self._writeback_delay_s is not None and outcome.ended_legs:
                roots = sorted({leg.parent_call_sid or leg.call_sid for leg in outcome.ended_legs})
                await conn.exec_driver_sql(INSERT_OUTBOX, (roots, self._writeback_delay_s))
        return outcome

    def leg_row(self, leg: CallLeg) -> tuple[object, ...]:
        """The ``calls`` row for a leg, priced (ALL_COLUMNS order)."""
        charge = charge_leg(leg, self.tariffs, self._zone)
        started = leg_started(leg)
        month = billing_month(started, self._zone) if started else None
        return (
            leg.call_sid,
            leg.parent_call_sid,
            leg.leg.value,
            leg.destination_type.value,
            leg.status.value,
            leg.sequence,
            leg.direction,
            leg.from_number,
            leg.to_number,
            leg.started_at,
            leg.answered_at,
            leg.ended_at,
            leg.duration_s,
            leg.kintone_app_id,
            leg.kintone_record_id,
            leg.user_identity,
            leg.line_user_id,
            charge.billable_minutes if charge else None,
            charge.amount if charge else None,
            charge.currency if charge else None,
            charge.rate if charge else None,
            charge.tariff_from if charge else None,
            month,
        )

    async def _load_legs(self, conn: AsyncConnection, call_sids: list[str]) -> dict[str, CallLeg]:
        result = await conn.exec_driver_sql(SELECT_LEGS, (call_sids,))
        return {row[0]: _leg_from_row(row) for row in result}

    async def _upsert(self, conn: AsyncConnection, rows: list[tuple[object, ...]]) -> None:
        await conn.exec_driver_sql(UPSERT_LEGS, tuple(_columns(rows, len(ALL_COLUMNS))))

    # --- tariffs, numbers, re-rating -----------------------------------------------------

    async def store_tariffs(self) -> None:
        """Replace the ``tariffs`` table with the tariff file's content (the file is the source)."""
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM tariffs")
            for tariff in self.tariffs.tariffs:
                await conn.exec_driver_sql(
                    "INSERT INTO tariffs (effective_from, currency, per_minute,"
                    " number_rental_per_month) VALUES ($1, $2, $3::jsonb, $4)",
                    (
                        tariff.effective_from,
                        tariff.currency,
                        orjson.dumps({k: str(v) for k, v in tariff.per_minute.items()}).decode(),
                        tariff.number_rental_per_month,
                    ),
                )

    async def hold_number(self, e164: str, since: date, note: str | None = None) -> None:
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO numbers (e164, held_from, note) VALUES ($1, $2, $3)"
                " ON CONFLICT (e164) DO NOTHING",
                (e164, since, note),
            )

    async def rerate(self, month: date) -> tuple[int, int]:
        """Price a month's ended legs again with the current tariffs; (legs, still unrated)."""
        async with self._engine.begin() as conn:
            result = await conn.exec_driver_sql(SELECT_MONTH_LEGS, (month,))
            legs = [_leg_from_row(row) for row in result]
            rows = [self.leg_row(leg) for leg in legs]
            if rows:
                await self._upsert(conn, rows)
        unrated = sum(
            1 for leg, row in zip(legs, rows, strict=True) if leg.ended and row[CHARGE] is None
        )
        return len(rows), unrated
