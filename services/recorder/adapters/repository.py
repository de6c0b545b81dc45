"""Call legs in PostgreSQL: set-based statements inside one transaction per batch.

The use case (service_layer/recording.py) decides; this module only stores: the new events
(repeats skipped by key), the legs it is handed (locked and loaded first, so the merge sees
what is stored), and the write-back jobs. Applying a batch twice changes nothing, so a crash
between this commit and the Kafka offset commit only costs a replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.common.database import async_url
from services.common.events import CallStatus
from services.common.numbers import DestinationType
from services.recorder.domain.batch import (
    EventRows,
    PricedLeg,
    PricedRecording,
    PricedTranscription,
    ReceivedEvent,
)
from services.recorder.domain.charges import Charge
from services.recorder.domain.conversation import (
    SPEAKERS,
    Recording,
    RecordingSource,
    RecordingStatus,
    Transcription,
    TranscriptionStatus,
    Utterance,
)
from services.recorder.domain.legs import CallLeg, Direction, Leg
from services.recorder.domain.tariff import TariffBook

LEG_COLUMNS = (
    "call_sid",
    "parent_call_sid",
    "leg",
    "destination_type",
    "status",
    "status_sequence",
    "direction",
    "twilio_direction",
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
    "channels": "int",
    "sequence_id": "int",
    "confidence": "numeric",
    "spoken_at": "timestamptz",
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


def _insert_unnest(table: str, columns: Sequence[str]) -> str:
    """INSERT of whole columns (one array parameter each, typed): one statement per batch."""
    arrays = ", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(columns, 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608


def _upsert(table: str, columns: Sequence[str]) -> str:
    """The rows replace the stored ones, keyed by the first column (merged before: domain)."""
    return (
        _insert_unnest(table, columns)
        + f" ON CONFLICT ({columns[0]}) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
        + ", updated_at = now()"
    )


UPSERT_LEGS = _upsert("calls", ALL_COLUMNS)

# --- the conversation (CONTRACT.md section 11) ---------------------------------------------
RECORDING_COLUMNS = (
    "recording_sid",
    "call_sid",
    "status",
    "duration_s",
    "channels",
    "source",
    "started_at",
    "media_url",
    "error_code",
    *PRICE_COLUMNS,
)
TRANSCRIPTION_COLUMNS = (
    "transcription_sid",
    "call_sid",
    "status",
    "language_code",
    "started_at",
    "ended_at",
    "error_code",
    *PRICE_COLUMNS,
)
SEGMENT_COLUMNS = (
    "transcription_sid",
    "sequence_id",
    "call_sid",
    "track",
    "speaker",
    "text",
    "confidence",
    "spoken_at",
)
UPSERT_RECORDINGS = _upsert("recordings", RECORDING_COLUMNS)
UPSERT_TRANSCRIPTIONS = _upsert("transcriptions", TRANSCRIPTION_COLUMNS)
# An utterance is stored once: a repeat (same TranscriptionSid and SequenceId) changes nothing.
INSERT_SEGMENTS = (
    _insert_unnest("transcript_segments", SEGMENT_COLUMNS)
    + " ON CONFLICT (transcription_sid, sequence_id) DO NOTHING"
)
_SELECT_RECORDINGS = f"SELECT {', '.join(RECORDING_COLUMNS)} FROM recordings"  # noqa: S608
SELECT_RECORDINGS = (
    f"{_SELECT_RECORDINGS} WHERE call_sid = ANY($1::text[]) ORDER BY recording_sid FOR UPDATE"
)
SELECT_MONTH_RECORDINGS = (
    f"{_SELECT_RECORDINGS} WHERE billing_month = $1 ORDER BY recording_sid FOR UPDATE"
)
_SELECT_TRANSCRIPTIONS = f"SELECT {', '.join(TRANSCRIPTION_COLUMNS)} FROM transcriptions"  # noqa: S608
SELECT_TRANSCRIPTIONS = (
    f"{_SELECT_TRANSCRIPTIONS} WHERE call_sid = ANY($1::text[])"
    " ORDER BY transcription_sid FOR UPDATE"
)
SELECT_MONTH_TRANSCRIPTIONS = (
    f"{_SELECT_TRANSCRIPTIONS} WHERE billing_month = $1 ORDER BY transcription_sid FOR UPDATE"
)
# The utterances stored before their call's direction was known get their speaker from the
# call's root leg, by the domain's table (passed as data: SPEAKERS, never restated here).
RESOLVE_SPEAKERS = """
UPDATE transcript_segments s SET speaker = m.speaker
FROM calls c, unnest($2::text[], $3::text[], $4::text[]) AS m(direction, track, speaker)
WHERE s.call_sid = ANY($1::text[]) AND s.speaker IS NULL
  AND c.call_sid = s.call_sid AND c.direction = m.direction AND s.track = m.track
"""
_SPEAKER_TABLE = (
    [direction.value for direction, _ in SPEAKERS],
    [track.value for _, track in SPEAKERS],
    [speaker.value for speaker in SPEAKERS.values()],
)


# A write-back job per call whose leg just ended, in the same transaction (transactional
# outbox). An outbound call's kintone record comes from any of its legs (the dial event's or the
# callback query's context); an inbound call (its root leg says so) goes to the customer app
# ($3), its records found later by the lookup. Calls with neither get no job.
INSERT_OUTBOX = """
INSERT INTO kintone_outbox
    (call_sid, direction, kintone_app_id, kintone_record_id, available_at)
SELECT root, direction,
       CASE WHEN direction = 'inbound' THEN $3::text ELSE app END,
       CASE WHEN direction = 'inbound' THEN NULL ELSE record END,
       now() + make_interval(secs => $2)
FROM (
    SELECT coalesce(parent_call_sid, call_sid) AS root,
           coalesce(max(direction) FILTER (WHERE parent_call_sid IS NULL), 'outbound')
               AS direction,
           max(kintone_app_id) AS app, max(kintone_record_id) AS record
    FROM calls
    WHERE call_sid = ANY($1::text[]) OR parent_call_sid = ANY($1::text[])
    GROUP BY 1
) ended
WHERE CASE WHEN direction = 'inbound' THEN $3::text IS NOT NULL
           ELSE app IS NOT NULL AND record IS NOT NULL END
ON CONFLICT (call_sid) DO NOTHING
"""
# A call written already whose conversation has news (a late recording or utterance): its job
# goes again and updates the same row (CONTRACT.md section 11). The lookup's answer is kept.
REQUEUE_WRITTEN = """
UPDATE kintone_outbox
SET state = 'pending', available_at = now() + make_interval(secs => $2), attempts = 0,
    leased_until = NULL, last_error = NULL, done_at = NULL
WHERE call_sid = ANY($1::text[]) AND state = 'done'
"""
# Every leg of an inbound call is inbound, and every leg of a LINE call carries its user id,
# whichever of the call's legs came in first (CONTRACT.md section 9).
SHARE_CALL_CONTEXT = """
UPDATE calls c
SET direction = CASE WHEN r.direction = 'inbound' THEN 'inbound' ELSE c.direction END,
    line_user_id = coalesce(c.line_user_id, r.line_user_id), updated_at = now()
FROM calls r
WHERE r.call_sid = ANY($1::text[]) AND c.parent_call_sid = r.call_sid
  AND ((r.direction = 'inbound' AND c.direction IS DISTINCT FROM 'inbound')
       OR (c.line_user_id IS NULL AND r.line_user_id IS NOT NULL))
"""


def make_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(async_url(database_url), pool_pre_ping=True, **kwargs)


def _leg_from_row(row: Sequence[Any]) -> CallLeg:
    values: dict[str, Any] = dict(zip(LEG_COLUMNS, row, strict=True))
    values["leg"] = Leg(values["leg"])
    values["destination_type"] = DestinationType(values["destination_type"])
    values["status"] = CallStatus(values["status"])
    if values["direction"] is not None:
        values["direction"] = Direction(values["direction"])
    values["sequence"] = values.pop("status_sequence")
    return CallLeg(**values)


def _columns(rows: Iterable[tuple[object, ...]], width: int) -> list[list[object]]:
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def leg_row(priced: PricedLeg) -> tuple[object, ...]:
    """The ``calls`` row for a priced leg (ALL_COLUMNS order)."""
    leg, charge = priced.leg, priced.charge
    return (
        leg.call_sid,
        leg.parent_call_sid,
        leg.leg.value,
        leg.destination_type.value,
        leg.status.value,
        leg.sequence,
        leg.direction.value if leg.direction else None,
        leg.twilio_direction,
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
        *_price_values(charge, priced.billing_month),
    )


def _charge(values: dict[str, Any]) -> Charge | None:
    """The stored charge (price columns popped from ``values``): None while not priced."""
    minutes = values.pop("billable_minutes")
    amount, currency, rate = values.pop("charge"), values.pop("currency"), values.pop("rate")
    tariff_from = values.pop("tariff_effective_from")
    return None if minutes is None else Charge(minutes, amount, currency, rate, tariff_from)


def _price_values(charge: Charge | None, month: date | None) -> tuple[object, ...]:
    return (
        charge.billable_minutes if charge else None,
        charge.amount if charge else None,
        charge.currency if charge else None,
        charge.rate if charge else None,
        charge.tariff_from if charge else None,
        month,
    )


def _recording_from_row(row: Sequence[Any]) -> PricedRecording:
    values: dict[str, Any] = dict(zip(RECORDING_COLUMNS, row, strict=True))
    charge, month = _charge(values), values.pop("billing_month")
    values["status"] = RecordingStatus(values["status"])
    if values["source"] is not None:
        values["source"] = RecordingSource(values["source"])
    return PricedRecording(Recording(**values), charge, month)


def recording_row(priced: PricedRecording) -> tuple[object, ...]:
    r = priced.recording
    return (
        r.recording_sid,
        r.call_sid,
        r.status.value,
        r.duration_s,
        r.channels,
        r.source.value if r.source else None,
        r.started_at,
        r.media_url,
        r.error_code,
        *_price_values(priced.charge, priced.billing_month),
    )


def _transcription_from_row(row: Sequence[Any]) -> PricedTranscription:
    values: dict[str, Any] = dict(zip(TRANSCRIPTION_COLUMNS, row, strict=True))
    charge, month = _charge(values), values.pop("billing_month")
    values["status"] = TranscriptionStatus(values["status"])
    return PricedTranscription(Transcription(**values), charge, month)


def transcription_row(priced: PricedTranscription) -> tuple[object, ...]:
    t = priced.transcription
    return (
        t.transcription_sid,
        t.call_sid,
        t.status.value,
        t.language_code,
        t.started_at,
        t.ended_at,
        t.error_code,
        *_price_values(priced.charge, priced.billing_month),
    )


def segment_row(u: Utterance) -> tuple[object, ...]:
    return (
        u.transcription_sid,
        u.sequence_id,
        u.call_sid,
        u.track.value,
        u.speaker.value if u.speaker else None,
        u.text,
        u.confidence,
        u.spoken_at,
    )


def event_rows(unique: Mapping[str, ReceivedEvent]) -> EventRows:
    """The ``call_events`` rows, column by column: pure CPU, built before the transaction."""
    rows = [
        (
            key,
            item.event.call_sid,
            item.event.root_call_sid,
            item.event.kind.value,
            item.event.status,  # a StrEnum is its value; None for a recording or transcript
            item.event.sequence,
            item.event.received_at,
            item.payload,
        )
        for key, item in unique.items()
    ]
    return tuple(_columns(rows, 8))


class CallTransaction:
    """The statements of one batch, inside one PostgreSQL transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_events(self, rows: EventRows) -> int:
        """Insert the events; returns how many were new (repeats are skipped by key)."""
        result = await self._conn.exec_driver_sql(INSERT_EVENTS, rows)
        return int(result.rowcount)

    async def load_legs(self, call_sids: Sequence[str]) -> dict[str, CallLeg]:
        """The stored legs, locked until the transaction ends (FOR UPDATE)."""
        result = await self._conn.exec_driver_sql(SELECT_LEGS, (list(call_sids),))
        return {row[0]: _leg_from_row(row) for row in result}

    async def month_legs(self, month: date) -> list[CallLeg]:
        result = await self._conn.exec_driver_sql(SELECT_MONTH_LEGS, (month,))
        return [_leg_from_row(row) for row in result]

    async def save_legs(self, legs: Sequence[PricedLeg]) -> None:
        if legs:
            columns = _columns((leg_row(leg) for leg in legs), len(ALL_COLUMNS))
            await self._conn.exec_driver_sql(UPSERT_LEGS, tuple(columns))

    async def share_call_context(self, roots: Sequence[str]) -> None:
        await self._conn.exec_driver_sql(SHARE_CALL_CONTEXT, (list(roots),))

    async def load_recordings(self, call_sids: Sequence[str]) -> dict[str, PricedRecording]:
        result = await self._conn.exec_driver_sql(SELECT_RECORDINGS, (list(call_sids),))
        return {row[0]: _recording_from_row(row) for row in result}

    async def load_transcriptions(self, call_sids: Sequence[str]) -> dict[str, PricedTranscription]:
        result = await self._conn.exec_driver_sql(SELECT_TRANSCRIPTIONS, (list(call_sids),))
        return {row[0]: _transcription_from_row(row) for row in result}

    async def month_recordings(self, month: date) -> list[PricedRecording]:
        result = await self._conn.exec_driver_sql(SELECT_MONTH_RECORDINGS, (month,))
        return [_recording_from_row(row) for row in result]

    async def month_transcriptions(self, month: date) -> list[PricedTranscription]:
        result = await self._conn.exec_driver_sql(SELECT_MONTH_TRANSCRIPTIONS, (month,))
        return [_transcription_from_row(row) for row in result]

    async def save_recordings(self, recordings: Sequence[PricedRecording]) -> None:
        if recordings:
            columns = _columns(map(recording_row, recordings), len(RECORDING_COLUMNS))
            await self._conn.exec_driver_sql(UPSERT_RECORDINGS, tuple(columns))

    async def save_transcriptions(self, transcriptions: Sequence[PricedTranscription]) -> None:
        if transcriptions:
            columns = _columns(map(transcription_row, transcriptions), len(TRANSCRIPTION_COLUMNS))
            await self._conn.exec_driver_sql(UPSERT_TRANSCRIPTIONS, tuple(columns))

    async def add_utterances(self, utterances: Sequence[Utterance]) -> int:
        if not utterances:
            return 0
        columns = _columns(map(segment_row, utterances), len(SEGMENT_COLUMNS))
        result = await self._conn.exec_driver_sql(INSERT_SEGMENTS, tuple(columns))
        return int(result.rowcount)

    async def resolve_speakers(self, call_sids: Sequence[str]) -> None:
        await self._conn.exec_driver_sql(RESOLVE_SPEAKERS, (list(call_sids), *_SPEAKER_TABLE))

    async def add_writeback_jobs(
        self, roots: Sequence[str], delay_s: float, customer_app: int | None
    ) -> None:
        """A job per call that has a kintone record (from any of its legs), or is inbound and
        ``customer_app`` is set, due after ``delay_s``; a call that has one keeps it."""
        app = None if customer_app is None else str(customer_app)
        await self._conn.exec_driver_sql(INSERT_OUTBOX, (list(roots), delay_s, app))

    async def requeue_written(self, roots: Sequence[str], delay_s: float) -> None:
        await self._conn.exec_driver_sql(REQUEUE_WRITTEN, (list(roots), delay_s))


class CallRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @staticmethod
    def event_rows(unique: Mapping[str, ReceivedEvent]) -> EventRows:
        return event_rows(unique)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CallTransaction]:
        async with self._engine.begin() as conn:
            yield CallTransaction(conn)

    # --- tariffs and numbers ---------------------------------------------------------------

    async def store_tariffs(self, tariffs: TariffBook) -> None:
        """Replace the ``tariffs`` table with the tariff file's content (the file is the source)."""
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM tariffs")
            for tariff in tariffs.tariffs:
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
