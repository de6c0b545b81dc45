"""SIGTERM to the recorder under load (Kubernetes rolling it): it finishes the batch in hand,
commits, leaves the group and exits 0; nothing it consumed is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.devtools.broker import LocalBroker, free_port
from services.devtools.call_flows import answered_call
from tests.e2e.conftest import recorder_env, start_recorder
from tests.integration.recorder_support import publish, query

CALLS = 4000  # 24,000 events in batches of 200: the signal lands mid-stream


def test_sigterm_under_load_loses_nothing(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    events = [event for _ in range(CALLS) for event in answered_call(duration_s=61)]
    env = recorder_env(kafka_broker.bootstrap, topic, database_url, free_port())
    env["RECORDER_BATCH_MAX"] = "200"
    asyncio.run(publish(kafka_broker.bootstrap, topic, events))
    recorder = start_recorder(env, tmp_path / "recorder-1.log")

    deadline = time.monotonic() + 60
    written = 0
    while written < 200 and time.monotonic() < deadline:
        [(written,)] = asyncio.run(query(database_url, "SELECT count(*) FROM call_events"))
        time.sleep(0.02)
    recorder.terminate()  # one SIGTERM, as the kubelet sends
    assert recorder.stop() == 0, recorder.log.read_text()
    [(after_first,)] = asyncio.run(query(database_url, "SELECT count(*) FROM call_events"))
    assert 200 <= after_first < len(events), "the signal should land while events flow"

    recorder = start_recorder(env, tmp_path / "recorder-2.log")
    try:
        recorded = 0
        deadline = time.monotonic() + 90
        while recorded < len(events) and time.monotonic() < deadline:
            [(recorded,)] = asyncio.run(query(database_url, "SELECT count(*) FROM call_events"))
            time.sleep(0.1)
        assert recorded == len(events)
        [(legs, distinct, charged)] = asyncio.run(
            query(
                database_url,
                "SELECT count(*), count(DISTINCT call_sid),"
                " count(*) FILTER (WHERE charge IS NOT NULL) FROM calls",
            )
        )
        assert legs == distinct == charged == 2 * CALLS
    finally:
        assert recorder.stop() == 0
