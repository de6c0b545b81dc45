"""The conversation `calltrail simulate` plays (CONTRACT.md section 11): transcription sessions
and recordings in Twilio's shapes, read back by the gateway's own parsers."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services.devtools.simulate import (
    CUSTOMER,
    SCRIPTS,
    STAFF,
    TRACKS,
    Conversation,
    interleave,
    transcription_forms,
)
from services.gateway.domain.callbacks import transcript_event
from tests.factories import ACCOUNT_SID

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _session(direction: str, talk_s: int, seed: int = 1) -> list[dict[str, str]]:
    return transcription_forms(
        account_sid=ACCOUNT_SID,
        call_sid="CA" + "1" * 32,
        direction=direction,
        talk_s=talk_s,
        started_at=START,
        answered_at=START + timedelta(seconds=6),
        language="ja-JP",
        seed=seed,
    )


@pytest.mark.parametrize("direction", ["outbound", "inbound"])
def test_a_session_starts_says_the_script_in_order_and_stops(direction: str) -> None:
    forms = _session(direction, talk_s=600)
    events = [form["TranscriptionEvent"] for form in forms]
    assert events[0] == "transcription-started"
    assert events[-1] == "transcription-stopped"
    said = forms[1:-1]
    assert [json.loads(f["TranscriptionData"])["transcript"] for f in said] == [
        text for _, text in SCRIPTS[direction]
    ]
    assert [int(f["SequenceId"]) for f in forms] == list(range(1, len(forms) + 1))
    assert len({f["TranscriptionSid"] for f in forms}) == 1
    for form in forms:  # every one of them a callback the gateway takes
        event = transcript_event(form, {}, START)
        assert event.sequence == int(form["SequenceId"])


def test_the_tracks_name_the_speakers_from_the_side_that_ran_the_twiml() -> None:
    """Outbound: the browser's call ran the TwiML (inbound_track: the salesperson); inbound:
    the customer's."""
    assert TRACKS["outbound", STAFF] == TRACKS["inbound", CUSTOMER] == "inbound_track"
    assert TRACKS["outbound", CUSTOMER] == TRACKS["inbound", STAFF] == "outbound_track"
    for direction in ("outbound", "inbound"):
        said = _session(direction, talk_s=600)[1:-1]
        speakers = [speaker for speaker, _ in SCRIPTS[direction]]
        assert [f["Track"] for f in said] == [TRACKS[direction, s] for s in speakers]


def test_a_short_call_says_little_and_an_unanswered_one_nothing() -> None:
    assert len(_session("outbound", talk_s=5)) == 3  # started, one utterance, stopped
    assert [f["TranscriptionEvent"] for f in _session("inbound", talk_s=0)] == [
        "transcription-started",
        "transcription-stopped",
    ]


def test_interleave_keeps_each_list_s_order() -> None:
    rng = random.Random(3)
    for _ in range(50):
        first = [("a", i) for i in range(rng.randint(0, 6))]
        second = [("b", i) for i in range(rng.randint(0, 6))]
        merged = interleave(first, second, rng)
        assert sorted(merged) == sorted(first + second)
        assert [m for m in merged if m[0] == "a"] == first
        assert [m for m in merged if m[0] == "b"] == second


def test_the_conversation_is_what_the_twiml_asked_for() -> None:
    root = ET.fromstring(
        '<Response><Start><Transcription languageCode="en-US" '
        'statusCallbackUrl="https://gw.example/twilio/transcription?app_id=1#rc=3"/></Start>'
        "<Dial/></Response>"
    )

    def path(url: str | None) -> str:
        return (url or "").split("#", 1)[0].removeprefix("https://gw.example")

    conversation = Conversation.of(root, path)
    assert conversation.transcription_path == "/twilio/transcription?app_id=1"
    assert conversation.language == "en-US"
    assert Conversation.of(ET.fromstring("<Response><Dial/></Response>"), path) == Conversation(
        None, ""
    )
