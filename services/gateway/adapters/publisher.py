"""Publishing events durably: the broker (acks=all) when it answers, else the local spool.

A 204 to Twilio means "stored": either the broker acknowledged the event, or it is fsync'd in
the spool and a background task will hand it to the broker once it is back. Only when both
fail does :meth:`EventPublisher.publish` raise, and Twilio is told 503 so it retries.

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
from services.common.logging import get_logger
from services.gateway.adapters.spool import Spool, SpoolError
from services.gateway.metrics import GatewayMetrics

log = get_logger(__name__)

DRAIN_BATCH = 500
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

    async def publish(self, event: CallEvent) -> Stored:
        """Store the event durably, or raise :class:`PublishError`."""
        ...


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
        metrics.spool_depth.set_function(lambda: self._spool.depth)
        self._published_to_broker = metrics.published.labels(Stored.BROKER)

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

    async def close(self) -> None:
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

    async def publish(self, event: CallEvent) -> Stored:
        key, value = event.key(), event.encode()
        producer = self._producer
        if producer is not None and self._broker_ok:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await (await producer.send(self._topic, value, key=key))
            except (KafkaError, TimeoutError) as exc:
                self._mark_broker_down(exc)
            else:
                self._published_to_broker.inc()
                return Stored.BROKER
        try:
            await self._spool.append(self._topic, key, value)
        except SpoolError as exc:
            self._metrics.published.labels("failed").inc()
            log.error("event_not_stored", call_sid=event.call_sid, error=str(exc))
            raise PublishError(str(exc)) from None
        self._metrics.published.labels(Stored.SPOOL).inc()
        self._wake.set()
        return Stored.SPOOL

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
                pending = [
                    await self._producer.send(item.topic, item.value, key=item.key)
                    for item in batch
                ]
                await asyncio.gather(*pending)
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
