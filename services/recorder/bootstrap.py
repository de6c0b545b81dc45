"""Builds the recorder's dependencies from its settings, once per application.

``init_app`` calls :func:`bootstrap`; tests call it with replacements (another engine, a
kintone client pointed at the stand-in) and get the same wiring the service runs with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.kafka import make_producer
from services.common.settings import load_settings
from services.recorder.adapters.kintone import KintoneClient
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.adapters.twilio_rest import TwilioRest
from services.recorder.domain.history import WritebackMode
from services.recorder.domain.tariff import TariffBook, parse_tariffs
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.recording import CallRecorder
from services.recorder.service_layer.writeback import WritebackWorker
from services.recorder.settings import RecorderSettings, TwilioApiSettings


@dataclass(slots=True)
class Recorder:
    """What the recorder's tasks and views share."""

    settings: RecorderSettings
    registry: CollectorRegistry
    metrics: RecorderMetrics
    engine: AsyncEngine
    repository: CallRepository
    tariffs: TariffBook
    recorder: CallRecorder
    consumer_factory: Callable[[], AIOKafkaConsumer]
    dlq_producer_factory: Callable[[], AIOKafkaProducer]
    writeback: WritebackWorker | None  # None: KINTONE_WRITEBACK=off
    kintone: KintoneClient | None
    stopping: asyncio.Event


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


def make_kintone_client(settings: RecorderSettings, metrics: RecorderMetrics) -> KintoneClient:
    assert settings.kintone_base_url is not None  # required unless KINTONE_WRITEBACK=off

    def counted(app_id: int, outcome: str) -> None:
        metrics.kintone_request(app_id, outcome, client.requests_today)

    client = KintoneClient(
        settings.kintone_base_url,
        settings.kintone_tokens,
        guest_space_id=settings.kintone_guest_space,
        max_concurrency=settings.kintone_max_concurrency,
        on_request=counted,
    )
    return client


def bootstrap(
    settings: RecorderSettings,
    *,
    engine: AsyncEngine | None = None,
    consumer_factory: Callable[[], AIOKafkaConsumer] | None = None,
    kintone_client: KintoneClient | None = None,
    twilio: TwilioRest | None = None,
) -> Recorder:
    """``twilio``: where recordings are fetched from and deleted (RECORDING=dual with the
    write-back on); None: from TWILIO_ACCOUNT_SID, TWILIO_API_KEY, TWILIO_API_SECRET (and
    TWILIO_API_BASE_URL), which are then required."""
    registry = CollectorRegistry()
    metrics = RecorderMetrics(registry)
    engine = engine or make_engine(settings.database_url, pool_size=4)
    writeback = settings.kintone_writeback is not WritebackMode.OFF
    tariffs = parse_tariffs(settings.calltrail_tariff.read_text())
    repository = CallRepository(engine)
    recorder = CallRecorder(
        repository,
        tariffs,
        settings.zone,
        settings.home_region,
        writeback_delay_s=settings.kintone_writeback_delay_s if writeback else None,
        customer_app=settings.kintone_customer_app,
        conversation_writeback=settings.recording_on or settings.transcription_on,
    )
    client = worker = None
    if writeback:
        if settings.recording_on and twilio is None:
            twilio = TwilioRest.from_settings(load_settings(TwilioApiSettings, "recorder"))
        client = kintone_client or make_kintone_client(settings, metrics)
        worker = WritebackWorker(
            KintoneOutbox(engine),
            client,
            settings,
            home_region=settings.home_region,
            zone=settings.zone,
            metrics=metrics,
            media=twilio,
        )
    return Recorder(
        settings=settings,
        registry=registry,
        metrics=metrics,
        engine=engine,
        repository=repository,
        tariffs=tariffs,
        recorder=recorder,
        consumer_factory=consumer_factory or (lambda: make_consumer(settings)),
        dlq_producer_factory=lambda: make_producer(settings, client_id="calltrail-recorder-dlq"),
        writeback=worker,
        kintone=client,
        stopping=asyncio.Event(),
    )
