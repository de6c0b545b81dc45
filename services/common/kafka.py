"""Kafka client factories: one place decides acks, idempotence and timeouts."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Iterable
from typing import Any

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


# One produce request can carry a whole group of events per partition (see ``send_grouped``):
# batches far larger than aiokafka's 16 KiB default, yet under the broker's default
# message.max.bytes (1 MiB), which limits a record batch.
GROUP_BATCH_BYTES = 512 * 1024


class RecordTooLargeError(ValueError):
    """One record does not fit in an empty batch."""


async def send_grouped(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes]]
) -> list[asyncio.Future[object]]:
    """Hand many records to the producer as one closed batch per partition (more only when a
    batch is full), instead of one ``send`` (and one future) per record.

    Returns one future per batch: it resolves when the broker acknowledged that batch with the
    producer's ``acks`` (``"all"`` here), or fails with the batch's error. The partition of each
    record is :func:`key_partitioner`'s, the one ``producer.send`` would choose. Closed batches
    do not linger: the sender takes them at once, or as soon as the previous request to their
    broker is answered, so whatever piled up meanwhile goes out in one produce request.
    """
    partitions = sorted(await producer.partitions_for(topic))
    builders: dict[int, Any] = {}  # aiokafka's BatchBuilder
    futures: list[asyncio.Future[object]] = []
    create = producer.create_batch
    for key, value in records:
        partition = key_partitioner(key, partitions, partitions)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = create()
        if builder.append(key=key, value=value, timestamp=None) is None:
            # Full: send it as it is, and start the partition's next batch with this record.
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = create()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise RecordTooLargeError(f"a record of {len(value)} bytes exceeds a batch")
    for partition, builder in builders.items():
        builder.close()
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    return futures


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
        "max_batch_size": GROUP_BATCH_BYTES,
        "request_timeout_ms": 10_000,
        "retry_backoff_ms": 200,
        "client_id": "calltrail",
        "partitioner": key_partitioner,
    }
    config.update(overrides)
    return AIOKafkaProducer(**config)
