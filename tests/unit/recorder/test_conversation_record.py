"""The conversation on the kintone record (CONTRACT.md section 11, "On the record"): when a call
is settled, and its transcript as the record's text field holds it, cut past the limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.recorder.domain.conversation import (
    CallConversation,
    RecordingStatus,
    Speaker,
    TranscriptionStatus,
    settled,
    transcript_for_record,
)

ENDED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
DONE = CallConversation(
    recordings=(RecordingStatus.COMPLETED,), transcriptions=(TranscriptionStatus.COMPLETE,)
)


def _settled(conversation: CallConversation, after_s: float = 5, **expect: bool) -> bool:
    return settled(
        conversation,
        ended_at=ENDED,
        now=ENDED + timedelta(seconds=after_s),
        timeout_s=300,
        expect_recording=expect.get("recording", True),
        expect_transcription=expect.get("transcription", True),
    )


def test_a_call_still_going_is_never_settled() -> None:
    assert not settled(
        DONE,
        ended_at=None,
        now=ENDED + timedelta(days=1),
        timeout_s=300,
        expect_recording=True,
        expect_transcription=True,
    )


@pytest.mark.parametrize(
    "recording", [RecordingStatus.COMPLETED, RecordingStatus.ABSENT, RecordingStatus.FAILED]
)
@pytest.mark.parametrize(
    "transcription", [TranscriptionStatus.COMPLETE, TranscriptionStatus.FAILED]
)
def test_settled_once_the_recording_and_transcription_are_done(
    recording: RecordingStatus, transcription: TranscriptionStatus
) -> None:
    assert _settled(CallConversation(recordings=(recording,), transcriptions=(transcription,)))


@pytest.mark.parametrize(
    "conversation",
    [
        CallConversation(
            recordings=(RecordingStatus.IN_PROGRESS,),
            transcriptions=(TranscriptionStatus.COMPLETE,),
        ),
        CallConversation(
            recordings=(RecordingStatus.COMPLETED,),
            transcriptions=(TranscriptionStatus.IN_PROGRESS,),
        ),
        CallConversation(transcriptions=(TranscriptionStatus.COMPLETE,)),  # no recording yet
        CallConversation(recordings=(RecordingStatus.COMPLETED,)),  # no transcription yet
    ],
)
def test_not_settled_while_something_is_awaited_until_the_timeout(
    conversation: CallConversation,
) -> None:
    assert not _settled(conversation)
    assert not _settled(conversation, after_s=299.9)
    assert _settled(conversation, after_s=300)


def test_what_is_not_expected_is_not_awaited() -> None:
    # Recording off (or the call never answered), transcription off: settled at the end.
    assert _settled(CallConversation(), recording=False, transcription=False)
    transcribed = CallConversation(transcriptions=(TranscriptionStatus.COMPLETE,))
    assert _settled(transcribed, recording=False)


# --- the transcript on the record -----------------------------------------------------------

SAID = [
    (Speaker.STAFF, "お世話になっております。"),
    (Speaker.CUSTOMER, "はい、見積もりの件ですね。"),
    (None, "ええ。"),
]


def test_the_transcript_reads_as_the_view_does() -> None:
    assert transcript_for_record(SAID, 20_000) == (
        "担当者: お世話になっております。\nお客様: はい、見積もりの件ですね。\n話者不明: ええ。"
    )


def test_past_the_limit_it_is_cut_at_an_utterance_and_says_what_was_left_out() -> None:
    whole = transcript_for_record(SAID, 20_000)
    cut = transcript_for_record(SAID, len(whole) - 1)
    assert cut.split("\n") == [
        "担当者: お世話になっております。",
        "（以下 2 件の発言、16 文字を省略）",
    ]
    assert len(cut) <= len(whole) - 1


def test_markup_and_control_characters_go_as_they_were_said() -> None:
    said = [(Speaker.CUSTOMER, '<b>太字</b> & "引用" \x07')]
    assert transcript_for_record(said, 100) == 'お客様: <b>太字</b> & "引用" \x07'


_utterances = st.lists(
    st.tuples(st.sampled_from([Speaker.STAFF, Speaker.CUSTOMER, None]), st.text(max_size=80)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_utterances, st.integers(min_value=40, max_value=2_000))
def test_the_cut_fits_keeps_whole_utterances_in_order(
    utterances: list[tuple[Speaker | None, str]], limit: int
) -> None:
    text = transcript_for_record(utterances, limit)
    assert len(text) <= limit
    whole = transcript_for_record(utterances, 10**9)
    if text == whole:
        return
    kept, _, note = text.rpartition("\n")
    assert note.startswith("（以下 ")
    assert whole.startswith(kept)  # whole utterances, in spoken order
