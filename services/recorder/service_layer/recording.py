"""The recorder's use case: a batch of call events in, call legs priced and stored, and a
kintone write-back job for each call that ended; in the same transaction, the calls'
recordings and transcripts (CONTRACT.md section 11) stored and priced.

The decisions are pure (``domain.batch``); this module orders the I/O around them, through
the ports below, which ``adapters.repository`` implements for PostgreSQL and the unit tests
with an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol
from zoneinfo import ZoneInfo

from services.recorder.domain.batch import (
    ConversationParts,
    EventRows,
    FoldedConversation,
    PricedLeg,
    PricedRecording,
    PricedTranscription,
    ReceivedEvent,
    call_roots,
    fold_batch,
    fold_conversation,
    fold_conversation_batch,
    fold_events,
    price_leg,
    price_recording,
    price_transcription,
)
from services.recorder.domain.conversation import Recording, Transcription, Utterance
from services.recorder.domain.legs import CallLeg
from services.recorder.domain.tariff import TariffBook


class LegTransaction(Protocol):
    async def add_events(self, rows: EventRows) -> int: ...

    async def load_legs(self, call_sids: Sequence[str]) -> Mapping[str, CallLeg]: ...

    async def month_legs(self, month: date) -> Sequence[CallLeg]: ...

    async def save_legs(self, legs: Sequence[PricedLeg]) -> None: ...

    async def share_call_context(self, roots: Sequence[str]) -> None:
        """Give every leg of these calls what the call's root leg knows: an inbound call's
        direction and a LINE call's user id, whichever leg was stored first."""
        ...

    # --- the conversation (CONTRACT.md section 11) -----------------------------------------

    async def load_recordings(self, call_sids: Sequence[str]) -> Mapping[str, PricedRecording]:
        """These calls' recordings by RecordingSid, locked until the transaction ends."""
        ...

    async def load_transcriptions(
        self, call_sids: Sequence[str]
    ) -> Mapping[str, PricedTranscription]:
        """These calls' transcriptions by TranscriptionSid, locked until the transaction ends."""
        ...

    async def month_recordings(self, month: date) -> Sequence[PricedRecording]: ...

    async def month_transcriptions(self, month: date) -> Sequence[PricedTranscription]: ...

    async def save_recordings(self, recordings: Sequence[PricedRecording]) -> None: ...

    async def save_transcriptions(self, transcriptions: Sequence[PricedTranscription]) -> None: ...

    async def add_utterances(self, utterances: Sequence[Utterance]) -> int:
        """Store the new utterances (a repeated (TranscriptionSid, SequenceId) is skipped)."""
        ...

    async def resolve_speakers(self, call_sids: Sequence[str]) -> None:
        """Give these calls' utterances stored without a speaker (their call's direction was
        not known yet) the speaker their root leg's direction and their track say (SPEAKERS)."""
        ...

    async def add_writeback_jobs(
        self, roots: Sequence[str], delay_s: float, customer_app: int | None
    ) -> None:
        """A job per call that has a kintone record, or (inbound, ``customer_app`` set) goes
        to the customer lookup."""
        ...

    async def requeue_written(self, roots: Sequence[str], delay_s: float) -> None:
        """These calls' jobs already done go again, due after ``delay_s``: their conversation
        has news for the row already written (CONTRACT.md section 11)."""
        ...


class LegStore(Protocol):
    def event_rows(self, unique: Mapping[str, ReceivedEvent]) -> EventRows: ...

    def transaction(self) -> AbstractAsyncContextManager[LegTransaction]: ...


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    event_rows: EventRows  # the distinct events, as the store will insert them
    partial_legs: dict[str, CallLeg]  # each leg as this batch's events describe it
    received: int
    unique: int
    # The batch's recordings, transcriptions and utterances, merged within the batch.
    conversation: ConversationParts = field(default_factory=ConversationParts)


@dataclass(slots=True)
class BatchOutcome:
    new_events: int = 0
    duplicate_events: int = 0
    legs_written: int = 0
    ended_legs: list[CallLeg] = field(default_factory=list)  # ended in this batch
    unrated_legs: list[CallLeg] = field(default_factory=list)  # of those, no rate
    new_utterances: int = 0
    # Priced in this batch without a rate (the tariff lacks "recording"/"transcription").
    unrated_recordings: list[Recording] = field(default_factory=list)
    unrated_transcriptions: list[Transcription] = field(default_factory=list)


class CallRecorder:
    def __init__(
        self,
        store: LegStore,
        tariffs: TariffBook,
        zone: ZoneInfo,
        home_region: str = "JP",
        *,
        writeback_delay_s: float | None = None,
        customer_app: int | None = None,
        conversation_writeback: bool = False,
    ) -> None:
        """``writeback_delay_s``: when set, ended calls get a kintone write-back job, due that
        many seconds later (so the call's last legs are in); None: write-back is off.
        ``customer_app``: where inbound calls are looked up (none: they get no job).
        ``conversation_writeback``: a recording or transcript arriving after its call was
        written puts the call's job back, so the row is updated (RECORDING/TRANSCRIPTION on)."""
        self._conversation_writeback = conversation_writeback
        self._customer_app = customer_app
        self._store = store
        self.tariffs = tariffs
        self._zone = zone
        self._home_region = home_region
        self._writeback_delay_s = writeback_delay_s

    def prepare(self, received: Sequence[ReceivedEvent]) -> PreparedBatch:
        """The CPU half of a batch, no I/O: so the consumer can do it for the next batch while
        this one's transaction is in flight. Events are folded per leg here already, so the
        transaction merges one partial leg per leg, not one event at a time."""
        unique, partial = fold_events(received, self._home_region)
        return PreparedBatch(
            event_rows=self._store.event_rows(unique),
            partial_legs=partial,
            received=len(received),
            unique=len(unique),
            conversation=fold_conversation(unique.values()),
        )

    async def record(self, batch: PreparedBatch) -> BatchOutcome:
        """One transaction: store the new events, merge the legs they touch, price, upsert."""
        outcome = BatchOutcome(duplicate_events=batch.received - batch.unique)
        if not batch.unique:
            return outcome
        async with self._store.transaction() as tx:
            outcome.new_events = await tx.add_events(batch.event_rows)
            outcome.duplicate_events += batch.unique - outcome.new_events
            if not outcome.new_events:
                return outcome  # a pure replay: every leg already has all of it
            # Every leg of the batch is merged, even one whose events were all repeats: the
            # merge is idempotent, and sorting out which legs had news would cost more.
            stored = await tx.load_legs(sorted(batch.partial_legs))
            folded = fold_batch(
                batch.partial_legs,
                stored,
                self.tariffs,
                self._zone,
                writeback=self._writeback_delay_s is not None,
            )
            await tx.save_legs(folded.legs)
            roots = call_roots(batch.partial_legs)
            await tx.share_call_context(roots)
            conversation = await self._record_conversation(
                tx, batch.conversation, folded.legs, sorted(batch.conversation.roots | set(roots))
            )
            if self._writeback_delay_s is not None and folded.writeback_roots:
                await tx.add_writeback_jobs(
                    folded.writeback_roots, self._writeback_delay_s, self._customer_app
                )
            if (
                self._writeback_delay_s is not None
                and self._conversation_writeback
                and batch.conversation
            ):
                await tx.requeue_written(sorted(batch.conversation.roots), self._writeback_delay_s)
        outcome.legs_written = len(folded.legs)
        outcome.ended_legs = folded.ended
        outcome.unrated_legs = folded.unrated
        if conversation is not None:
            outcome.new_utterances = conversation.new_utterances
            outcome.unrated_recordings = conversation.folded.unrated_recordings
            outcome.unrated_transcriptions = conversation.folded.unrated_transcriptions
        return outcome

    async def _record_conversation(
        self,
        tx: LegTransaction,
        parts: ConversationParts,
        legs: Sequence[PricedLeg],
        roots: Sequence[str],
    ) -> RecordedConversation | None:
        """The batch's recordings and transcriptions merged with the stored ones of the same
        calls and priced again with what is known of each call (a root leg that ended in this
        batch prices its call's stopped transcription); utterances stored, speakers resolved.
        A batch of status events only, for calls without a recording or transcript: two
        lookups, nothing written."""
        recordings = await tx.load_recordings(roots)
        transcriptions = await tx.load_transcriptions(roots)
        if not parts and not recordings and not transcriptions:
            return None
        wanted = set(roots)
        root_legs = {p.leg.call_sid: p.leg for p in legs if p.leg.call_sid in wanted}
        missing = [root for root in roots if root not in root_legs]
        if missing:
            root_legs |= await tx.load_legs(missing)
        folded = fold_conversation_batch(
            parts, recordings, transcriptions, root_legs, self.tariffs, self._zone
        )
        await tx.save_recordings(folded.recordings)
        await tx.save_transcriptions(folded.transcriptions)
        new_utterances = await tx.add_utterances(folded.utterances)
        if folded.transcriptions:
            await tx.resolve_speakers(
                sorted({p.transcription.call_sid for p in folded.transcriptions})
            )
        return RecordedConversation(folded, new_utterances)

    async def record_events(self, received: Sequence[ReceivedEvent]) -> BatchOutcome:
        return await self.record(self.prepare(received))


@dataclass(frozen=True, slots=True)
class RecordedConversation:
    folded: FoldedConversation
    new_utterances: int


async def rerate_month(
    store: LegStore, tariffs: TariffBook, zone: ZoneInfo, month: date
) -> tuple[int, int]:
    """Price a month's legs again with the current tariffs; (legs, ended and still unrated)."""
    async with store.transaction() as tx:
        priced = [price_leg(leg, tariffs, zone) for leg in await tx.month_legs(month)]
        await tx.save_legs(priced)
    unrated = sum(
        1 for leg in priced if leg.leg.ended and (leg.charge is None or leg.charge.amount is None)
    )
    return len(priced), unrated


async def rerate_conversation_month(
    store: LegStore, tariffs: TariffBook, zone: ZoneInfo, month: date
) -> tuple[int, int]:
    """Price a month's recordings and transcriptions again with the current tariffs;
    (items, priced and still unrated)."""
    async with store.transaction() as tx:
        recordings = await tx.month_recordings(month)
        transcriptions = await tx.month_transcriptions(month)
        roots = sorted(
            {p.recording.call_sid for p in recordings}
            | {p.transcription.call_sid for p in transcriptions}
        )
        root_legs = await tx.load_legs(roots) if roots else {}
        priced_recordings = [
            price_recording(p.recording, root_legs, tariffs, zone) for p in recordings
        ]
        priced_transcriptions = [
            price_transcription(p.transcription, root_legs, tariffs, zone) for p in transcriptions
        ]
        await tx.save_recordings(priced_recordings)
        await tx.save_transcriptions(priced_transcriptions)
    charges = [p.charge for p in priced_recordings] + [p.charge for p in priced_transcriptions]
    unrated = sum(1 for charge in charges if charge is not None and charge.amount is None)
    return len(charges), unrated
