"""The conversation (CONTRACT.md section 11): recordings, transcriptions and who said what.

Events of kind ``recording`` and ``transcript`` are read here into values, and merged the way
call legs are (:mod:`domain.legs`): the same events in any order, grouping or repetition give
the same rows. A recording's status never moves back (``completed``, ``absent`` and ``failed``
are terminal); a transcription is ``in-progress`` until ``transcription-stopped`` (complete) or
``transcription-error`` (failed); an utterance is identified by (TranscriptionSid, SequenceId),
so a repeat is the same utterance and a late one takes its place by number, not by arrival.

Never log what these values carry: utterance text and media URLs are personal data.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from services.common.events import CallEvent, EventKind
from services.recorder.domain.legs import (
    Direction,
    earliest,
    event_time,
    largest,
    twilio_timestamp,
)

_Choice = TypeVar("_Choice", bound=enum.StrEnum)
_Text = TypeVar("_Text", bound=str)


class ConversationEventError(ValueError):
    """A recording or transcript event that cannot be stored; the message is the DLQ reason
    (it names the parameter, never its value: the value may be a transcript)."""


class Track(enum.StrEnum):
    """Twilio's names, from its own side: ``inbound_track`` is the audio of the call that ran
    the TwiML, ``outbound_track`` what Twilio sent to that call."""

    INBOUND = "inbound_track"
    OUTBOUND = "outbound_track"


class Speaker(enum.StrEnum):
    STAFF = "staff"
    CUSTOMER = "customer"


#: Who spoke, by the call's direction and the track (CONTRACT.md section 11, "Who spoke").
#: An outbound call's TwiML runs on the browser's call: its inbound track is the salesperson.
#: An inbound call's TwiML (the number, LINE, the voicemail) runs on the customer's call: its
#: inbound track is the customer. The track name alone never says.
SPEAKERS: Mapping[tuple[Direction, Track], Speaker] = {
    (Direction.OUTBOUND, Track.INBOUND): Speaker.STAFF,
    (Direction.OUTBOUND, Track.OUTBOUND): Speaker.CUSTOMER,
    (Direction.INBOUND, Track.INBOUND): Speaker.CUSTOMER,
    (Direction.INBOUND, Track.OUTBOUND): Speaker.STAFF,
}


def speaker_of(direction: Direction | None, track: Track) -> Speaker | None:
    """The speaker, or None while the call's direction is not known yet (the store resolves
    it once the call's root leg says: ``LegTransaction.resolve_speakers``)."""
    return None if direction is None else SPEAKERS[direction, track]


class RecordingStatus(enum.StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"  # nothing was said (a silent voicemail): no media
    FAILED = "failed"


RECORDING_RANK: Mapping[RecordingStatus, int] = {
    RecordingStatus.IN_PROGRESS: 0,
    RecordingStatus.COMPLETED: 1,
    RecordingStatus.ABSENT: 1,
    RecordingStatus.FAILED: 1,
}


class RecordingSource(enum.StrEnum):
    DIAL = "dial"  # a <Dial record=…>: the conversation
    VOICEMAIL = "voicemail"  # a <Record>: the caller's message (CONTRACT.md section 12)


class TranscriptionStatus(enum.StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETE = "complete"
    FAILED = "failed"


# An error is the last word: Twilio may still post transcription-stopped after it.
TRANSCRIPTION_RANK: Mapping[TranscriptionStatus, int] = {
    TranscriptionStatus.IN_PROGRESS: 0,
    TranscriptionStatus.COMPLETE: 1,
    TranscriptionStatus.FAILED: 2,
}
TRANSCRIPTION_EVENTS: Mapping[str, TranscriptionStatus] = {
    "transcription-started": TranscriptionStatus.IN_PROGRESS,
    "transcription-content": TranscriptionStatus.IN_PROGRESS,
    "transcription-stopped": TranscriptionStatus.COMPLETE,
    "transcription-error": TranscriptionStatus.FAILED,
}
CONTENT = "transcription-content"
#: calltrail's TwiML always transcribes track="both_tracks" (CONTRACT.md section 11): two
#: transcribed tracks to price per minute.
TRANSCRIBED_TRACKS = 2


@dataclass(slots=True)
class Recording:
    recording_sid: str
    call_sid: str  # the call's root
    status: RecordingStatus
    duration_s: int | None = None
    channels: int | None = None
    source: RecordingSource | None = None
    started_at: datetime | None = None
    media_url: str | None = None  # Twilio's RecordingUrl, credentials and query removed
    error_code: str | None = None

    @property
    def done(self) -> bool:
        return RECORDING_RANK[self.status] > 0


@dataclass(slots=True)
class Transcription:
    transcription_sid: str
    call_sid: str  # the call's root
    status: TranscriptionStatus
    language_code: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error_code: str | None = None

    @property
    def done(self) -> bool:
        return TRANSCRIPTION_RANK[self.status] > 0


@dataclass(slots=True)
class Utterance:
    transcription_sid: str
    sequence_id: int
    call_sid: str  # the call's root
    track: Track
    speaker: Speaker | None  # None until the call's direction is known
    text: str
    confidence: Decimal | None
    spoken_at: datetime


#: What one event says: a recording, or a transcription and (transcription-content) an utterance.
ConversationPart = Recording | tuple[Transcription, Utterance | None]


def conversation_part(event: CallEvent) -> ConversationPart:
    """Read a ``recording`` or ``transcript`` event, or raise ConversationEventError."""
    if event.kind is EventKind.RECORDING:
        return recording_of(event)
    if event.kind is EventKind.TRANSCRIPT:
        return transcript_of(event)
    raise ConversationEventError(f"a {event.kind.value} event is not a recording or transcript")


def recording_of(event: CallEvent) -> Recording:
    params = event.params
    status = _choice(params, "RecordingStatus", RecordingStatus)
    return Recording(
        recording_sid=_required(params, "RecordingSid"),
        call_sid=event.root_call_sid,
        status=status,
        duration_s=event.duration_s,
        channels=_optional_int(params, "RecordingChannels"),
        source=(
            RecordingSource.VOICEMAIL
            if params.get("RecordingSource") == "RecordVerb"
            else RecordingSource.DIAL
        ),
        started_at=twilio_timestamp(params.get("RecordingStartTime") or ""),
        media_url=media_url(params.get("RecordingUrl")),
        error_code=params.get("ErrorCode") or None,
    )


def transcript_of(event: CallEvent) -> tuple[Transcription, Utterance | None]:
    params = event.params
    sid = _required(params, "TranscriptionSid")
    name = _required(params, "TranscriptionEvent")
    status = TRANSCRIPTION_EVENTS.get(name)
    if status is None:
        raise ConversationEventError("TranscriptionEvent is not one Twilio documents")
    at = event_time(event)
    transcription = Transcription(
        transcription_sid=sid,
        call_sid=event.root_call_sid,
        status=status,
        language_code=params.get("LanguageCode") or None,
        started_at=at if name == "transcription-started" else None,
        ended_at=at if status is not TranscriptionStatus.IN_PROGRESS else None,
        error_code=params.get("TranscriptionErrorCode") or None,
    )
    if name != CONTENT:
        return transcription, None
    sequence = event.sequence if event.sequence is not None else _optional_int(params, "SequenceId")
    if sequence is None:
        raise ConversationEventError("an utterance without a SequenceId")
    track = _choice(params, "Track", Track)
    text, confidence = _transcription_data(params.get("TranscriptionData"))
    return transcription, Utterance(
        transcription_sid=sid,
        sequence_id=sequence,
        call_sid=event.root_call_sid,
        track=track,
        speaker=speaker_of(_direction(event), track),
        text=text,
        confidence=confidence,
        spoken_at=at,
    )


def _direction(event: CallEvent) -> Direction | None:
    said = event.context.direction
    return Direction(said) if said else None


def _transcription_data(raw: str | None) -> tuple[str, Decimal | None]:
    if raw is None:
        raise ConversationEventError("an utterance without TranscriptionData")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConversationEventError("TranscriptionData is not JSON") from None
    if not isinstance(data, dict):
        raise ConversationEventError("TranscriptionData is not a JSON object")
    text = data.get("transcript")
    if not isinstance(text, str):
        raise ConversationEventError("TranscriptionData has no transcript")
    if "\x00" in text:
        raise ConversationEventError("the transcript has a NUL character (not storable)")
    confidence = data.get("confidence")
    if confidence is None:
        return text, None
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise ConversationEventError("TranscriptionData's confidence is not a number")
    try:
        return text, Decimal(str(confidence))
    except InvalidOperation:  # pragma: no cover - a JSON number is always a decimal
        raise ConversationEventError("TranscriptionData's confidence is not a number") from None


def media_url(url: str | None) -> str | None:
    """Twilio's RecordingUrl as it may be stored and shown: never with credentials (a user or
    password in it is dropped), nor a query or fragment. Unparseable: not stored."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ConversationEventError(f"missing {name}")
    return value


def _choice(params: Mapping[str, str], name: str, choices: type[_Choice]) -> _Choice:
    value = params.get(name)
    if value is None:
        raise ConversationEventError(f"missing {name}")
    try:
        return choices(value)
    except ValueError:
        raise ConversationEventError(f"{name} is not one Twilio documents") from None


def _optional_int(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise ConversationEventError(f"{name} is not a number")
    return int(value)


# --- merges: commutative, associative, idempotent (as domain.legs) -------------------------


def merge_recordings(a: Recording, b: Recording) -> Recording:
    key_a = (RECORDING_RANK[a.status], a.status.value)
    key_b = (RECORDING_RANK[b.status], b.status.value)
    return Recording(
        recording_sid=a.recording_sid,
        call_sid=_pick(a.call_sid, b.call_sid) or a.call_sid,
        status=a.status if key_a >= key_b else b.status,
        duration_s=largest(a.duration_s, b.duration_s),
        channels=largest(a.channels, b.channels),
        source=_pick(a.source, b.source),
        started_at=earliest(a.started_at, b.started_at),
        media_url=_pick(a.media_url, b.media_url),
        error_code=_pick(a.error_code, b.error_code),
    )


def merge_transcriptions(a: Transcription, b: Transcription) -> Transcription:
    key_a = (TRANSCRIPTION_RANK[a.status], a.status.value)
    key_b = (TRANSCRIPTION_RANK[b.status], b.status.value)
    return Transcription(
        transcription_sid=a.transcription_sid,
        call_sid=_pick(a.call_sid, b.call_sid) or a.call_sid,
        status=a.status if key_a >= key_b else b.status,
        language_code=_pick(a.language_code, b.language_code),
        started_at=earliest(a.started_at, b.started_at),
        ended_at=earliest(a.ended_at, b.ended_at),
        error_code=_pick(a.error_code, b.error_code),
    )


def _pick(a: _Text | None, b: _Text | None) -> _Text | None:
    """Whichever carries a value; of two, a fixed order (never arrival) decides."""
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


# --- the conversation on the kintone record (CONTRACT.md section 11, "On the record") -------
# Building blocks for the settled write-back (issue 19 item 3), not wired yet: the write-back
# worker will read a call's conversation, wait for it to settle, and write the transcript.

TRANSCRIPT_LABELS: Mapping[Speaker | None, str] = {
    Speaker.STAFF: "担当者: ",
    Speaker.CUSTOMER: "お客様: ",
    None: "話者不明: ",  # the call's direction not known: never guessed
}


@dataclass(frozen=True, slots=True)
class CallConversation:
    """What the write-back needs of one call's conversation."""

    utterances: tuple[tuple[Speaker | None, str], ...] = ()  # in spoken order
    recordings: tuple[RecordingStatus, ...] = ()
    transcriptions: tuple[TranscriptionStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordingFile:
    """A completed recording of a call, as the write-back attaches it to the call's row."""

    recording_sid: str
    call_sid: str  # the call's root
    media_url: str | None  # Twilio's RecordingUrl (never with credentials)
    file_key: str | None = None  # kintone's, once a write carrying the file was confirmed
    file_error: str | None = None  # given up after the retries: the row went without it
    deleted: bool = False  # deleted from Twilio (RECORDING_KEEP_ON_TWILIO=false)

    @property
    def to_attach(self) -> bool:
        return self.file_key is None and self.file_error is None and self.media_url is not None


def settled(
    conversation: CallConversation,
    *,
    ended_at: datetime | None,
    now: datetime,
    timeout_s: float,
    expect_recording: bool,
    expect_transcription: bool,
) -> bool:
    """Whether a call can be written onto kintone: it has ended, and its recording (when one is
    expected: recording on and the call answered) is completed, absent or failed, and its
    transcription (when expected) stopped or failed; or ``timeout_s`` has passed since it
    ended, whichever comes first (what arrives later is one more update of the same row)."""
    if ended_at is None:
        return False
    if (now - ended_at).total_seconds() >= timeout_s:
        return True
    recordings_done = all(RECORDING_RANK[s] > 0 for s in conversation.recordings)
    transcriptions_done = all(TRANSCRIPTION_RANK[s] > 0 for s in conversation.transcriptions)
    return (
        recordings_done
        and transcriptions_done
        and (bool(conversation.recordings) or not expect_recording)
        and (bool(conversation.transcriptions) or not expect_transcription)
    )


def transcript_for_record(utterances: Sequence[tuple[Speaker | None, str]], max_chars: int) -> str:
    """The transcript as the record's multi-line text field holds it: ``担当者: …`` /
    ``お客様: …`` lines in spoken order; past ``max_chars`` (TRANSCRIPT_MAX_CHARS), cut at an
    utterance, with a last line saying how many utterances and characters were left out. The
    text goes as it was said: kintone's text fields take markup and control characters as
    text (the JSON encoding escapes what JSON needs)."""
    lines = [TRANSCRIPT_LABELS[speaker] + text for speaker, text in utterances]
    text = "\n".join(lines)
    if len(text) <= max_chars:
        return text
    kept: list[str] = []
    used = -1  # the first line has no newline before it
    for index, line in enumerate(lines):
        # Keep this line only if the note about the ones after it still fits behind it.
        after = _left_out(utterances[index + 1 :])
        if used + 1 + len(line) + 1 + len(after) > max_chars:
            return "\n".join([*kept, _left_out(utterances[index:])])
        kept.append(line)
        used += 1 + len(line)
    return text  # pragma: no cover - the whole text did not fit, so a line was cut above


def _left_out(utterances: Sequence[tuple[Speaker | None, str]]) -> str:
    characters = sum(len(text) for _, text in utterances)
    return f"（以下 {len(utterances)} 件の発言、{characters:,} 文字を省略）"
