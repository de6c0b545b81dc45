"""In-memory stand-ins for the recorder's ports, in the manner of cosmicpython's
FakeRepository: the use case and the consumer run for real, on these instead of PostgreSQL
and Kafka. They keep what a real store keeps (events deduplicated by key, legs, write-back
jobs) and fail where a test tells them to, with the errors the real adapters raise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition
from sqlalchemy.exc import DBAPIError

from services.common.events import CallEvent
from services.recorder.domain.batch import (
    EventRows,
    PricedLeg,
    PricedRecording,
    PricedTranscription,
    ReceivedEvent,
    event_key,
)
from services.recorder.domain.conversation import SPEAKERS, Utterance
from services.recorder.domain.legs import CallLeg, Direction


class _PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def data_error(sqlstate: str = "22003") -> DBAPIError:
    """What SQLAlchemy raises when PostgreSQL refuses a value (22003: numeric out of range)."""
    return DBAPIError("INSERT INTO call_events …", None, _PostgresError(sqlstate))


@dataclass
class FakeLegStore:
    """A LegStore: commits on a clean exit of ``transaction()``, keeps nothing otherwise."""

    events: dict[str, ReceivedEvent] = field(default_factory=dict)
    legs: dict[str, PricedLeg] = field(default_factory=dict)
    jobs: dict[str, float] = field(default_factory=dict)  # root CallSid → delay
    requeued: dict[str, float] = field(default_factory=dict)  # written calls, their news
    recordings: dict[str, PricedRecording] = field(default_factory=dict)
    transcriptions: dict[str, PricedTranscription] = field(default_factory=dict)
    segments: dict[tuple[str, int], Utterance] = field(default_factory=dict)
    unstorable: set[str] = field(default_factory=set)  # CallSids PostgreSQL would refuse
    failures: list[BaseException] = field(default_factory=list)  # raised by next transactions
    commits: int = 0

    def event_rows(self, unique: Mapping[str, ReceivedEvent]) -> EventRows:
        return (list(unique.values()),)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        if self.failures:
            raise self.failures.pop(0)
        tx = FakeTransaction(self)
        yield tx
        self.events |= tx.events
        self.legs |= tx.legs
        self.recordings |= tx.recordings
        self.transcriptions |= tx.transcriptions
        self.segments |= tx.segments
        for root, delay in tx.jobs.items():
            self.jobs.setdefault(root, delay)
        self.requeued |= tx.requeued
        self.commits += 1


@dataclass
class FakeTransaction:
    store: FakeLegStore
    events: dict[str, ReceivedEvent] = field(default_factory=dict)
    legs: dict[str, PricedLeg] = field(default_factory=dict)
    jobs: dict[str, float] = field(default_factory=dict)
    recordings: dict[str, PricedRecording] = field(default_factory=dict)
    transcriptions: dict[str, PricedTranscription] = field(default_factory=dict)
    segments: dict[tuple[str, int], Utterance] = field(default_factory=dict)
    requeued: dict[str, float] = field(default_factory=dict)  # written calls' jobs again

    async def add_events(self, rows: EventRows) -> int:
        new = 0
        for item in rows[0]:
            assert isinstance(item, ReceivedEvent)
            if item.event.call_sid in self.store.unstorable:
                raise data_error()
            key = event_key(item.event)
            if key not in self.store.events and key not in self.events:
                self.events[key] = item
                new += 1
        return new

    async def load_legs(self, call_sids: Sequence[str]) -> dict[str, CallLeg]:
        return {sid: self.store.legs[sid].leg for sid in call_sids if sid in self.store.legs}

    async def month_legs(self, month: date) -> list[CallLeg]:
        return [p.leg for p in self.store.legs.values() if p.billing_month == month]

    async def save_legs(self, legs: Sequence[PricedLeg]) -> None:
        self.legs |= {priced.leg.call_sid: priced for priced in legs}

    async def share_call_context(self, roots: Sequence[str]) -> None:
        legs = {**self.store.legs, **self.legs}
        for sid, priced in legs.items():
            root = legs.get(priced.leg.parent_call_sid or "")
            if root is None or root.leg.call_sid not in roots:
                continue
            leg = priced.leg
            if root.leg.direction is Direction.INBOUND:
                leg = replace(leg, direction=Direction.INBOUND)
            leg = replace(leg, line_user_id=leg.line_user_id or root.leg.line_user_id)
            self.legs[sid] = replace(priced, leg=leg)

    async def add_writeback_jobs(
        self, roots: Sequence[str], delay_s: float, customer_app: int | None
    ) -> None:
        self.jobs |= dict.fromkeys(roots, delay_s)

    async def requeue_written(self, roots: Sequence[str], delay_s: float) -> None:
        self.requeued |= dict.fromkeys(roots, delay_s)

    async def load_recordings(self, call_sids: Sequence[str]) -> dict[str, PricedRecording]:
        found = {**self.store.recordings, **self.recordings}
        return {sid: p for sid, p in found.items() if p.recording.call_sid in call_sids}

    async def load_transcriptions(self, call_sids: Sequence[str]) -> dict[str, PricedTranscription]:
        found = {**self.store.transcriptions, **self.transcriptions}
        return {sid: p for sid, p in found.items() if p.transcription.call_sid in call_sids}

    async def month_recordings(self, month: date) -> list[PricedRecording]:
        return [p for p in self.store.recordings.values() if p.billing_month == month]

    async def month_transcriptions(self, month: date) -> list[PricedTranscription]:
        return [p for p in self.store.transcriptions.values() if p.billing_month == month]

    async def save_recordings(self, recordings: Sequence[PricedRecording]) -> None:
        self.recordings |= {p.recording.recording_sid: p for p in recordings}

    async def save_transcriptions(self, transcriptions: Sequence[PricedTranscription]) -> None:
        self.transcriptions |= {p.transcription.transcription_sid: p for p in transcriptions}

    async def add_utterances(self, utterances: Sequence[Utterance]) -> int:
        new = 0
        for utterance in utterances:
            key = (utterance.transcription_sid, utterance.sequence_id)
            if key not in self.store.segments and key not in self.segments:
                self.segments[key] = utterance
                new += 1
        return new

    async def resolve_speakers(self, call_sids: Sequence[str]) -> None:
        legs = {**self.store.legs, **self.legs}
        for key, utterance in {**self.store.segments, **self.segments}.items():
            root = legs.get(utterance.call_sid)
            if utterance.speaker is not None or utterance.call_sid not in call_sids:
                continue
            if root is not None and root.leg.direction is not None:
                speaker = SPEAKERS[root.leg.direction, utterance.track]
                self.segments[key] = replace(utterance, speaker=speaker)


def record_of(event: CallEvent | bytes, offset: int, partition: int = 0) -> ConsumerRecord:
    value = event if isinstance(event, bytes) else event.encode()
    key = b"CA-poison" if isinstance(event, bytes) else event.key()
    return ConsumerRecord(
        topic="calls",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=(),
    )


@dataclass
class FakeKafka:
    """A consumer and a DLQ producer sharing one log of what happened, in order:
    ("dlq", key, reason), ("commit", {partition: offset})."""

    batches: list[list[ConsumerRecord]]
    stopping: asyncio.Event
    log: list[tuple[Any, ...]] = field(default_factory=list)
    until: Callable[[], bool] = lambda: True  # once drained, stop when this holds

    # --- AIOKafkaConsumer ---

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if not self.batches:
            # Nothing more to read: end the run, as a SIGTERM would.
            if self.until():
                self.stopping.set()
            await asyncio.sleep(0.001)
            return {}
        records = self.batches.pop(0)
        batch: dict[TopicPartition, list[ConsumerRecord]] = {}
        for record in records:
            batch.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return batch

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.log.append(("commit", {tp.partition: offset for tp, offset in offsets.items()}))

    def assignment(self) -> set[TopicPartition]:
        return set()

    # --- AIOKafkaProducer (the DLQ) ---

    async def send_and_wait(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        reason = dict(headers)["reason"].decode()
        self.log.append(("dlq", key, reason))
