"""The consumer's failure handling, on fakes (no broker, no database): poison events go to
the DLQ before the offsets move, an outage is retried without committing, stopping during an
outage commits nothing, and a bug stops the consumer with its batch uncommitted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from services.devtools.call_flows import answered_call
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.entrypoints.consumer import RecorderConsumer
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.recording import CallRecorder
from services.recorder.settings import DEFAULT_TARIFF
from tests.conversation_events import recording_event, transcript
from tests.unit.recorder.fakes import FakeKafka, FakeLegStore, record_of

AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def consumer_on(store: FakeLegStore, kafka: FakeKafka) -> RecorderConsumer:
    return RecorderConsumer(
        consumer_factory=lambda: kafka,
        dlq_producer_factory=lambda: kafka,
        dlq_topic="calls.dlq",
        recorder=CallRecorder(
            store,
            parse_tariffs(DEFAULT_TARIFF.read_text()),
            ZoneInfo("Asia/Tokyo"),
            writeback_delay_s=0,
        ),
        metrics=RecorderMetrics(CollectorRegistry()),
        batch_max=100,
        retry_backoff_s=0.001,
    )


async def run(store: FakeLegStore, *batches: list[object]) -> FakeKafka:
    """Consume the batches; stop once they are read and every one is stored."""
    stopping = asyncio.Event()
    kafka = FakeKafka(
        [list(b) for b in batches],  # type: ignore[misc]
        stopping,
        until=lambda: store.commits >= len(batches),
    )
    async with asyncio.timeout(5):
        await consumer_on(store, kafka).run(stopping)
    return kafka


async def test_a_call_is_recorded_and_its_offsets_committed() -> None:
    store = FakeLegStore()
    events = answered_call(at=AT)
    kafka = await run(store, [record_of(e, i) for i, e in enumerate(events)])
    assert kafka.log == [("commit", {0: len(events)})]
    assert {leg.leg.leg.value for leg in store.legs.values()} == {"browser", "pstn"}
    assert len(store.jobs) == 1  # the call ended: one write-back job


async def test_poison_is_dead_lettered_before_the_commit_and_the_rest_recorded() -> None:
    store = FakeLegStore()
    good = answered_call(at=AT)
    bad = answered_call(at=AT, to="+81312345678")
    store.unstorable = {bad[0].call_sid}  # PostgreSQL refuses this leg's events
    records = [record_of(b"not json", 0)]
    records += [record_of(e, i + 1) for i, e in enumerate(good + bad)]
    kafka = await run(store, records)
    dead = [entry for entry in kafka.log if entry[0] == "dlq"]
    refused = sum(1 for e in bad if e.call_sid == bad[0].call_sid)
    assert len(dead) == 1 + refused
    assert dead[0][2].startswith("not JSON")
    assert all(entry[2].startswith("not storable") for entry in dead[1:])
    # Every dead letter is on the DLQ before the offsets move past it.
    assert kafka.log[-1] == ("commit", {0: len(records)})
    assert [entry[0] for entry in kafka.log] == ["dlq"] * len(dead) + ["commit"]
    assert good[0].call_sid in store.legs


async def test_an_outage_is_retried_and_only_then_committed() -> None:
    store = FakeLegStore(failures=[ConnectionRefusedError(), TimeoutError()])
    events = answered_call(at=AT)
    kafka = await run(store, [record_of(e, i) for i, e in enumerate(events)])
    assert kafka.log == [("commit", {0: len(events)})]
    assert store.commits == 1
    assert len(store.legs) == 2


async def test_stopping_during_an_outage_commits_nothing() -> None:
    store = FakeLegStore(failures=[ConnectionResetError()] * 10_000)
    stopping = asyncio.Event()
    events = answered_call(at=AT)
    # SIGTERM while the database is away: the batch is read, its store keeps retrying.
    kafka = FakeKafka([[record_of(e, i) for i, e in enumerate(events)]], stopping)
    async with asyncio.timeout(5):
        await consumer_on(store, kafka).run(stopping)
    assert kafka.log == []  # no commit: the events are read again after the restart
    assert store.legs == {}


@pytest.mark.parametrize("bug", [TypeError("merge got a None"), KeyError("status")])
async def test_a_bug_stops_the_consumer_with_its_batch_uncommitted(bug: Exception) -> None:
    store = FakeLegStore(failures=[bug])
    events = answered_call(at=AT)
    with pytest.raises(type(bug)):
        await run(store, [record_of(e, i) for i, e in enumerate(events)])
    assert store.legs == {}
    assert store.commits == 0


async def test_recordings_and_transcripts_are_recorded_with_the_call() -> None:
    store = FakeLegStore()
    events = answered_call(at=AT)
    root = events[0].root_call_sid
    extra = [recording_event(root, at=AT), *transcript(root, [("inbound_track", "はい")], at=AT)]
    records = [record_of(e, i) for i, e in enumerate(events + extra)]
    kafka = await run(store, records)
    assert kafka.log == [("commit", {0: len(records)})]
    assert (len(store.legs), len(store.recordings), len(store.segments)) == (2, 1, 1)
    assert len(store.events) == len(records)
