"""Recordings and transcripts (CONTRACT.md section 11) on real PostgreSQL: the tables, the
``call_transcripts`` view in spoken order with the right speakers (also when the transcript
came before its call), the charges in ``monthly_charges`` and ``calltrail costs``, re-rating."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.events import CallEvent
from services.devtools.call_flows import answered_call
from services.recorder.adapters.outbox import KintoneOutbox
from services.recorder.adapters.repository import CallRepository, make_engine
from services.recorder.domain.conversation import (
    CallConversation,
    RecordingStatus,
    Speaker,
    TranscriptionStatus,
    settled,
    transcript_for_record,
)
from services.recorder.domain.tariff import TariffBook
from services.recorder.entrypoints.consumer import to_received
from services.recorder.service_layer.costs import month_costs
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
from tests.integration.recorder_support import query
from tests.unit.recorder.fakes import record_of

TOKYO = ZoneInfo("Asia/Tokyo")
AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
NOVEMBER = date(2026, 11, 1)
WITHOUT_RATES = WITHOUT_CONVERSATION_RATES
WITH_RATES = WITH_CONVERSATION_RATES
IN, OUT = "inbound_track", "outbound_track"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


async def record(
    engine: AsyncEngine, events: list[CallEvent], tariffs: TariffBook = WITH_RATES
) -> BatchOutcome:
    repository = CallRepository(engine)
    await repository.store_tariffs(tariffs)
    recorder = CallRecorder(repository, tariffs, TOKYO)
    return await recorder.record_events(
        [to_received(record_of(e, i)) for i, e in enumerate(events)]
    )


async def transcripts(database_url: str) -> dict[str, tuple[str, str]]:
    rows = await query(database_url, "SELECT call_sid, text, status FROM call_transcripts")
    return {sid: (text, status) for sid, text, status in rows}


async def test_an_outbound_call_reads_in_spoken_order_with_its_speakers(
    database_url: str, engine: AsyncEngine
) -> None:
    call = answered_call(at=AT)
    root = call[0].root_call_sid
    lines = [
        (IN, STAFF_SAYS),
        (OUT, CUSTOMER_SAYS),
        (IN, "では、来週お伺いします。"),
        (OUT, "はい。"),
    ]
    conversation = transcript(root, lines, at=AT)
    events = [*call, recording_event(root, at=AT), *conversation, *conversation[1:3]]
    random.Random(11).shuffle(events)
    for batch in (events[:5], events[5:9], events[9:]):
        await record(engine, batch)
    again = await record(engine, [*call, *conversation])
    assert again.new_events == 0
    expected = "\n".join(
        [
            f"担当者: {STAFF_SAYS}",
            f"お客様: {CUSTOMER_SAYS}",
            "担当者: では、来週お伺いします。",
            "お客様: はい。",
        ]
    )
    assert await transcripts(database_url) == {root: (expected, "complete")}
    rows = await query(
        database_url,
        "SELECT call_sid, status, duration_s, channels, source, media_url, billable_minutes,"
        " charge, currency, billing_month FROM recordings",
    )
    assert [row[:5] for row in rows] == [(root, "completed", 61, 2, "dial")]
    assert rows[0][5].startswith("https://api.twilio.com/2010-04-01/Accounts/")
    assert rows[0][6:] == (2, Decimal("0.6"), "JPY", NOVEMBER)
    [(status_null,)] = await query(
        database_url, "SELECT count(*) FROM call_events WHERE status IS NULL"
    )
    assert status_null == 1 + len(conversation)


async def test_an_inbound_transcript_before_its_call_ends_up_right(
    database_url: str, engine: AsyncEngine
) -> None:
    call = inbound_call(at=AT)
    conversation = transcript(
        call.root, [(IN, CUSTOMER_SAYS), (OUT, STAFF_SAYS)], at=AT, direction=None
    )
    await record(engine, conversation)
    unknown = f"話者不明: {CUSTOMER_SAYS}\n話者不明: {STAFF_SAYS}"
    assert await transcripts(database_url) == {call.root: (unknown, "complete")}
    speakers = await query(database_url, "SELECT speaker FROM transcript_segments")
    assert speakers == [(None,), (None,)]  # never guessed from the track
    await record(engine, call.events)
    known = f"お客様: {CUSTOMER_SAYS}\n担当者: {STAFF_SAYS}"
    assert await transcripts(database_url) == {call.root: (known, "complete")}


async def test_a_transcript_is_in_progress_then_failed_after_an_error(
    database_url: str, engine: AsyncEngine
) -> None:
    root = answered_call(at=AT)[0].root_call_sid
    conversation = transcript(root, [(IN, "一")], at=AT, end="transcription-error")
    await record(engine, conversation[:-1])
    assert (await transcripts(database_url))[root][1] == "in-progress"
    await record(engine, conversation[-1:])
    await record(engine, [transcript_event(root, "transcription-stopped", at=AT, sequence=99)])
    assert (await transcripts(database_url))[root] == ("担当者: 一", "failed")


async def test_the_charges_are_in_monthly_charges_and_costs_then_rerated(
    database_url: str, engine: AsyncEngine
) -> None:
    call = answered_call(at=AT, to="+81312345678", duration_s=61)
    root = call[0].root_call_sid
    events = [*call, recording_event(root, at=AT), *transcript(root, [(IN, "一")], at=AT)]
    outcome = await record(engine, events, WITHOUT_RATES)
    assert len(outcome.unrated_recordings) == len(outcome.unrated_transcriptions) == 1
    legs = 2 * Decimal("5.4") + 2 * Decimal("0.25")
    [row] = await query(
        database_url,
        "SELECT usage_charge, unrated_legs, recording_charge, transcription_charge,"
        " unrated_recordings, unrated_transcriptions FROM monthly_charges WHERE month = $1",
        NOVEMBER,
    )
    assert row == (legs, 0, Decimal(0), Decimal(0), 1, 1)
    costs = await month_costs(engine, NOVEMBER)
    assert [
        (c.item, c.count, c.billable_minutes, c.charge, c.unrated) for c in costs.conversation
    ] == [
        ("recording", 1, 2, None, 1),
        ("transcription", 1, 4, None, 1),
    ]

    repository = CallRepository(engine)
    await repository.store_tariffs(WITH_RATES)
    assert await rerate_conversation_month(repository, WITH_RATES, TOKYO, NOVEMBER) == (2, 0)
    [row] = await query(
        database_url,
        "SELECT usage_charge, total, recording_charge, transcription_charge,"
        " unrated_recordings + unrated_transcriptions FROM monthly_charges WHERE month = $1",
        NOVEMBER,
    )
    conversation = Decimal("0.6") + Decimal("10.0")
    assert row == (legs + conversation, legs + conversation, Decimal("0.6"), Decimal("10.0"), 0)
    costs = await month_costs(engine, NOVEMBER)
    assert costs.usage_charge == legs + conversation
    assert [(c.item, c.charge) for c in costs.conversation] == [
        ("recording", Decimal("0.6")),
        ("transcription", Decimal("10.0")),
    ]


async def test_the_write_back_reads_a_calls_conversation_and_its_settlement(
    engine: AsyncEngine,
) -> None:
    call = inbound_call(at=AT)
    conversation = transcript(
        call.root, [(IN, CUSTOMER_SAYS), (OUT, STAFF_SAYS)], at=AT, direction="inbound"
    )
    # The transcription has stopped; the recording is still being processed.
    in_progress = recording_event(call.root, at=AT, status="in-progress", direction="inbound")
    await record(engine, [*call.events, *conversation[::-1], in_progress])
    outbox = KintoneOutbox(engine)
    found = await outbox.conversations([call.root, "CA-no-conversation"])
    assert list(found) == [call.root]
    said = found[call.root]
    assert said.utterances == ((Speaker.CUSTOMER, CUSTOMER_SAYS), (Speaker.STAFF, STAFF_SAYS))
    assert said.recordings == (RecordingStatus.IN_PROGRESS,)
    assert said.transcriptions == (TranscriptionStatus.COMPLETE,)
    ended = AT + timedelta(minutes=2)

    def settles(found_now: CallConversation) -> bool:
        return settled(
            found_now,
            ended_at=ended,
            now=ended + timedelta(seconds=10),
            timeout_s=300,
            expect_recording=True,
            expect_transcription=True,
        )

    assert not settles(said)
    await record(engine, [recording_event(call.root, at=AT, direction="inbound")])
    assert settles((await outbox.conversations([call.root]))[call.root])
    assert transcript_for_record(said.utterances, 20_000) == (
        f"お客様: {CUSTOMER_SAYS}\n担当者: {STAFF_SAYS}"
    )
