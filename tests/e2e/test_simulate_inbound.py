"""``calltrail simulate`` as a command, inbound calls included, into the gateway as a process
configured from the environment (a ring group and a forward number)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from services.common.events import EventKind
from services.devtools.broker import LocalBroker
from tests.conftest import ReadEvents
from tests.e2e.conftest import start_gateway
from tests.factories import ACCOUNT_SID, APP_SID, AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL


def simulate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "simulate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def simulate_env() -> dict[str, str]:
    """This environment, with the test's Twilio account in place of any other."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    return env | {
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_TWIML_APP_SID": APP_SID,
        "TWILIO_CALLER_ID": CALLER_ID,
    }


def callbacks_in(output: str) -> int:
    found = re.search(r"\d+ calls, (\d+) status callbacks", output)
    assert found, output
    return int(found.group(1))


def test_simulate_plays_inbound_calls_into_a_gateway_process(
    kafka_broker: LocalBroker, topic: str, tmp_path: Path, read_events: ReadEvents
) -> None:
    gateway, base = start_gateway(
        kafka_broker.bootstrap,
        topic,
        tmp_path,
        ring_identities=["kintone_1", "kintone_2"],
        inbound_forward_to="+81312345678",
        ring_timeout_s=15,
    )
    try:
        env = simulate_env()
        args = ["--gateway", base, "--public-base-url", PUBLIC_BASE_URL, "--seed", "11"]
        result = simulate(*args, "--calls", "3", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        published = 3 + callbacks_in(result.stdout)  # a dial event for each outbound call
        assert result.stdout.rstrip().endswith("; inbound none")  # 3 // 4: none by default
        result = simulate(*args, "--calls", "0", "--inbound", "16", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "\n16 calls, " in result.stdout
        assert "; outcomes none; destinations none; inbound " in result.stdout
        published += 16 + callbacks_in(result.stdout)
    finally:
        assert gateway.stop() == 0

    events = [event for _, event in asyncio.run(read_events(topic, published, timeout_s=15))]
    assert len(events) == published
    kinds = Counter(e.kind for e in events)
    assert kinds[EventKind.DIAL] == 3
    assert kinds[EventKind.INBOUND] + kinds[EventKind.SIP_INBOUND] == 16
    rung = {e.to for e in events if (e.to or "").startswith("client:")}
    assert rung == {"client:kintone_1", "client:kintone_2"}
    inbound_roots = {
        e.call_sid for e in events if e.kind in (EventKind.INBOUND, EventKind.SIP_INBOUND)
    }
    for event in events:
        if event.parent_call_sid in inbound_roots:
            assert event.context.direction == "inbound"


def test_simulate_plays_missed_callers_into_a_gateway_that_takes_voicemail(
    kafka_broker: LocalBroker, topic: str, tmp_path: Path, read_events: ReadEvents
) -> None:
    gateway, base = start_gateway(
        kafka_broker.bootstrap,
        topic,
        tmp_path,
        ring_identities=["kintone_1", "kintone_2"],
        ring_timeout_s=15,
        voicemail="on",
        transcription="on",
    )
    try:
        env = simulate_env()
        args = ["--gateway", base, "--public-base-url", PUBLIC_BASE_URL, "--seed", "27"]
        result = simulate(*args, "--calls", "0", "--inbound", "16", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        # Callers who hang up while it rings, and voicemails with speech and without.
        for outcome in ("hung-up", "voicemail", "voicemail-silent"):
            assert re.search(rf"(number|line) {outcome} \d+", result.stdout), result.stdout
        voicemails = re.search(r"voicemails (\d+)", result.stdout)
        assert voicemails, result.stdout
        published = 16 + callbacks_in(result.stdout)
    finally:
        assert gateway.stop() == 0

    events = [event for _, event in asyncio.run(read_events(topic, published, timeout_s=15))]
    recorded = [e for e in events if e.kind is EventKind.RECORDING]
    assert len(recorded) == int(voicemails.group(1))  # nothing but the voicemails records
    assert {e.params["RecordingSource"] for e in recorded} == {"RecordVerb"}
    assert {e.params["RecordingStatus"] for e in recorded} == {"completed", "absent"}
