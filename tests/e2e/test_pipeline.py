"""The whole pipeline as processes: Twilio (simulated) → gateway → Kafka → recorder →
PostgreSQL → ``calltrail costs``, with the recorder killed mid-stream."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from services.devtools.broker import LocalBroker, free_port
from services.devtools.simulate import PlannedCall, SimulationSummary, Simulator, plan_calls
from services.devtools.twilio_player import TwilioSigner
from services.recorder.domain.charges import billable_minutes
from tests.e2e.conftest import ServiceProcess, recorder_env, start_recorder
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID
from tests.integration.recorder_support import query

RATES = {"mobile": Decimal("16.2"), "landline": Decimal("5.4"), "client": Decimal("0.25")}
TOKYO = ZoneInfo("Asia/Tokyo")


def mid_month() -> datetime:
    """Noon on the 10th of this month in Tokyo: the calls' month is the one the company's
    number is held in (seeded at start-up), whatever day the test runs."""
    today = datetime.now(TOKYO)
    return datetime(today.year, today.month, 10, 12, tzinfo=TOKYO).astimezone(UTC)


def expected_legs(call: PlannedCall) -> dict[str, tuple[str, str, Decimal | None]]:
    pstn_rate = RATES.get(call.destination)
    return {
        call.child_sid: (
            call.outcome,
            call.destination,
            None if pstn_rate is None else pstn_rate * billable_minutes(call.duration_s),
        ),
        call.parent_sid: (
            "completed",
            "client",
            RATES["client"] * billable_minutes(call.parent_duration_s),
        ),
    }


def test_simulated_calls_are_recorded_and_priced_to_the_yen_across_a_recorder_crash(
    gateway_process: tuple[ServiceProcess, str],
    kafka_broker: LocalBroker,
    topic: str,
    database_url: str,
    twilio: TwilioSigner,
    tmp_path: Path,
) -> None:
    _, gateway = gateway_process
    env = recorder_env(kafka_broker.bootstrap, topic, database_url, free_port())
    recorder = start_recorder(env, tmp_path / "recorder-1.log")

    calls = plan_calls(60, seed=20261122, start=mid_month())
    simulator = Simulator(
        gateway, twilio, account_sid=ACCOUNT_SID, app_sid=APP_SID, caller_id=CALLER_ID
    )

    async def play_with_a_crash() -> tuple[SimulationSummary, SimulationSummary, int]:
        playing = asyncio.create_task(simulator.run(calls[:30], concurrency=4, progress=False))
        written = 0
        while written < 10 and not playing.done():
            [(written,)] = await query(database_url, "SELECT count(*) FROM calls")
            await asyncio.sleep(0.02)
        recorder.process.kill()  # SIGKILL while events flow: mid-batch, no goodbye
        first = await playing
        second = await simulator.run(calls[30:], progress=False)
        return first, second, written

    first, second, written_before_crash = asyncio.run(play_with_a_crash())
    recorder.stop()
    assert 10 <= written_before_crash < 120
    assert first.failures == second.failures == []
    assert first.calls + second.calls == 60

    recorder = start_recorder(env, tmp_path / "recorder-2.log")
    try:
        expected: dict[str, tuple[str, str, Decimal | None]] = {}
        for call in calls:
            expected |= expected_legs(call)
        rows: list[tuple[object, ...]] = []
        for _ in range(300):
            rows = asyncio.run(
                query(
                    database_url,
                    "SELECT call_sid, status, destination_type, charge FROM calls"
                    " WHERE billable_minutes IS NOT NULL",
                )
            )
            if len(rows) >= len(expected):
                break
            asyncio.run(asyncio.sleep(0.1))
        assert {row[0]: tuple(row[1:]) for row in rows} == expected
        [(legs, distinct)] = asyncio.run(
            query(database_url, "SELECT count(*), count(DISTINCT call_sid) FROM calls")
        )
        assert legs == distinct == 120
    finally:
        assert recorder.stop() == 0

    month = mid_month().astimezone(TOKYO).strftime("%Y-%m")
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "costs", "--month", month, "--format", "json"],
        env={**env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = orjson.loads(result.stdout)
    usage = sum((charge for _, _, charge in expected.values() if charge is not None), Decimal(0))
    unrated = sum(1 for _, _, charge in expected.values() if charge is None)
    assert Decimal(report["usage_charge"]) == usage
    assert Decimal(report["rental_charge"]) == Decimal("108")
    assert Decimal(report["total"]) == usage + 108
    assert report["unrated_legs"] == unrated
    assert report["numbers"] == ["+815012345678"]
    assert report["currency"] == "JPY"
