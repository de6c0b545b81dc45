"""The recorder: the consumer loop plus a small HTTP server for health and metrics.

``init_app(settings)`` wires it; the consumer runs as a background task owned by a
``cleanup_ctx``, so SIGTERM finishes the batch in hand, commits it, and leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime

from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.kafka import make_producer
from services.common.logging import get_logger
from services.common.observability import (
    ACCESS_LOG_CLASS,
    REGISTRY,
    HttpMetrics,
    healthz_view,
    metrics_view,
    serve,
)
from services.recorder.adapters.kintone import KintoneClient
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.consumer import RecorderConsumer
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.metrics import RecorderMetrics
from services.recorder.settings import RecorderSettings, WritebackMode
from services.recorder.writeback import WritebackWorker

log = get_logger(__name__)


@dataclass(slots=True)
class Recorder:
    settings: RecorderSettings
    engine: AsyncEngine
    repository: CallRepository
    consumer: RecorderConsumer
    metrics: RecorderMetrics
    stopping: asyncio.Event


RECORDER = web.AppKey("recorder", Recorder)


def make_consumer(settings: RecorderSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        settings.kafka_topic,
        bootstrap_servers=settings.kafka_bootstrap.split(","),
        group_id=settings.recorder_group,
        client_id="calltrail-recorder",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )


def init_app(settings: RecorderSettings) -> web.Application:
    registry = CollectorRegistry()
    http_metrics = HttpMetrics(registry)
    metrics = RecorderMetrics(registry)
    engine = make_engine(settings.database_url, pool_size=4)
    writeback = settings.kintone_writeback is not WritebackMode.OFF
    repository = CallRepository(
        engine,
        parse_tariffs(settings.calltrail_tariff.read_text()),
        settings.zone,
        settings.home_region,
        writeback_delay_s=settings.kintone_writeback_delay_s if writeback else None,
    )
    consumer = RecorderConsumer(
        consumer_factory=lambda: make_consumer(settings),
        dlq_producer_factory=lambda: make_producer(settings, client_id="calltrail-recorder-dlq"),
        dlq_topic=settings.kafka_dlq_topic,
        repository=repository,
        metrics=metrics,
        batch_max=settings.recorder_batch_max,
    )
    app = web.Application()
    app[REGISTRY] = registry
    app[ACCESS_LOG_CLASS] = http_metrics.access_logger()
    app[RECORDER] = Recorder(settings, engine, repository, consumer, metrics, asyncio.Event())
    app.cleanup_ctx.append(_consumer_ctx)
    if writeback:
        app.cleanup_ctx.append(_writeback_ctx)
    app.router.add_get("/healthz", healthz_view)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def prepare_database(recorder: Recorder) -> None:
    """Copy the tariff file into the database and seed the company's number, retrying until
    PostgreSQL answers (it may start after us)."""
    backoff = 0.5
    while not recorder.stopping.is_set():
        try:
            await recorder.repository.store_tariffs()
            caller_id = recorder.settings.twilio_caller_id
            if caller_id:
                today = datetime.now(recorder.settings.zone).date()
                await recorder.repository.hold_number(
                    caller_id, date(today.year, today.month, 1), "TWILIO_CALLER_ID"
                )
            return
        except Exception as exc:
            log.warning("database_not_ready", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await recorder.stopping.wait()
            backoff = min(backoff * 2, 10.0)


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    recorder = app[RECORDER]

    async def consume() -> None:
        await prepare_database(recorder)
        await recorder.consumer.run(recorder.stopping)

    task = asyncio.create_task(consume(), name="recorder-consumer")
    yield
    recorder.stopping.set()
    try:
        await task
    finally:
        await recorder.engine.dispose()
        log.info("recorder_stopped")


async def _writeback_ctx(app: web.Application) -> AsyncIterator[None]:
    """The kintone write-back worker: its own task, outside the consumer's transactions."""
    recorder = app[RECORDER]
    settings = recorder.settings
    metrics = recorder.metrics
    assert settings.kintone_base_url is not None

    def counted(app_id: int, outcome: str) -> None:
        metrics.kintone_requests.labels(outcome).inc()
        metrics.kintone_requests_today.labels(str(app_id)).set(client.requests_today(app_id))

    client = KintoneClient(
        settings.kintone_base_url,
        settings.kintone_tokens,
        guest_space_id=settings.kintone_guest_space,
        max_concurrency=settings.kintone_max_concurrency,
        on_request=counted,  # type: ignore[arg-type]
    )
    worker = WritebackWorker(recorder.engine, client, settings)
    task = asyncio.create_task(worker.run(recorder.stopping), name="kintone-writeback")
    yield
    recorder.stopping.set()
    try:
        await task
    finally:
        await client.close()


async def readyz(request: web.Request) -> web.Response:
    recorder = request.app[RECORDER]
    database = await _database_answers(recorder.engine)
    body = {"consuming": recorder.consumer.running, "database": database}
    ready = recorder.consumer.running and database
    return web.json_response(
        {"status": "ready" if ready else "unavailable", **body}, status=200 if ready else 503
    )


async def _database_answers(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(2):
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
    except Exception:
        return False
    return True


def run(settings: RecorderSettings) -> None:
    log.info("recorder_starting", topic=settings.kafka_topic, group=settings.recorder_group)
    serve(init_app(settings), settings.recorder_host, settings.recorder_port)
