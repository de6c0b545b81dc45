"""The recorder's use case: a batch of call events in, call legs priced and stored, and a
kintone write-back job for each call that ended.

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
    EventRows,
    PricedLeg,
    ReceivedEvent,
    call_roots,
    fold_batch,
    fold_events,
    price_leg,
)
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

    async def add_writeback_jobs(
        self, roots: Sequence[str], delay_s: float, customer_app: int | None
    ) -> None:
        """A job per call that has a kintone record, or (inbound, ``customer_app`` set) goes
        to the customer lookup."""
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
    ignored: int = 0  # recording and transcript events, not folded yet (CONTRACT.md s. 11)


@dataclass(slots=True)
class BatchOutcome:
    new_events: int = 0
    duplicate_events: int = 0
    ignored_events: int = 0
    legs_written: int = 0
    ended_legs: list[CallLeg] = field(default_factory=list)  # ended in this batch
    unrated_legs: list[CallLeg] = field(default_factory=list)  # of those, no rate


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
    ) -> None:
        """``writeback_delay_s``: when set, ended calls get a kintone write-back job, due that
        many seconds later (so the call's last legs are in); None: write-back is off.
        ``customer_app``: where inbound calls are looked up (none: they get no job)."""
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
        legs_events = [item for item in received if item.event.status is not None]
        unique, partial = fold_events(legs_events, self._home_region)
        return PreparedBatch(
            event_rows=self._store.event_rows(unique),
            partial_legs=partial,
            received=len(legs_events),
            unique=len(unique),
            ignored=len(received) - len(legs_events),
        )

    async def record(self, batch: PreparedBatch) -> BatchOutcome:
        """One transaction: store the new events, merge the legs they touch, price, upsert."""
        outcome = BatchOutcome(
            duplicate_events=batch.received - batch.unique, ignored_events=batch.ignored
        )
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
            await tx.share_call_context(call_roots(batch.partial_legs))
            if self._writeback_delay_s is not None and folded.writeback_roots:
                await tx.add_writeback_jobs(
                    folded.writeback_roots, self._writeback_delay_s, self._customer_app
                )
        outcome.legs_written = len(folded.legs)
        outcome.ended_legs = folded.ended
        outcome.unrated_legs = folded.unrated
        return outcome

    async def record_events(self, received: Sequence[ReceivedEvent]) -> BatchOutcome:
        return await self.record(self.prepare(received))


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
