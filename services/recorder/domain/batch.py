"""A batch of events folded into call legs, priced: the recorder's use case minus its I/O.

The consumer hands over events in batches; :func:`fold_events` deduplicates them and folds
them per leg (no I/O, so it runs in a worker thread while the previous batch is written);
:func:`fold_batch` merges those partial legs with the stored ones, prices the legs that ended
and says which calls get a kintone write-back job. The repository only stores the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from services.common.events import CallEvent
from services.recorder.domain.charges import Charge, billing_month, charge_leg, leg_started
from services.recorder.domain.legs import CallLeg, Direction, apply_event, merge_legs
from services.recorder.domain.tariff import TariffBook

# A batch's distinct events as the store inserts them: column by column (for unnest), built
# with the rest of the CPU work before the transaction.
EventRows = tuple[list[object], ...]


@dataclass(slots=True)  # not frozen: one per consumed event (see CallLeg)
class ReceivedEvent:
    event: CallEvent
    payload: str  # the event's JSON exactly as it came off the topic


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
    """Twilio repeats callbacks verbatim; (leg, kind, status, sequence) identifies one."""
    sequence = "-" if event.sequence is None else str(event.sequence)
    return f"{event.call_sid}:{event.kind.value}:{event.status}:{sequence}"


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
