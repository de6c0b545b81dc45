"""The recorder: the consumer loop and the kintone write-back worker, plus a small HTTP server
for health and metrics.

``init_app(settings)`` wires it (through :func:`bootstrap`); each background task is owned by
a ``cleanup_ctx``, so SIGTERM finishes the batch in hand, commits it, and leaves the group. A
task that dies of a bug stops the process non-zero (``stop_if_it_fails``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.logging import get_logger
from services.common.observability import (
    ACCESS_LOG_CLASS,
    FAILURES,
    REGISTRY,
    HttpMetrics,
    healthz_view,
    metrics_view,
    serve,
    stop_if_it_fails,
)
from services.recorder.adapters.storage import is_outage
from services.recorder.bootstrap import Recorder, bootstrap
from services.recorder.entrypoints.consumer import RecorderConsumer
from services.recorder.settings import RecorderSettings

log = get_logger(__name__)

RECORDER = web.AppKey("recorder", Recorder)
CONSUMER = web.AppKey("consumer", RecorderConsumer)


def init_app(settings: RecorderSettings, recorder: Recorder | None = None) -> web.Application:
    """The application; ``recorder`` replaces the dependencies :func:`bootstrap` would build."""
    recorder = recorder or bootstrap(settings)
    app = web.Application()
    app[RECORDER] = recorder
    app[CONSUMER] = RecorderConsumer(
        consumer_factory=recorder.consumer_factory,
        dlq_producer_factory=recorder.dlq_producer_factory,
        dlq_topic=settings.kafka_dlq_topic,
        recorder=recorder.recorder,
        metrics=recorder.metrics,
        batch_max=settings.recorder_batch_max,
    )
    app[REGISTRY] = recorder.registry
    app[ACCESS_LOG_CLASS] = HttpMetrics(recorder.registry).access_logger()
    app[FAILURES] = []
    app.cleanup_ctx.append(_consumer_ctx)
    if recorder.writeback is not None:
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
            await recorder.repository.store_tariffs(recorder.tariffs)
            caller_id = recorder.settings.twilio_caller_id
            if caller_id:
                today = datetime.now(recorder.settings.zone).date()
                await recorder.repository.hold_number(
                    caller_id, date(today.year, today.month, 1), "TWILIO_CALLER_ID"
                )
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("database_not_ready", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await recorder.stopping.wait()
            backoff = min(backoff * 2, 10.0)


async def _consumer_ctx(app: web.Application) -> AsyncIterator[None]:
    recorder = app[RECORDER]

    async def consume() -> None:
        await prepare_database(recorder)
        await app[CONSUMER].run(recorder.stopping)

    task = asyncio.create_task(consume(), name="recorder-consumer")
    stop_if_it_fails(app, task)
    yield
    recorder.stopping.set()
    try:
        with contextlib.suppress(Exception):  # a failure was logged when the task ended
            await task
    finally:
        await recorder.engine.dispose()
        log.info("recorder_stopped")


async def _writeback_ctx(app: web.Application) -> AsyncIterator[None]:
    """The kintone write-back worker: its own task, outside the consumer's transactions."""
    recorder = app[RECORDER]
    assert recorder.writeback is not None
    assert recorder.kintone is not None
    task = asyncio.create_task(recorder.writeback.run(recorder.stopping), name="kintone-writeback")
    stop_if_it_fails(app, task)
    yield
    recorder.stopping.set()
    try:
        with contextlib.suppress(Exception):  # a failure was logged when the task ended
            await task
    finally:
        await recorder.kintone.close()


async def readyz(request: web.Request) -> web.Response:
    recorder = request.app[RECORDER]
    database = await _database_answers(recorder.engine)
    consuming = request.app[CONSUMER].running
    body = {"consuming": consuming, "database": database}
    ready = consuming and database
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
