"""The PostgreSQL schema (SQLAlchemy Core). Alembic migrations are written against this
metadata, and a test proves autogenerate finds no difference between the two."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

metadata = MetaData()


def _price_columns() -> list[Column[object]]:
    """What a priced item keeps, as ``calls`` does: started minutes, charge (null: unrated)."""
    return [
        Column("billable_minutes", Integer),
        Column("charge", Numeric),
        Column("currency", Text),
        Column("rate", Numeric),
        Column("tariff_effective_from", Date),
        Column("billing_month", Date, index=True),
    ]


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


#: One row per call leg (CONTRACT.md section 4); dashboards read it.
calls = Table(
    "calls",
    metadata,
    Column("call_sid", Text, primary_key=True),
    Column("parent_call_sid", Text, index=True),
    Column("leg", Text, nullable=False),
    Column("destination_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("status_sequence", Integer, nullable=False),
    Column("direction", Text),  # outbound | inbound (CONTRACT.md section 4)
    Column("twilio_direction", Text),  # Twilio's Direction: inbound, outbound-dial, …
    Column("from_number", Text),
    Column("to_number", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("answered_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("duration_s", Integer),
    *_price_columns(),
    Column("kintone_app_id", Text),
    Column("kintone_record_id", Text),
    Column("user_identity", Text),
    Column("line_user_id", Text),
    # What Twilio billed for the leg (positive), in its price_unit: `calltrail reconcile`.
    Column("twilio_price", Numeric),
    Column("twilio_price_unit", Text),
    *_timestamps(),
)

#: Every distinct event, as received, append-only: the audit trail and the dedup key.
#: ``payload`` is ``json``, not ``jsonb``: it keeps the event exactly as it came off the topic,
#: and storing it costs PostgreSQL far less than decomposing it into jsonb.
call_events = Table(
    "call_events",
    metadata,
    Column("event_key", Text, primary_key=True),
    Column("call_sid", Text, nullable=False, index=True),
    Column("root_call_sid", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text),  # null for a recording's or transcript's event
    Column("sequence", Integer),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The numbers the company rents from Twilio, for the monthly rental charge.
numbers = Table(
    "numbers",
    metadata,
    Column("e164", Text, primary_key=True),
    Column("held_from", Date, nullable=False),
    Column("held_until", Date),
    Column("note", Text),
)

#: A copy of the tariff file (CALLTRAIL_TARIFF), so SQL (the monthly_charges view, dashboards)
#: can price number rental. The file is the source; the recorder replaces this on start.
tariffs = Table(
    "tariffs",
    metadata,
    Column("effective_from", Date, primary_key=True),
    Column("currency", Text, nullable=False),
    Column("per_minute", JSONB, nullable=False),
    Column("number_rental_per_month", Numeric),
)

#: The transactional outbox for kintone write-back: one job per call, written in the same
#: transaction that records the call's end; a worker drains it (service_layer/writeback.py).
kintone_outbox = Table(
    "kintone_outbox",
    metadata,
    Column("call_sid", Text, primary_key=True),  # the root leg's CallSid
    Column("direction", Text, nullable=False, server_default="outbound"),
    Column("kintone_app_id", Text, nullable=False),  # inbound: KINTONE_CUSTOMER_APP
    Column("kintone_record_id", Text),  # null for an inbound call: found by the lookup
    # Inbound: the customer records the lookup matched (empty: none), null until it ran.
    Column("matched_record_ids", ARRAY(BigInteger)),
    # A missed call (CONTRACT.md section 12), as the worker found it; null until it looked.
    Column("missed", Boolean),
    # The matched records known to carry the missed call's comment; null: none ever tried.
    Column("notified_record_ids", ARRAY(BigInteger)),
    Column("state", Text, nullable=False, server_default="pending"),  # pending, done, parked
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("available_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("leased_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("done_at", DateTime(timezone=True)),
    Index("ix_kintone_outbox_due", "state", "available_at"),
)


#: One row per RecordingSid (CONTRACT.md section 11): a call's recording, or a voicemail.
recordings = Table(
    "recordings",
    metadata,
    Column("recording_sid", Text, primary_key=True),
    Column("call_sid", Text, nullable=False, index=True),  # the call's root
    Column("status", Text, nullable=False),  # in-progress | completed | absent | failed
    Column("duration_s", Integer),
    Column("channels", Integer),
    Column("source", Text),  # dial | voicemail
    Column("started_at", DateTime(timezone=True)),
    Column("media_url", Text),  # Twilio's RecordingUrl, never with credentials
    Column("error_code", Text),
    *_price_columns(),
    Column("kintone_file_key", Text),
    Column("kintone_file_error", Text),  # written without its file after the retries: why
    # What Twilio billed for the recording (positive), in its price_unit: `calltrail reconcile`.
    Column("twilio_price", Numeric),
    Column("twilio_price_unit", Text),
    Column("deleted_from_twilio_at", DateTime(timezone=True)),
    *_timestamps(),
)

#: One row per real-time transcription (TranscriptionSid): its state and its charge.
transcriptions = Table(
    "transcriptions",
    metadata,
    Column("transcription_sid", Text, primary_key=True),
    Column("call_sid", Text, nullable=False, index=True),  # the call's root
    Column("status", Text, nullable=False),  # in-progress | complete | failed
    Column("language_code", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("error_code", Text),
    *_price_columns(),
    *_timestamps(),
)

#: One row per utterance: (TranscriptionSid, SequenceId); repeats are the same row.
transcript_segments = Table(
    "transcript_segments",
    metadata,
    Column("transcription_sid", Text, primary_key=True),
    Column("sequence_id", Integer, primary_key=True),
    Column("call_sid", Text, nullable=False, index=True),  # the call's root
    Column("track", Text, nullable=False),  # inbound_track | outbound_track (Twilio's side)
    Column("speaker", Text),  # staff | customer; null while the call's direction is unknown
    Column("text", Text, nullable=False),
    Column("confidence", Numeric),
    Column("spoken_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
