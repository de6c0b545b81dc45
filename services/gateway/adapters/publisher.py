"""Publishing events durably: the broker (acks=all) when it answers, else the local spool.

A 204 to Twilio means "stored": either the broker acknowledged the event, or it is fsync'd in
the spool and a background task will hand it to the broker once it is back. Only when both
fail does :meth:`EventPublisher.publish` raise, and Twilio is told 503 so it retries.

Group commit: requests do not each send their event and wait for its own acknowledgement.
They queue it, and one flusher task stores whatever is queued as a group: one closed batch
per partition in one produce request (``send_grouped``), one future per batch, and every
waiter of the group gets the group's outcome once the broker acknowledged all of it. While a
group is on its way the next one piles up, so a burst (or one hot call's callbacks, all on
one partition) costs one round trip, not one each. A group the broker does not acknowledge in
time goes to the spool in one transaction (one fsync), each of its events with it.

:meth:`EventPublisher.publish_soon` queues an event nobody waits for (the ``dial`` event of a
TwiML answer): it takes the same path, to the broker or the spool, is logged as an error if
neither takes it, and :meth:`EventPublisher.close` stores everything still queued before the
producer stops.

Delivery is at-least-once: an event whose acknowledgement timed out is spooled, and may also
reach the broker later. The recorder deduplicates, so a duplicate costs nothing; a loss would.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common.events import CallEvent
from services.common.kafka import send_grouped
from services.common.logging import get_logger
from services.gateway.adapters.spool import Spool, SpoolError
from services.gateway.metrics import GatewayMetrics

log = get_logger(__name__)

DRAIN_BATCH = 500
# Requests that arrive together reach the queue over several turns of the event loop, not in
# one: aiohttp hands the bytes to the connection (a turn), the connection's task starts the
# request's task (the next), the request's task runs the handler (the third, on Python 3.11).
# Waiting that many turns before taking a group lets a whole burst join it. Measured with
# bench/gateway.py at 64 connections: 32 events a group without the wait, 64 with it (every
# connection's request), and about a fifth less CPU a request, as each produce request costs
# aiokafka ~300 us whatever it carries. Idle, the wait is three empty turns: microseconds.
GATHER_TURNS = 3
MAX_BACKOFF_S = 5.0


class Stored(enum.StrEnum):
    BROKER = "broker"
    SPOOL = "spool"


class PublishError(RuntimeError):
    """Neither the broker nor the spool could take the event."""


class Publisher(Protocol):
    """What the handlers need of a publisher (tests pass a fake that needs no broker)."""

    @property
    def broker_ok(self) -> bool: ...

    @property
    def spool_depth(self) -> int: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool: ...

    def publish(self, event: CallEvent) -> asyncio.Future[Stored]:
        """Store the event durably: await the answer, or :class:`PublishError`. A future, not
        a coroutine: one coroutine less to create and resume on every status callback."""
        ...

    def publish_soon(self, event: CallEvent) -> None:
        """Store the event like :meth:`publish`, without waiting: for an event whose answer
        does not depend on it. Never lost silently: a failure is logged, and ``close`` stores
        whatever is still queued."""
        ...


# A queued event: key, value, and the future of the request waiting for it (None: nobody).
_Queued = tuple[bytes, bytes, "asyncio.Future[Stored] | None"]


class EventPublisher:
    """The broker (``acks=all``) when it answers, else the fsync'd spool."""

    def __init__(
        self,
        producer_factory: Callable[[], AIOKafkaProducer],
        topic: str,
        spool: Spool,
        metrics: GatewayMetrics,
        timeout_s: float = 5.0,
    ) -> None:
        self._producer_factory = producer_factory
        self._topic = topic
        self._spool = spool
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._broker_ok = False
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._queue: list[_Queued] = []
        self._queued = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        metrics.spool_depth.set_function(lambda: self._spool.depth)
        self._published_to_broker = metrics.published.labels(Stored.BROKER)
        self._published_to_spool = metrics.published.labels(Stored.SPOOL)
        self._published_failed = metrics.published.labels("failed")
        self._groups = metrics.publish_groups

    @property
    def broker_ok(self) -> bool:
        return self._producer is not None and self._broker_ok

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    async def start(self) -> None:
        """Never blocks on the broker: the gateway serves (into the spool) while it connects."""
        await self._spool.open()
        self._runner = asyncio.create_task(self._run(), name="publisher")
        self._flusher = asyncio.create_task(self._flush_queue(), name="publisher-groups")

    async def close(self) -> None:
        """Store everything queued (broker or spool), then stop the producer and the spool."""
        self._closing = True
        self._queued.set()
        if self._flusher is not None:
            await self._flusher
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._producer is not None:
            # stop() flushes everything still batched in the producer before returning.
            await self._producer.stop()
            self._producer = None
        self._spool.close()

    async def ready(self) -> bool:
        return self.broker_ok or await self._spool.writable()

    def publish(self, event: CallEvent) -> asyncio.Future[Stored]:
        waiter: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._enqueue((event.key(), event.encode(), waiter))
        return waiter

    def publish_soon(self, event: CallEvent) -> None:
        self._enqueue((event.key(), event.encode(), None))

    def _enqueue(self, item: _Queued) -> None:
        if self._flusher is None or self._flusher.done():
            # Not started, or closed: nothing would ever store it.
            self._failed([item], "publisher not running")
            return
        self._queue.append(item)
        self._queued.set()

    async def _flush_queue(self) -> None:
        """One group at a time: everything queued while the previous group was stored, and in
        the few turns of the loop after (see ``GATHER_TURNS``)."""
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            for _turn in range(GATHER_TURNS):
                await asyncio.sleep(0)
            group, self._queue = self._queue, []
            try:
                await self._store(group)
            except Exception as exc:  # a bug must not leave requests waiting for ever
                log.exception("publish_group_failed", error=repr(exc))
                self._failed(group, repr(exc))

    async def _store(self, group: list[_Queued]) -> None:
        self._groups.inc()
        producer = self._producer
        if producer is not None and self._broker_ok:
            try:
                async with asyncio.timeout(self._timeout_s):
                    acks = await send_grouped(producer, self._topic, [i[:2] for i in group])
                    await asyncio.gather(*acks)
            except (KafkaError, TimeoutError) as exc:
                self._mark_broker_down(exc)
            else:
                self._published_to_broker.inc(len(group))
                _resolve(group, Stored.BROKER)
                return
        try:
            await self._spool.append_many(self._topic, [i[:2] for i in group])
        except SpoolError as exc:
            self._failed(group, str(exc))
            return
        self._published_to_spool.inc(len(group))
        self._wake.set()
        _resolve(group, Stored.SPOOL)

    def _failed(self, group: list[_Queued], error: str) -> None:
        self._published_failed.inc(len(group))
        for key, _value, waiter in group:
            # The key is the call's root CallSid: the line says which call's event is gone.
            log.error("event_not_stored", call_sid=key.decode(errors="replace"), error=error)
            if waiter is not None and not waiter.done():
                waiter.set_exception(PublishError(error))

    def _mark_broker_down(self, exc: BaseException) -> None:
        if self._broker_ok:
            log.warning("broker_unavailable", error=repr(exc), action="spooling events")
        self._broker_ok = False
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._step()
            except Exception as exc:  # keep draining whatever one step hit
                log.exception("publisher_step_failed", error=repr(exc))
            if self._broker_ok and not self._spool.depth:
                backoff = 0.2
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _step(self) -> None:
        if self._producer is None:
            await self._connect()
        elif self._spool.depth:
            await self._drain_once()
        elif not self._broker_ok:
            # Nothing spooled to probe with: let the next publish try the broker again.
            self._broker_ok = True

    async def _connect(self) -> None:
        producer = self._producer_factory()
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await producer.start()
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("broker_connect_failed", error=repr(exc))
            with contextlib.suppress(Exception):
                await producer.stop()
            return
        self._producer = producer
        self._broker_ok = True
        log.info("broker_connected")

    async def _drain_once(self) -> None:
        assert self._producer is not None
        try:
            batch = await self._spool.oldest(DRAIN_BATCH)
        except SpoolError as exc:
            log.error("spool_unreadable", error=str(exc))
            return
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
                for item in batch:
                    by_topic.setdefault(item.topic, []).append((item.key, item.value))
                acks = [
                    ack
                    for topic, records in by_topic.items()
                    for ack in await send_grouped(self._producer, topic, records)
                ]
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError) as exc:
            self._mark_broker_down(exc)
            return
        try:
            await self._spool.remove([item.id for item in batch])
        except SpoolError as exc:
            # They reached the broker; sending them again later only makes duplicates.
            log.error("spool_not_trimmed", error=str(exc))
        if not self._broker_ok:
            log.info("broker_back", drained=len(batch), left=self._spool.depth)
        self._broker_ok = True


def _resolve(group: list[_Queued], stored: Stored) -> None:
    for _key, _value, waiter in group:
        if waiter is not None and not waiter.done():  # done: its request was cancelled
            waiter.set_result(stored)
