"""A batch of events folded into call legs, priced: the recorder's use case minus its I/O.

The consumer hands over events in batches; :func:`fold_events` deduplicates them and folds
them per leg (no I/O, so it runs in a worker thread while the previous batch is written);
:func:`fold_batch` merges those partial legs with the stored ones, prices the legs that ended
and says which calls get a kintone write-back job. The repository only stores the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from services.common.events import CallEvent, EventKind
from services.recorder.domain.charges import (
    RECORDING_RATE_KEY,
    TRANSCRIPTION_RATE_KEY,
    Charge,
    billable_minutes,
    billing_month,
    charge_leg,
    charge_minutes,
    leg_started,
)
from services.recorder.domain.conversation import (
    TRANSCRIBED_TRACKS,
    ConversationPart,
    Recording,
    Transcription,
    Utterance,
    conversation_part,
    merge_recordings,
    merge_transcriptions,
    speaker_of,
)
from services.recorder.domain.legs import CallLeg, Direction, apply_event, merge_legs
from services.recorder.domain.tariff import TariffBook

# A batch's distinct events as the store inserts them: column by column (for unnest), built
# with the rest of the CPU work before the transaction.
EventRows = tuple[list[object], ...]


@dataclass(slots=True)  # not frozen: one per consumed event (see CallLeg)
class ReceivedEvent:
    event: CallEvent
    payload: str  # the event's JSON exactly as it came off the topic
    # A recording's or transcript's content, read by the consumer as it checks the event
    # (so a bad one is dead-lettered); None for a leg's event, or when nobody read it yet.
    part: ConversationPart | None = None


@dataclass(slots=True)
class PricedLeg:
    leg: CallLeg
    charge: Charge | None  # None while the leg is still going
    billing_month: date | None


@dataclass(slots=True)
class FoldedBatch:
    legs: list[PricedLeg] = field(default_factory=list)  # every touched leg, merged and priced
    ended: list[CallLeg] = field(default_factory=list)  # legs that ended in this batch
    unrated: list[CallLeg] = field(default_factory=list)  # of those, the ones with no rate
    writeback_roots: list[str] = field(default_factory=list)  # calls to write onto kintone


def event_key(event: CallEvent) -> str:
    """Twilio repeats callbacks verbatim; (leg, kind, status, sequence) identifies one, and
    (recording, its status) or (transcription, its event, SequenceId) one of the others."""
    sequence = "-" if event.sequence is None else str(event.sequence)
    if event.status is not None:
        return f"{event.call_sid}:{event.kind.value}:{event.status}:{sequence}"
    params = event.params
    if event.kind is EventKind.RECORDING:
        detail = f"{params.get('RecordingSid')}:{params.get('RecordingStatus')}"
    else:
        detail = f"{params.get('TranscriptionSid')}:{params.get('TranscriptionEvent')}"
    return f"{event.call_sid}:{event.kind.value}:{detail}:{sequence}"


def fold_events(
    received: Iterable[ReceivedEvent], home_region: str = "JP"
) -> tuple[dict[str, ReceivedEvent], dict[str, CallLeg]]:
    """The distinct events by key (first seen wins), and each leg as they describe it."""
    unique: dict[str, ReceivedEvent] = {}
    for item in received:
        unique.setdefault(event_key(item.event), item)
    partial: dict[str, CallLeg] = {}
    for item in unique.values():
        event = item.event
        if event.status is not None:  # a leg's event (the others: fold_conversation)
            partial[event.call_sid] = apply_event(partial.get(event.call_sid), event, home_region)
    return unique, partial


def price_leg(leg: CallLeg, tariffs: TariffBook, zone: ZoneInfo) -> PricedLeg:
    started = leg_started(leg)
    return PricedLeg(
        leg, charge_leg(leg, tariffs, zone), billing_month(started, zone) if started else None
    )


def fold_batch(
    partial: Mapping[str, CallLeg],
    stored: Mapping[str, CallLeg],
    tariffs: TariffBook,
    zone: ZoneInfo,
    *,
    writeback: bool = False,
) -> FoldedBatch:
    """Merge each partial leg with its stored self (the merge is idempotent, so a leg whose
    events were all repeats comes out unchanged), price it, and collect the legs that ended
    with this batch; ``writeback``: their calls (root CallSids) get a write-back job."""
    folded = FoldedBatch()
    for call_sid in sorted(partial):
        before = stored.get(call_sid)
        leg = partial[call_sid] if before is None else merge_legs(before, partial[call_sid])
        priced = price_leg(leg, tariffs, zone)
        folded.legs.append(priced)
        if leg.ended and (before is None or not before.ended):
            folded.ended.append(leg)
            if priced.charge is None or priced.charge.amount is None:
                folded.unrated.append(leg)
    if writeback:
        # An outbound call is done when either leg ends (they end together). An inbound call
        # is done only when its root leg ends: the browsers it rang stop ringing long before.
        folded.writeback_roots = sorted(
            {
                leg.parent_call_sid or leg.call_sid
                for leg in folded.ended
                if leg.parent_call_sid is None or leg.direction is not Direction.INBOUND
            }
        )
    return folded


def call_roots(legs: Mapping[str, CallLeg]) -> list[str]:
    """The calls (root CallSids) these legs belong to."""
    return sorted({leg.parent_call_sid or leg.call_sid for leg in legs.values()})


# --- the conversation: recordings, transcriptions, utterances (CONTRACT.md section 11) ----


@dataclass(slots=True)
class PricedRecording:
    recording: Recording
    charge: Charge | None  # None until it is done (completed, absent or failed)
    billing_month: date | None


@dataclass(slots=True)
class PricedTranscription:
    transcription: Transcription
    charge: Charge | None  # None until it is done and the call has ended
    billing_month: date | None


@dataclass(slots=True)
class ConversationParts:
    """A batch's recordings, transcriptions and utterances, each merged within the batch."""

    recordings: dict[str, Recording] = field(default_factory=dict)
    transcriptions: dict[str, Transcription] = field(default_factory=dict)
    utterances: dict[tuple[str, int], Utterance] = field(default_factory=dict)

    @property
    def roots(self) -> set[str]:
        return {r.call_sid for r in self.recordings.values()} | {
            t.call_sid for t in self.transcriptions.values()
        }

    def __bool__(self) -> bool:
        return bool(self.recordings or self.transcriptions)


def fold_conversation(unique: Iterable[ReceivedEvent]) -> ConversationParts:
    """The recordings and transcripts among a batch's distinct events, merged by SID; an
    utterance repeated under a new event key (it cannot be, but) keeps its first text."""
    parts = ConversationParts()
    for item in unique:
        if item.event.status is not None:
            continue
        part = item.part if item.part is not None else conversation_part(item.event)
        if isinstance(part, Recording):
            seen = parts.recordings.get(part.recording_sid)
            parts.recordings[part.recording_sid] = (
                part if seen is None else merge_recordings(seen, part)
            )
            continue
        transcription, utterance = part
        sid = transcription.transcription_sid
        known = parts.transcriptions.get(sid)
        parts.transcriptions[sid] = (
            transcription if known is None else merge_transcriptions(known, transcription)
        )
        if utterance is not None:
            parts.utterances.setdefault((sid, utterance.sequence_id), utterance)
    return parts


@dataclass(slots=True)
class FoldedConversation:
    recordings: list[PricedRecording] = field(default_factory=list)
    transcriptions: list[PricedTranscription] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    unrated_recordings: list[Recording] = field(default_factory=list)  # newly priced, no rate
    unrated_transcriptions: list[Transcription] = field(default_factory=list)


def _call_started(call_sid: str, root_legs: Mapping[str, CallLeg]) -> datetime | None:
    root = root_legs.get(call_sid)
    return leg_started(root) if root is not None else None


def price_recording(
    recording: Recording, root_legs: Mapping[str, CallLeg], tariffs: TariffBook, zone: ZoneInfo
) -> PricedRecording:
    """Per started minute of RecordingDuration, once the recording is done; it belongs to the
    month its call started in (the recording's own start while the call is unknown)."""
    day = _call_started(recording.call_sid, root_legs) or recording.started_at
    month = billing_month(day, zone) if day is not None else None
    if not recording.done:
        return PricedRecording(recording, None, month)
    minutes = billable_minutes(recording.duration_s)
    return PricedRecording(
        recording, charge_minutes(minutes, RECORDING_RATE_KEY, day, tariffs, zone), month
    )


def price_transcription(
    transcription: Transcription,
    root_legs: Mapping[str, CallLeg],
    tariffs: TariffBook,
    zone: ZoneInfo,
) -> PricedTranscription:
    """Per started minute of the call's answered time, per transcribed track, once the
    transcription is done and the call has ended. The call's answered time is its root leg's
    CallDuration: the leg the TwiML (and so the transcription) ran on, answered by that TwiML
    from its start, whoever else was dialled. Unknown call: not priced (stored, listed)."""
    root = root_legs.get(transcription.call_sid)
    day = (leg_started(root) if root is not None else None) or transcription.started_at
    month = billing_month(day, zone) if day is not None else None
    if not transcription.done or root is None or not root.ended:
        return PricedTranscription(transcription, None, month)
    minutes = billable_minutes(root.duration_s) * TRANSCRIBED_TRACKS
    return PricedTranscription(
        transcription,
        charge_minutes(minutes, TRANSCRIPTION_RATE_KEY, day, tariffs, zone),
        month,
    )


def fold_conversation_batch(
    parts: ConversationParts,
    stored_recordings: Mapping[str, PricedRecording],
    stored_transcriptions: Mapping[str, PricedTranscription],
    root_legs: Mapping[str, CallLeg],
    tariffs: TariffBook,
    zone: ZoneInfo,
) -> FoldedConversation:
    """Merge the batch's recordings and transcriptions with the stored ones of the same calls
    and price them all again (a call's root leg that ended in this batch prices its stopped
    transcription); newly priced ones without a rate are reported."""
    folded = FoldedConversation()
    for sid in sorted(stored_recordings.keys() | parts.recordings.keys()):
        before = stored_recordings.get(sid)
        recording = _merged(
            before.recording if before else None, parts.recordings.get(sid), merge_recordings
        )
        priced = price_recording(recording, root_legs, tariffs, zone)
        folded.recordings.append(priced)
        if _newly_unrated(priced.charge, before.charge if before else None):
            folded.unrated_recordings.append(recording)
    for sid in sorted(stored_transcriptions.keys() | parts.transcriptions.keys()):
        known = stored_transcriptions.get(sid)
        transcription = _merged(
            known.transcription if known else None,
            parts.transcriptions.get(sid),
            merge_transcriptions,
        )
        priced_t = price_transcription(transcription, root_legs, tariffs, zone)
        folded.transcriptions.append(priced_t)
        if _newly_unrated(priced_t.charge, known.charge if known else None):
            folded.unrated_transcriptions.append(transcription)
    # Speakers: the context's direction (read with the event), else the call's root leg.
    for key in sorted(parts.utterances):
        utterance = parts.utterances[key]
        if utterance.speaker is None:
            root = root_legs.get(utterance.call_sid)
            direction = root.direction if root is not None else None
            if direction is not None:
                utterance = replace(utterance, speaker=speaker_of(direction, utterance.track))
        folded.utterances.append(utterance)
    return folded


_Part = TypeVar("_Part")


def _merged(
    stored: _Part | None, seen: _Part | None, merge: Callable[[_Part, _Part], _Part]
) -> _Part:
    """What is known of one recording or transcription: the stored one, this batch's, or both
    merged. One of them is there (the SID came from one of the two)."""
    if stored is None or seen is None:
        part = stored if seen is None else seen
        assert part is not None
        return part
    return merge(stored, seen)


def _newly_unrated(now: Charge | None, before: Charge | None) -> bool:
    return now is not None and now.amount is None and before is None
