"""Kafka client factories: one place decides acks, idempotence and timeouts."""

from __future__ import annotations

import functools
import random

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from services.common.settings import KafkaSettings


@functools.lru_cache(maxsize=16_384)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner (the Java client's murmur2, so the same partitions), with
    the hash memoised: aiokafka's murmur2 is pure Python (~5 us a key), and every status of
    every leg of a call carries the same key."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]


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
        "partitioner": key_partitioner,
    }
    config.update(overrides)
    return AIOKafkaProducer(**config)
