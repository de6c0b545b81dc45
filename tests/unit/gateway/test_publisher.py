"""Group commit in the publisher, on fakes of the producer and the spool: every waiter gets its
own group's outcome, never before the broker acknowledged every batch of that group; a group
the broker fails or does not acknowledge in time goes to the spool, each of its events; an
event nobody waits for is stored all the same, at the latest when the publisher closes.

The fakes keep aiokafka's own BatchBuilder (so batch sizes and records are real) and hand the
test one future per batch: the test plays the broker's acknowledgement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.producer.message_accumulator import BatchBuilder
from prometheus_client import CollectorRegistry

from services.common.events import CallEvent, CallStatus, EventKind
from services.common.kafka import key_partitioner
from services.gateway.adapters.publisher import EventPublisher, PublishError, Stored
from services.gateway.adapters.spool import SpooledEvent, SpoolError
from services.gateway.metrics import GatewayMetrics

TOPIC = "calls"
PARTITIONS = [0, 1, 2]


class RecordingBatch(BatchBuilder):  # type: ignore[misc]
    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size, 0)  # no compression
        self.records: list[tuple[bytes, bytes]] = []

    def append(self, *, timestamp: Any, key: bytes, value: bytes, headers: Any = ()) -> Any:
        metadata = super().append(timestamp=timestamp, key=key, value=value, headers=[])
        if metadata is not None:
            self.records.append((key, value))
        return metadata


class FakeProducer:
    """create_batch / send_batch as aiokafka has them; each batch's future is the test's."""

    def __init__(self, batch_size: int = 512 * 1024) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[int, RecordingBatch, asyncio.Future[object]]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def partitions_for(self, topic: str) -> set[int]:
        assert topic == TOPIC
        return set(PARTITIONS)

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch(self.batch_size)

    async def send_batch(
        self, batch: RecordingBatch, topic: str, *, partition: int
    ) -> asyncio.Future[object]:
        assert topic == TOPIC
        assert batch.closed(), "a batch is sent closed, so it does not linger"
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.sent.append((partition, batch, future))
        return future

    def ack_all(self) -> None:
        for _partition, _batch, future in self.sent:
            if not future.done():
                future.set_result(object())

    def fail_all(self, exc: Exception) -> None:
        for _partition, _batch, future in self.sent:
            if not future.done():
                future.set_exception(exc)

    def pending(self) -> list[tuple[int, RecordingBatch, asyncio.Future[object]]]:
        return [sent for sent in self.sent if not sent[2].done()]

    def keys(self) -> list[bytes]:
        return [key for _p, batch, _f in self.sent for key, _v in batch.records]


class FakeSpool:
    """The Spool's interface in memory; ``broken`` makes every write fail like a full disk."""

    def __init__(self) -> None:
        self.rows: list[SpooledEvent] = []
        self.broken = False
        self.closed = False
        self.appends = 0

    @property
    def depth(self) -> int:
        return len(self.rows)

    async def open(self) -> None:
        pass

    async def append_many(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        if self.broken:
            raise SpoolError("disk full")
        self.appends += 1
        start = len(self.rows)
        self.rows += [SpooledEvent(start + i, topic, k, v) for i, (k, v) in enumerate(records)]

    async def oldest(self, limit: int) -> list[SpooledEvent]:
        return self.rows[:limit]

    async def remove(self, ids: list[int]) -> None:
        self.rows = [row for row in self.rows if row.id not in set(ids)]

    async def writable(self) -> bool:
        return not self.broken

    def close(self) -> None:
        self.closed = True


def event(call_sid: str, parent: str | None = None) -> CallEvent:
    return CallEvent(
        kind=EventKind.STATUS,
        received_at=datetime.now(UTC),
        call_sid=call_sid,
        parent_call_sid=parent,
        status=CallStatus.RINGING,
        sequence=1,
    )


class Rig:
    def __init__(self, timeout_s: float) -> None:
        self.producer = FakeProducer()
        self.spool = FakeSpool()
        self.registry = CollectorRegistry()
        self.publisher = EventPublisher(
            producer_factory=lambda: self.producer,  # type: ignore[arg-type,return-value]
            topic=TOPIC,
            spool=self.spool,  # type: ignore[arg-type]
            metrics=GatewayMetrics(self.registry),
            timeout_s=timeout_s,
        )

    def published(self, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "calltrail_events_published_total", {"outcome": outcome}
        )
        return value or 0.0

    async def connected(self) -> None:
        for _ in range(100):
            if self.publisher.broker_ok:
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the fake producer never connected")


@pytest.fixture
async def make_rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    rigs: list[Rig] = []

    async def start(timeout_s: float = 5.0) -> Rig:
        rig = Rig(timeout_s)
        rigs.append(rig)
        await rig.publisher.start()
        await rig.connected()
        return rig

    yield start
    for rig in rigs:
        rig.producer.ack_all()
        await rig.publisher.close()


@pytest.fixture
async def rig(make_rig: Callable[..., Awaitable[Rig]]) -> Rig:
    return await make_rig()


async def settle() -> None:
    """Let every ready task run until nothing more happens without the test."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_no_waiter_is_answered_before_the_broker_acked_its_batch(rig: Rig) -> None:
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(30)]
    await settle()
    assert rig.producer.sent, "the group went out"
    assert not any(w.done() for w in waiters)
    # The broker acknowledges some batches, not all: nobody of the group is answered yet.
    first = rig.producer.pending()[0][2]
    first.set_result(object())
    await settle()
    assert not any(w.done() for w in waiters)
    rig.producer.ack_all()
    assert await asyncio.gather(*waiters) == [Stored.BROKER] * 30
    assert rig.published("broker") == 30
    assert sorted(rig.producer.keys()) == sorted(f"CA{n}".encode() for n in range(30))


async def test_one_batch_per_partition_for_a_whole_group(rig: Rig) -> None:
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(60)]
    await settle()
    partitions = [partition for partition, _batch, _future in rig.producer.sent]
    assert sorted(partitions) == sorted(set(partitions))  # never two batches of one partition
    for partition, batch, _future in rig.producer.sent:
        for key, _value in batch.records:
            assert key_partitioner(key, PARTITIONS, PARTITIONS) == partition
    rig.producer.ack_all()
    await asyncio.gather(*waiters)


async def test_events_queued_during_a_group_go_out_together_once_it_is_acked(rig: Rig) -> None:
    first = rig.publisher.publish(event("CA0", "CAroot"))
    await settle()
    assert len(rig.producer.sent) == 1
    # One hot call: every callback on one key, queued while the first is on its way.
    later = [rig.publisher.publish(event(f"CA{n}", "CAroot")) for n in range(1, 50)]
    await settle()
    assert len(rig.producer.sent) == 1, "nothing more is sent while a group is in flight"
    rig.producer.ack_all()
    assert await first == Stored.BROKER
    await settle()
    assert len(rig.producer.sent) == 2, "the 49 waiting events: one batch, one produce request"
    assert len(rig.producer.sent[1][1].records) == 49
    assert not any(w.done() for w in later)
    rig.producer.ack_all()
    assert await asyncio.gather(*later) == [Stored.BROKER] * 49


async def test_a_burst_spread_over_a_few_loop_turns_goes_out_as_one_group(rig: Rig) -> None:
    """Requests that arrive together reach publish() over several turns of the loop (aiohttp
    starts each in a task of its own): they must still share one produce request."""

    async def arriving_after(turns: int, call_sid: str) -> Stored:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await rig.publisher.publish(event(call_sid, "CAroot"))

    waiters = [asyncio.create_task(arriving_after(n % 3, f"CA{n}")) for n in range(30)]
    await settle()
    assert len(rig.producer.sent) == 1
    assert len(rig.producer.sent[0][1].records) == 30
    rig.producer.ack_all()
    assert await asyncio.gather(*waiters) == [Stored.BROKER] * 30


async def test_a_full_batch_is_split_and_every_part_must_be_acked(rig: Rig) -> None:
    rig.producer.batch_size = 1024  # a few events a batch
    waiters = [rig.publisher.publish(event(f"CA{n}", "CAroot")) for n in range(20)]
    await settle()
    assert len(rig.producer.sent) > 2
    assert {partition for partition, _b, _f in rig.producer.sent} == {
        key_partitioner(b"CAroot", PARTITIONS, PARTITIONS)
    }
    for _partition, _batch, future in rig.producer.sent[:-1]:
        future.set_result(object())
    await settle()
    assert not any(w.done() for w in waiters)
    rig.producer.ack_all()
    assert await asyncio.gather(*waiters) == [Stored.BROKER] * 20
    assert len(rig.producer.keys()) == 20


async def test_a_failed_batch_sends_each_event_of_its_group_to_the_spool(rig: Rig) -> None:
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(12)]
    await settle()
    rig.producer.pending()[0][2].set_exception(KafkaConnectionError("broker gone"))
    assert await asyncio.gather(*waiters) == [Stored.SPOOL] * 12
    assert sorted(row.key for row in rig.spool.rows) == sorted(f"CA{n}".encode() for n in range(12))
    assert rig.spool.appends == 1, "one transaction (one fsync) for the group"
    assert (rig.published("broker"), rig.published("spool")) == (0, 12)
    assert not rig.publisher.broker_ok


async def test_a_group_not_acked_in_time_is_spooled(
    make_rig: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await make_rig(timeout_s=0.05)
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(5)]
    assert await asyncio.gather(*waiters) == [Stored.SPOOL] * 5
    assert rig.spool.depth == 5


async def test_while_the_broker_is_down_groups_go_straight_to_the_spool(rig: Rig) -> None:
    failing = rig.publisher.publish(event("CA0"))
    await settle()
    rig.producer.fail_all(KafkaConnectionError("broker gone"))
    assert await failing == Stored.SPOOL
    sent = len(rig.producer.sent)
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(1, 9)]
    assert await asyncio.gather(*waiters) == [Stored.SPOOL] * 8
    assert len(rig.producer.sent) == sent, "the broker is not tried by each request"


async def test_when_nothing_can_store_a_group_each_waiter_gets_the_error(rig: Rig) -> None:
    rig.spool.broken = True
    waiters = [rig.publisher.publish(event(f"CA{n}")) for n in range(4)]
    await settle()
    rig.producer.fail_all(KafkaConnectionError("broker gone"))
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, PublishError) for o in outcomes)
    assert rig.published("failed") == 4


async def test_a_cancelled_waiter_does_not_stop_its_group(rig: Rig) -> None:
    gone = rig.publisher.publish(event("CA0"))
    stays = rig.publisher.publish(event("CA1"))
    await settle()
    gone.cancel()
    rig.producer.ack_all()
    assert await stays == Stored.BROKER
    assert sorted(rig.producer.keys()) == [b"CA0", b"CA1"]


async def test_publish_soon_is_stored_like_publish() -> None:
    rig = Rig(timeout_s=5.0)
    await rig.publisher.start()
    await rig.connected()
    rig.publisher.publish_soon(event("CA1"))
    await settle()
    assert rig.producer.keys() == [b"CA1"]
    rig.producer.ack_all()
    await settle()
    assert rig.published("broker") == 1
    await rig.publisher.close()


async def test_close_stores_what_is_queued_even_when_the_broker_is_gone() -> None:
    rig = Rig(timeout_s=0.05)
    await rig.publisher.start()
    await rig.connected()
    for n in range(10):
        rig.publisher.publish_soon(event(f"CA{n}"))
    await rig.publisher.close()  # the broker never answers: the spool takes them
    assert rig.spool.depth == 10
    assert rig.spool.closed
    assert rig.producer.stopped
    assert rig.published("spool") == 10


async def test_close_waits_for_the_group_in_flight() -> None:
    rig = Rig(timeout_s=5.0)
    await rig.publisher.start()
    await rig.connected()
    rig.publisher.publish_soon(event("CA1"))
    await settle()
    closing = asyncio.create_task(rig.publisher.close())
    await settle()
    assert not closing.done()
    assert not rig.producer.stopped
    rig.producer.ack_all()
    await closing
    assert rig.published("broker") == 1


async def test_nothing_is_accepted_once_closed() -> None:
    rig = Rig(timeout_s=5.0)
    await rig.publisher.start()
    await rig.publisher.close()
    with pytest.raises(PublishError):
        await rig.publisher.publish(event("CA1"))
    rig.publisher.publish_soon(event("CA2"))  # logged as not stored, never hangs
    assert rig.published("failed") == 2
