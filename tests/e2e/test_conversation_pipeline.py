"""The conversation end to end, as processes (CONTRACT.md section 11): `calltrail simulate`
against a gateway that records and transcribes, the recorder folding it into PostgreSQL. Every
call a person answered reads back in spoken order with the right speakers, whatever order
its utterances came in, and has its recording; nothing else does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.devtools.broker import LocalBroker, free_port
from services.devtools.simulate import SCRIPTS, Simulator, plan_calls, plan_inbound_calls
from services.devtools.twilio_player import TwilioSigner
from tests.e2e.conftest import recorder_env, start_gateway, start_recorder
from tests.factories import ACCOUNT_SID, APP_SID, AUTH_TOKEN, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.recorder_support import query

SAYS = {"staff": "担当者", "customer": "お客様"}


def spoken(direction: str, lines: int) -> str:
    """The first ``lines`` of the simulator's script, as call_transcripts reads them."""
    return "\n".join(f"{SAYS[who]}: {text}" for who, text in SCRIPTS[direction][:lines])


def test_simulated_conversations_read_back_in_spoken_order_with_their_speakers(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    gateway, base = start_gateway(
        kafka_broker.bootstrap,
        topic,
        tmp_path,
        recording="dual",
        transcription="on",
        ring_identities=["kintone_1", "kintone_2"],
        inbound_forward_to="+81312345678",
    )
    env = recorder_env(kafka_broker.bootstrap, topic, database_url, free_port())
    recorder = start_recorder(env, tmp_path / "recorder.log")
    try:
        outbound, inbound = plan_calls(16, seed=1906), plan_inbound_calls(10, seed=1907)
        simulator = Simulator(
            base,
            TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL),
            account_sid=ACCOUNT_SID,
            app_sid=APP_SID,
            caller_id=CALLER_ID,
        )
        summary = asyncio.run(simulator.run(outbound, progress=False, inbound=inbound))
        assert summary.failures == []
        conversations = summary.conversation["recordings"]  # one per call someone answered
        assert conversations > 0

        rows: list[tuple[object, ...]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = asyncio.run(
                query(database_url, "SELECT call_sid, text, status FROM call_transcripts")
            )
            if len(rows) == len(outbound) + len(inbound) and all(r[2] == "complete" for r in rows):
                break
            time.sleep(0.2)
        transcripts = {str(sid): (str(text), status) for sid, text, status in rows}
        direction = {c.parent_sid: "outbound" for c in outbound}
        direction |= {c.parent_sid: "inbound" for c in inbound}
        assert set(transcripts) == set(direction)
        heard = 0
        for call_sid, (text, status) in transcripts.items():
            assert status == "complete", call_sid
            lines = text.count("\n") + 1 if text else 0
            assert text == spoken(direction[call_sid], lines), call_sid
            heard += lines > 0
        assert heard == conversations
        answered = {c.parent_sid for c in outbound if c.outcome == "completed"}
        assert {
            sid for sid, (text, _) in transcripts.items() if direction[sid] == "outbound" and text
        } == answered

        recordings = asyncio.run(
            query(database_url, "SELECT call_sid, status, channels, source FROM recordings")
        )
        assert len(recordings) == conversations
        assert {r[0] for r in recordings} == {s for s, (text, _) in transcripts.items() if text}
        assert {tuple(r[1:]) for r in recordings} == {("completed", 2, "dial")}
    finally:
        assert recorder.stop() == 0
        assert gateway.stop() == 0
    for log in (tmp_path / "recorder.log", tmp_path / "gateway.log"):
        text = log.read_text()
        assert SCRIPTS["outbound"][0][1] not in text  # what was said is never logged
        assert "api.twilio.com" not in text
