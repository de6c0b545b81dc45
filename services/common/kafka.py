"""Kafka client factories: one place decides acks, idempotence and timeouts."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from services.common.settings import KafkaSettings


def make_producer(settings: KafkaSettings, **overrides: object) -> AIOKafkaProducer:
    """A producer whose acknowledgement means the event is durably stored.

    ``acks="all"`` waits for every in-sync replica. Idempotence (no duplicates from the
    producer's own retries) is on for Apache Kafka and off for the local Tansu broker,
    which refuses ``InitProducerId``; duplicates are harmless anyway, as consumers dedupe.
    """
    config: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "linger_ms": 2,
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
        "client_id": "calltrail",
    }
    config.update(overrides)
    return AIOKafkaProducer(**config)  # type: ignore[arg-type]
