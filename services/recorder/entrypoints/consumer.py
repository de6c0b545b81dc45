"""The consumer loop: batches from Kafka, one transaction each, offsets after the commit.

At-least-once delivery is made exactly-once in effect by idempotent writes (see the
repository). Failure handling:

- an event that cannot be decoded or stored goes to ``<topic>.dlq`` with the reason (durably,
  before the offset commit), and the rest of its batch is recorded;
- while PostgreSQL is away, the batch is retried with backoff and no offset moves, so nothing
  is lost and consumption resumes where it stopped;
- anything else is a bug: the batch stays uncommitted and :meth:`RecorderConsumer.run` raises,
  which stops the process non-zero (Kubernetes restarts it, and the bug shows in its logs)
  instead of a partition that stalls quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.common.events import EventDecodeError, decode_event
from services.common.logging import get_logger
from services.recorder.adapters.storage import is_data_error, is_outage
from services.recorder.domain.batch import ReceivedEvent
from services.recorder.domain.charges import RECORDING_RATE_KEY, TRANSCRIPTION_RATE_KEY
from services.recorder.domain.conversation import ConversationEventError, conversation_part
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.recording import CallRecorder, PreparedBatch

log = get_logger(__name__)

INT32_MAX = 2**31 - 1
MAX_BACKOFF_S = 10.0


class PoisonEventError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Poison:
    record: ConsumerRecord[bytes, bytes]
    reason: str


Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
KafkaClient = TypeVar("KafkaClient", AIOKafkaConsumer, AIOKafkaProducer)


@dataclass(frozen=True, slots=True)
class Prepared:
    good: list[tuple[ConsumerRecord[bytes, bytes], ReceivedEvent]]
    poison: list[Poison]
    batch: PreparedBatch


def to_received(record: ConsumerRecord[bytes, bytes]) -> ReceivedEvent:
    """Decode and check that PostgreSQL can store it, or raise with the reason."""
    raw = record.value
    if raw is None:
        raise PoisonEventError("empty value")
    if b"\\u0000" in raw:
        raise PoisonEventError("contains a NUL character, which PostgreSQL text cannot hold")
    try:
        event = decode_event(raw)
    except EventDecodeError as exc:
        raise PoisonEventError(str(exc)) from None
    for name in ("sequence", "duration_s"):
        value = getattr(event, name)
        if value is not None and not 0 <= value <= INT32_MAX:
            raise PoisonEventError(f"{name} out of range")
    if event.status is not None:
        return ReceivedEvent(event, raw.decode())
    try:  # a recording or transcript: read now, so a bad one goes to the DLQ with the reason
        part = conversation_part(event)
    except ConversationEventError as exc:
        raise PoisonEventError(str(exc)) from None
    return ReceivedEvent(event, raw.decode(), part)


class RecorderConsumer:
    def __init__(
        self,
        *,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        dlq_producer_factory: Callable[[], AIOKafkaProducer],
        dlq_topic: str,
        recorder: CallRecorder,
        metrics: RecorderMetrics,
        batch_max: int,
        retry_backoff_s: float = 0.2,
    ) -> None:
        """``retry_backoff_s``: the first wait before storing a batch again while PostgreSQL
        is away; it doubles up to MAX_BACKOFF_S."""
        self._retry_backoff_s = retry_backoff_s
        self._consumer_factory = consumer_factory
        self._dlq_producer_factory = dlq_producer_factory
        self._dlq_topic = dlq_topic
        self._recorder = recorder
        self._metrics = metrics
        self._batch_max = batch_max
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None
        self.running = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batch in hand is finished and committed."""
        self._consumer = await self._start(self._consumer_factory, stopping)
        self._dlq = await self._start(self._dlq_producer_factory, stopping)
        if self._consumer is None or self._dlq is None:
            return
        self.running = True
        log.info("recorder_consuming")
        # Pipelined: while one batch's transaction is in flight, the next batch is fetched and
        # prepared (decoded, folded per leg). Writes and offset commits stay strictly in order.
        in_flight: tuple[asyncio.Task[bool], Batch] | None = None
        try:
            while not stopping.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=0 if in_flight else 200, max_records=self._batch_max
                )
                # In a thread, so the event loop keeps driving the in-flight write's
                # statements meanwhile (prepare is pure: no shared state, no I/O).
                prepared = await asyncio.to_thread(self._prepare, batch) if batch else None
                if in_flight is not None:
                    stored = await self._finish(*in_flight)
                    in_flight = None
                    if not stored:
                        break
                if prepared is not None:
                    task = asyncio.create_task(self._store(prepared, stopping))
                    in_flight = (task, batch)
                await self._update_lag()
            if in_flight is not None:
                await self._finish(*in_flight)
        finally:
            self.running = False
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            with contextlib.suppress(Exception):
                await self._dlq.stop()

    async def _finish(self, task: asyncio.Task[bool], batch: Batch) -> bool:
        """Wait for a batch's store; commit its offsets only if it was stored."""
        stored = await task
        if stored:
            await self._commit(batch)
        return stored

    async def _start(
        self, factory: Callable[[], KafkaClient], stopping: asyncio.Event
    ) -> KafkaClient | None:
        backoff = 0.5
        while not stopping.is_set():
            client = factory()
            try:
                await client.start()
                return client
            except (KafkaError, OSError) as exc:
                log.warning("broker_connect_failed", error=repr(exc))
                with contextlib.suppress(Exception):
                    await client.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stopping.wait()
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        return None

    def _prepare(self, batch: Batch) -> Prepared:
        good: list[tuple[ConsumerRecord[bytes, bytes], ReceivedEvent]] = []
        poison: list[Poison] = []
        for records in batch.values():
            for record in records:
                try:
                    good.append((record, to_received(record)))
                except PoisonEventError as exc:
                    poison.append(Poison(record, str(exc)))
        self._metrics.batch_size.observe(len(good) + len(poison))
        return Prepared(good, poison, self._recorder.prepare([item for _, item in good]))

    async def _store(self, prepared: Prepared, stopping: asyncio.Event) -> bool:
        """Store a batch, retrying while PostgreSQL is away. False only if stopping cut the
        retries short (then the offsets must not move)."""
        good, poison, batch = prepared.good, list(prepared.poison), prepared.batch
        backoff = self._retry_backoff_s
        while True:
            try:
                started = time.perf_counter()
                outcome = await self._recorder.record(batch)
                self._metrics.db_write.observe(time.perf_counter() - started)
                break
            except Exception as exc:
                if is_data_error(exc):
                    # Some event cannot be stored: find it, dead-letter it, record the rest.
                    good, more_poison = await self._isolate(good)
                    poison.extend(more_poison)
                    batch = self._recorder.prepare([item for _, item in good])
                    continue
                if not is_outage(exc):
                    # A bug, not an outage: retrying would stall the partition quietly.
                    log.error("batch_failed", error=repr(exc), events=len(good))
                    raise
                self._metrics.db_failures.inc()
                log.warning("batch_not_recorded_retrying", error=repr(exc), events=len(good))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await stopping.wait()
                if stopping.is_set():
                    return False
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        await self._dead_letter(poison)
        self._metrics.events.labels("new").inc(outcome.new_events)
        self._metrics.events.labels("duplicate").inc(outcome.duplicate_events)
        self._metrics.unrated.inc(len(outcome.unrated_legs))
        for leg in outcome.unrated_legs:
            # Rare, and the fix is in the tariff file: say which call and what was dialled.
            log.warning(
                "leg_unrated",
                call_sid=leg.call_sid,
                parent_call_sid=leg.parent_call_sid,
                leg=leg.leg.value,
                direction=leg.direction.value if leg.direction else None,
                destination_type=leg.destination_type.value,
            )
        # The SIDs only: never a transcript's text or a recording's URL (personal data).
        for recording in outcome.unrated_recordings:
            log.warning(
                "recording_unrated",
                call_sid=recording.call_sid,
                recording_sid=recording.recording_sid,
                rate_key=RECORDING_RATE_KEY,
            )
        for transcription in outcome.unrated_transcriptions:
            log.warning(
                "transcription_unrated",
                call_sid=transcription.call_sid,
                transcription_sid=transcription.transcription_sid,
                rate_key=TRANSCRIPTION_RATE_KEY,
            )
        return True

    async def _isolate(
        self, pairs: list[tuple[ConsumerRecord[bytes, bytes], ReceivedEvent]]
    ) -> tuple[list[tuple[ConsumerRecord[bytes, bytes], ReceivedEvent]], list[Poison]]:
        """One event at a time, to tell the unstorable ones from the rest (rare, so slow is ok)."""
        good, bad = [], []
        for record, item in pairs:
            try:
                await self._recorder.record_events([item])
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                bad.append(Poison(record, f"not storable: {getattr(exc, 'orig', exc)}"))
            else:
                good.append((record, item))
        log.error("poison_isolated", poison=len(bad))
        return good, bad

    async def _dead_letter(self, poison: Sequence[Poison]) -> None:
        assert self._dlq is not None
        for item in poison:
            record = item.record
            source = f"{record.topic}/{record.partition}/{record.offset}"
            # Durably on the DLQ before the offset commit, so a poison event is never dropped.
            await self._dlq.send_and_wait(
                self._dlq_topic,
                record.value if record.value is not None else b"",
                key=record.key,
                headers=[("reason", item.reason.encode()), ("source", source.encode())],
            )
            log.error(
                "event_dead_lettered",
                # The key is the call's root CallSid (the gateway's partitioning key).
                call_sid=record.key.decode(errors="replace")[:64] if record.key else None,
                reason=item.reason,
                source=source,
            )
        self._metrics.events.labels("dead_lettered").inc(len(poison))

    async def _commit(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        assert self._consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The partitions moved to another recorder meanwhile; it replays from the last
            # committed offset, and the replay changes nothing (idempotent writes).
            log.warning("offset_commit_failed", error=repr(exc))

    async def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        lag = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                with contextlib.suppress(KafkaError):
                    lag += max(0, highwater - await consumer.position(tp))
        self._metrics.lag.set(lag)
