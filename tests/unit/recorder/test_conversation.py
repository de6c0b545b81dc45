"""Recordings and transcripts (CONTRACT.md section 11) folded on the in-memory store: who spoke
(by the track *and* the call's direction), spoken order whatever the arrival, repeats ignored,
statuses that never move back, prices from the tariff (unrated, never zero, without a rate)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from services.common.events import CallEvent
from services.devtools.call_flows import answered_call
from services.recorder.domain.batch import ReceivedEvent
from services.recorder.domain.conversation import (
    Recording,
    RecordingStatus,
    Speaker,
    Track,
    TranscriptionStatus,
    media_url,
    merge_recordings,
    speaker_of,
)
from services.recorder.domain.legs import Direction
from services.recorder.entrypoints.consumer import PoisonEventError, RecorderConsumer, to_received
from services.recorder.metrics import RecorderMetrics
from services.recorder.service_layer.recording import (
    BatchOutcome,
    CallRecorder,
    rerate_conversation_month,
)
from tests.conversation_events import (
    CUSTOMER_SAYS,
    STAFF_SAYS,
    WITH_CONVERSATION_RATES,
    WITHOUT_CONVERSATION_RATES,
    recording_event,
    transcript,
    transcript_event,
)
from tests.inbound_calls import inbound_call
from tests.unit.recorder.fakes import FakeKafka, FakeLegStore, record_of

AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
TOKYO = ZoneInfo("Asia/Tokyo")
NOVEMBER = datetime(2026, 11, 1).date()
WITHOUT_RATES = WITHOUT_CONVERSATION_RATES
WITH_RATES = WITH_CONVERSATION_RATES
IN, OUT = Track.INBOUND.value, Track.OUTBOUND.value


def received(events: list[CallEvent]) -> list[ReceivedEvent]:
    """As the consumer hands them over: read and checked (to_received), in this order."""
    return [to_received(record_of(e, i)) for i, e in enumerate(events)]


async def record(store: FakeLegStore, events: list[CallEvent], tariffs=WITH_RATES) -> BatchOutcome:  # type: ignore[no-untyped-def]
    return await CallRecorder(store, tariffs, TOKYO).record_events(received(events))


def said(store: FakeLegStore) -> list[tuple[str | None, str]]:
    """The stored utterances in spoken order: (speaker, text)."""
    ordered = sorted(store.segments.values(), key=lambda u: (u.transcription_sid, u.sequence_id))
    return [(u.speaker.value if u.speaker else None, u.text) for u in ordered]


# --- who spoke -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "track", "speaker"),
    [
        # Outbound: the TwiML runs on the browser's call; its own audio is the salesperson.
        (Direction.OUTBOUND, Track.INBOUND, Speaker.STAFF),
        (Direction.OUTBOUND, Track.OUTBOUND, Speaker.CUSTOMER),
        # Inbound (the number, LINE, a voicemail): it runs on the customer's call.
        (Direction.INBOUND, Track.INBOUND, Speaker.CUSTOMER),
        (Direction.INBOUND, Track.OUTBOUND, Speaker.STAFF),
    ],
)
def test_the_speaker_comes_from_the_track_and_the_calls_direction(
    direction: Direction, track: Track, speaker: Speaker
) -> None:
    assert speaker_of(direction, track) is speaker


def test_without_a_direction_there_is_no_speaker_yet() -> None:
    assert speaker_of(None, Track.INBOUND) is None
    assert speaker_of(None, Track.OUTBOUND) is None


async def test_an_outbound_calls_transcript_names_the_salesperson_and_the_customer() -> None:
    store = FakeLegStore()
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    conversation = transcript(root, [(IN, STAFF_SAYS), (OUT, CUSTOMER_SAYS)], at=AT)
    await record(store, call + conversation)
    assert said(store) == [("staff", STAFF_SAYS), ("customer", CUSTOMER_SAYS)]


async def test_an_inbound_calls_transcript_is_the_other_way_round() -> None:
    store = FakeLegStore()
    call = inbound_call(at=AT)
    conversation = transcript(
        call.root, [(IN, CUSTOMER_SAYS), (OUT, STAFF_SAYS)], at=AT, direction="inbound"
    )
    await record(store, call.events + conversation)
    assert said(store) == [("customer", CUSTOMER_SAYS), ("staff", STAFF_SAYS)]


@pytest.mark.parametrize("inbound", [False, True])
async def test_the_call_itself_says_the_direction_when_the_callback_does_not(
    inbound: bool,
) -> None:
    # No direction in the transcription callback's query: the root leg's row decides.
    store = FakeLegStore()
    events, root = _call(inbound)
    conversation = transcript(root, [(IN, "一"), (OUT, "二")], at=AT, direction=None)
    await record(store, events + conversation)
    expected = ["customer", "staff"] if inbound else ["staff", "customer"]
    assert [speaker for speaker, _ in said(store)] == expected


@pytest.mark.parametrize("inbound", [False, True])
async def test_a_transcript_before_its_call_gets_its_speakers_once_the_call_is_known(
    inbound: bool,
) -> None:
    store = FakeLegStore()
    events, root = _call(inbound)
    conversation = transcript(root, [(IN, "一"), (OUT, "二")], at=AT, direction=None)
    await record(store, conversation)
    assert [speaker for speaker, _ in said(store)] == [None, None]  # never guessed
    await record(store, events)
    expected = ["customer", "staff"] if inbound else ["staff", "customer"]
    assert [speaker for speaker, _ in said(store)] == expected


def _call(inbound: bool) -> tuple[list[CallEvent], str]:
    if inbound:
        call = inbound_call(at=AT)
        return call.events, call.root
    events = answered_call(at=AT)
    return events, events[0].root_call_sid


# --- order and repeats -----------------------------------------------------------------------


async def test_utterances_out_of_order_and_repeated_are_stored_once_in_spoken_order() -> None:
    store = FakeLegStore()
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    lines = [(IN if n % 2 else OUT, f"発言{n}") for n in range(1, 21)]
    conversation = transcript(root, lines, at=AT)
    shuffled = conversation + conversation[3:9]
    random.Random(19).shuffle(shuffled)
    first, second = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
    await record(store, call + first)
    await record(store, second)
    again = await record(store, conversation)
    assert again.new_events == 0
    assert again.new_utterances == 0
    assert [text for _, text in said(store)] == [text for _, text in lines]
    assert [
        u.sequence_id for u in sorted(store.segments.values(), key=lambda u: u.sequence_id)
    ] == list(range(2, 22))
    (transcription,) = store.transcriptions.values()
    assert transcription.transcription.status is TranscriptionStatus.COMPLETE


async def test_a_transcription_error_is_final() -> None:
    store = FakeLegStore()
    root = answered_call(at=AT)[0].root_call_sid
    events = transcript(root, [(IN, "一")], at=AT, end="transcription-error")
    stopped = transcript_event(root, "transcription-stopped", at=AT, sequence=9)
    await record(store, [stopped, *events])
    (transcription,) = store.transcriptions.values()
    assert transcription.transcription.status is TranscriptionStatus.FAILED


@pytest.mark.parametrize("final", ["completed", "absent", "failed"])
async def test_a_recordings_status_never_moves_back(final: str) -> None:
    store = FakeLegStore()
    root = answered_call(at=AT)[0].root_call_sid
    await record(store, [recording_event(root, at=AT, status=final)])
    await record(store, [recording_event(root, at=AT, status="in-progress")])
    (recording,) = store.recordings.values()
    assert recording.recording.status.value == final


def test_recording_merges_are_order_free() -> None:
    states = [
        Recording("RE1", "CA1", status)
        for status in (
            RecordingStatus.IN_PROGRESS,
            RecordingStatus.COMPLETED,
            RecordingStatus.FAILED,
        )
    ]
    forward = merge_recordings(merge_recordings(states[0], states[1]), states[2])
    backward = merge_recordings(states[2], merge_recordings(states[1], states[0]))
    assert forward == backward
    assert forward.status is not RecordingStatus.IN_PROGRESS


async def test_a_recording_is_stored_as_twilio_posted_it() -> None:
    store = FakeLegStore()
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    await record(store, [*call, recording_event(root, at=AT, duration_s=61)])
    (priced,) = store.recordings.values()
    recording = priced.recording
    assert (
        recording.call_sid,
        recording.status.value,
        recording.source.value if recording.source else None,
    ) == (
        root,
        "completed",
        "dial",
    )
    assert (recording.duration_s, recording.channels, recording.started_at) == (61, 2, AT)
    assert recording.media_url is not None
    assert recording.media_url.startswith("https://api.twilio.com/")


async def test_a_voicemail_recording_says_so() -> None:
    store = FakeLegStore()
    call = inbound_call(at=AT, answered_by=None)
    event = recording_event(call.root, at=AT, source="RecordVerb", direction="inbound")
    await record(store, [*call.events, event])
    (priced,) = store.recordings.values()
    assert priced.recording.source is not None
    assert priced.recording.source.value == "voicemail"


async def test_a_recording_of_a_call_never_seen_is_stored_not_dropped() -> None:
    store = FakeLegStore()
    await record(store, [recording_event("CA" + "9" * 32, at=AT)])
    (priced,) = store.recordings.values()
    assert priced.recording.call_sid == "CA" + "9" * 32
    assert priced.billing_month == NOVEMBER  # by the recording's own start


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        (
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        ),
        (
            "https://SK1:secret@api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1?x=1#y",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        ),
        ("ftp://api.twilio.com/RE1", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_a_media_url_is_never_kept_with_credentials(url: str, stored: str | None) -> None:
    assert media_url(url) == stored


# --- prices ----------------------------------------------------------------------------------


async def test_recording_and_transcription_are_priced_per_started_minute() -> None:
    store = FakeLegStore()
    call = answered_call(at=AT, duration_s=61)
    root = call[0].root_call_sid
    conversation = transcript(root, [(IN, "一")], at=AT)
    # The transcription stops before the call's end is recorded: priced once the call ends.
    outcome = await record(store, [recording_event(root, at=AT, duration_s=61), *conversation])
    (transcription,) = store.transcriptions.values()
    assert transcription.charge is None
    await record(store, call)
    (recording,) = store.recordings.values()
    (transcription,) = store.transcriptions.values()
    assert recording.charge is not None
    assert transcription.charge is not None
    assert (recording.charge.billable_minutes, recording.charge.amount) == (2, Decimal("0.6"))
    # 61 s of call: two started minutes, on both tracks.
    assert (transcription.charge.billable_minutes, transcription.charge.amount) == (
        4,
        Decimal("10.0"),
    )
    assert recording.billing_month == transcription.billing_month == NOVEMBER
    assert outcome.unrated_recordings == []


async def test_without_rates_they_are_unrated_and_reported_never_zero() -> None:
    store = FakeLegStore()
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    events = [*call, recording_event(root, at=AT), *transcript(root, [(IN, "一")], at=AT)]
    outcome = await record(store, events, WITHOUT_RATES)
    assert [r.recording_sid for r in outcome.unrated_recordings] == [
        p.recording.recording_sid for p in store.recordings.values()
    ]
    assert len(outcome.unrated_transcriptions) == 1
    for priced in [*store.recordings.values(), *store.transcriptions.values()]:
        assert priced.charge is not None
        assert priced.charge.amount is None
        assert priced.charge.currency == "JPY"
    again = await record(store, [recording_event(root, at=AT, status="in-progress")])
    assert again.new_events == 1
    assert again.unrated_recordings == []
    assert await rerate_conversation_month(store, WITH_RATES, TOKYO, NOVEMBER) == (2, 0)
    assert all(
        p.charge is not None and p.charge.amount is not None
        for p in [*store.recordings.values(), *store.transcriptions.values()]
    )


# --- bad input -------------------------------------------------------------------------------


def _bad(event: CallEvent, reason: str) -> None:
    with pytest.raises(PoisonEventError, match=reason):
        to_received(record_of(event, 0))


def test_bad_transcripts_are_refused_with_the_reason() -> None:
    root = "CA" + "1" * 32
    content = {"at": AT, "sequence": 2, "track": IN}
    _bad(transcript_event(root, "transcription-content", data="{not json", **content), "not JSON")
    _bad(
        transcript_event(root, "transcription-content", data='{"confidence": 0.9}', **content),
        "has no transcript",
    )
    _bad(
        transcript_event(root, "transcription-content", data="[1]", **content), "not a JSON object"
    )
    event = transcript_event(root, "transcription-content", text="x", **content)
    event.sequence = None
    event.params = {**event.params, "SequenceId": "two"}
    _bad(event, "SequenceId is not a number")
    event = transcript_event(root, "transcription-content", text="x", **content)
    event.params = {**event.params, "Track": "both_tracks"}
    _bad(event, "Track is not one Twilio documents")
    event = transcript_event(root, "transcription-paused", at=AT, sequence=3)
    _bad(event, "TranscriptionEvent is not one Twilio documents")


def test_bad_recordings_are_refused_with_the_reason() -> None:
    root = "CA" + "1" * 32
    event = recording_event(root, at=AT)
    event.params = {k: v for k, v in event.params.items() if k != "RecordingSid"}
    _bad(event, "missing RecordingSid")
    event = recording_event(root, at=AT, status="paused")
    _bad(event, "RecordingStatus is not one Twilio documents")


async def test_long_text_control_characters_and_markup_are_stored_as_they_are() -> None:
    store = FakeLegStore()
    root = answered_call(at=AT)[0].root_call_sid
    texts = ["あ" * 50_000, "行1\n行2\t\x07終", "<b>太字</b> & 'quote' \"dq\""]
    lines = [(IN, text) for text in texts]
    await record(store, transcript(root, lines, at=AT))
    assert [text for _, text in said(store)] == texts


async def test_neither_transcript_text_nor_media_urls_reach_the_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = FakeLegStore()
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    secret_url = f"https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE{'7' * 32}"
    good = [*call, recording_event(root, at=AT, url=secret_url)]
    good += transcript(root, [(IN, STAFF_SAYS), (OUT, CUSTOMER_SAYS)], at=AT)
    bad = transcript_event(
        root, "transcription-content", at=AT, sequence=40, track=IN, data=f'{{"x": "{STAFF_SAYS}"}}'
    )
    stopping = asyncio.Event()
    records = [record_of(e, i) for i, e in enumerate([*good, bad])]
    kafka = FakeKafka([records], stopping, until=lambda: store.commits >= 1)
    consumer = RecorderConsumer(
        consumer_factory=lambda: kafka,
        dlq_producer_factory=lambda: kafka,
        dlq_topic="calls.dlq",
        recorder=CallRecorder(store, WITHOUT_RATES, TOKYO),  # unrated: logged
        metrics=RecorderMetrics(CollectorRegistry()),
        batch_max=100,
        retry_backoff_s=0.001,
    )
    async with asyncio.timeout(5):
        await consumer.run(stopping)
    out = capsys.readouterr()
    logs = out.out + out.err
    assert "recording_unrated" in logs
    assert "transcription_unrated" in logs
    assert "event_dead_lettered" in logs
    for private in (STAFF_SAYS, CUSTOMER_SAYS, secret_url, "RE" + "7" * 32, "api.twilio.com"):
        assert private not in logs
    assert [entry[2] for entry in kafka.log if entry[0] == "dlq"] == [
        "TranscriptionData has no transcript"
    ]
    assert len(store.segments) == 2


async def test_a_recording_belongs_to_the_month_its_call_started_in() -> None:
    store = FakeLegStore()
    started = datetime(2026, 11, 30, 14, 59, 30, tzinfo=UTC)  # 23:59:30 in Tokyo
    call = answered_call(at=started)
    root = call[0].root_call_sid
    # Its recording starts (and is posted) after midnight in Tokyo, in December.
    await record(store, [*call, recording_event(root, at=started + timedelta(minutes=1))])
    (priced,) = store.recordings.values()
    assert priced.billing_month == NOVEMBER
