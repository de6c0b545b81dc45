"""The gateway as Kubernetes runs it: a process configured from the environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

from services.common.events import EventKind
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    recording_callback_form,
    status_callback_form,
    transcription_callback_form,
)
from tests.conftest import ReadEvents
from tests.e2e.conftest import ServiceProcess, settings_env
from tests.factories import ACCOUNT_SID, AUTH_TOKEN, TOKEN_KEY, gateway_settings_values


def callback(i: int) -> tuple[str, dict[str, str]]:
    """The i-th callback of the load: status callbacks, with a call's utterances and its
    recording among them (each with a CallSid of its own, to be found on the topic)."""
    if i % 3 == 1:
        return "/twilio/transcription", transcription_callback_form(
            account_sid=ACCOUNT_SID,
            call_sid=new_sid(),
            transcription_sid=new_sid("GT"),
            event="transcription-content",
            sequence=i,
            track="outbound_track",
            transcript="お電話ありがとうございます",
        )
    if i % 3 == 2:
        return "/twilio/recording", recording_callback_form(
            account_sid=ACCOUNT_SID, call_sid=new_sid(), recording_sid=new_sid("RE"), duration_s=30
        )
    return "/twilio/status", status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        status="completed",
        sequence=i,
        from_="+815012345678",
        to="+819012345678",
        direction="outbound-dial",
        duration_s=30,
    )


async def test_sigterm_under_load_loses_no_accepted_callback(
    gateway_process: tuple[ServiceProcess, str],
    twilio: TwilioSigner,
    topic: str,
    read_events: ReadEvents,
) -> None:
    service, base = gateway_process
    accepted: list[str] = []
    refused = 0
    enough_accepted = asyncio.Event()

    async def caller(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal refused
        for i in range(n):
            path, form = callback(i)
            headers, body = twilio.request(path, form)
            try:
                async with session.post(f"{base}{path}", data=body, headers=headers) as r:
                    if r.status == 204:
                        accepted.append(form["CallSid"])
                        if len(accepted) >= 200:
                            enough_accepted.set()
                    else:
                        refused += 1
            except aiohttp.ClientError:
                refused += 1  # the listener closed: Twilio would retry elsewhere

    async with aiohttp.ClientSession() as session:
        load = asyncio.gather(*(caller(session, 150) for _ in range(8)))
        await enough_accepted.wait()
        service.terminate()
        await load

    assert service.stop() == 0
    assert len(accepted) >= 200
    assert refused > 0, "the gateway stopped only after the load ended: SIGTERM came too late"
    events = [event for _, event in await read_events(topic, len(accepted))]
    published = {event.call_sid for event in events}
    assert set(accepted) <= published, f"lost {len(set(accepted) - published)} accepted callbacks"
    kinds = {event.kind for event in events}
    assert kinds == {EventKind.STATUS, EventKind.TRANSCRIPT, EventKind.RECORDING}
    log = service.log.read_text()
    assert AUTH_TOKEN not in log
    assert TOKEN_KEY not in log
    assert "お電話ありがとうございます" not in log


async def test_token_and_health_over_http(gateway_process: tuple[ServiceProcess, str]) -> None:
    _, base = gateway_process
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/token", data={"identity": "u_1"}, headers={"X-Calltrail-Key": TOKEN_KEY}
        ) as response:
            assert response.status == 200
            assert (await response.json())["identity"] == "u_1"
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{base}/metrics") as response:
            text = await response.text()
            assert (
                'calltrail_http_requests_total{method="POST",route="/token",status="200"}' in text
            )
            assert "calltrail_spool_depth 0.0" in text


def test_missing_setting_stops_the_service_with_one_line(tmp_path: Path) -> None:
    values = gateway_settings_values()
    del values["twilio_auth_token"]
    values["token_ttl_s"] = 100_000
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "gateway"],
        env=settings_env(values),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "TWILIO_AUTH_TOKEN" in lines[0]
    assert "TOKEN_TTL_S" in lines[0]
    assert "test-api-secret" not in result.stderr
    assert TOKEN_KEY not in result.stderr
