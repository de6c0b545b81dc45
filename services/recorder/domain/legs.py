"""One row per call leg, and how events move it forward (never backward).

:func:`apply_event` is a merge: applying the same set of events in any order, any number of
times, gives the same leg. That is what makes at-least-once delivery, out-of-order Twilio
callbacks and consumer rebalances harmless.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime

from services.common.events import CallEvent, CallStatus, EventKind
from services.common.numbers import DestinationType, InvalidNumberError, parse_number

CLIENT_PREFIX = "client:"
SIP_PREFIX = "sip:"


class Leg(enum.StrEnum):
    BROWSER = "browser"
    PSTN = "pstn"
    SIP = "sip"


# How far along a leg is. A status may only replace one of lower rank; within a rank (two
# terminal statuses, say) the higher SequenceNumber wins.
STATUS_RANK: dict[CallStatus, int] = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: 4,
    CallStatus.BUSY: 4,
    CallStatus.NO_ANSWER: 4,
    CallStatus.CANCELED: 4,
    CallStatus.FAILED: 4,
}
TERMINAL_RANK = 4


@dataclass(frozen=True, slots=True)
class CallLeg:
    call_sid: str
    parent_call_sid: str | None
    leg: Leg
    destination_type: DestinationType
    status: CallStatus
    sequence: int  # of the event that set ``status``; -1 for one that carried none
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: int | None = None
    kintone_app_id: str | None = None
    kintone_record_id: str | None = None
    user_identity: str | None = None
    line_user_id: str | None = None

    @property
    def ended(self) -> bool:
        return STATUS_RANK[self.status] == TERMINAL_RANK


def classify_leg(event: CallEvent) -> Leg:
    to = event.to or ""
    caller = event.from_ or ""
    if event.parent_call_sid:
        if to.startswith(CLIENT_PREFIX):
            return Leg.BROWSER  # an inbound call ringing a browser
        if to.startswith(SIP_PREFIX):
            return Leg.SIP
        return Leg.PSTN
    if caller.startswith(CLIENT_PREFIX) or to.startswith(CLIENT_PREFIX):
        return Leg.BROWSER
    if (
        caller.startswith(SIP_PREFIX)
        or to.startswith(SIP_PREFIX)
        or event.kind is EventKind.SIP_INBOUND
    ):
        return Leg.SIP
    return Leg.PSTN


def destination_of(leg: Leg, to: str | None, home_region: str = "JP") -> DestinationType:
    if leg is Leg.BROWSER:
        return DestinationType.CLIENT
    if not to or leg is Leg.SIP:
        return DestinationType.UNKNOWN
    try:
        return parse_number(to, default_region=home_region).destination_type(home_region)
    except InvalidNumberError:
        return DestinationType.UNKNOWN


def event_time(event: CallEvent) -> datetime:
    """When Twilio says it happened (``Timestamp``), else when the gateway received it."""
    stamp = event.params.get("Timestamp")
    if stamp:
        try:
            moment = parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            return event.received_at
        if moment.tzinfo is not None:
            return moment
    return event.received_at


def _earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None:
        return candidate
    if candidate is None:
        return current
    return min(current, candidate)


def _pick(current: str | None, candidate: str | None) -> str | None:
    """Whichever event carries a value; when two carry different ones (the dial event's E.164
    ``to`` and the callback's number as typed, say), a fixed order, never arrival, decides."""
    if not candidate:
        return current if current is not None else candidate
    if not current:
        return candidate
    return min(current, candidate)


def _status_wins(current: CallLeg, status: CallStatus, sequence: int) -> bool:
    rank, current_rank = STATUS_RANK[status], STATUS_RANK[current.status]
    if rank != current_rank:
        return rank > current_rank
    return sequence > current.sequence or (
        # Same rank, same sequence, different terminal status: pick one deterministically so
        # the result does not depend on arrival order.
        sequence == current.sequence and status.value > current.status.value
    )


def apply_event(current: CallLeg | None, event: CallEvent, home_region: str = "JP") -> CallLeg:
    sequence = event.sequence if event.sequence is not None else -1
    if current is None:
        leg = classify_leg(event)
        current = CallLeg(
            call_sid=event.call_sid,
            parent_call_sid=event.parent_call_sid,
            leg=leg,
            destination_type=destination_of(leg, event.to, home_region),
            status=event.status,
            sequence=sequence,
        )
    elif _status_wins(current, event.status, sequence):
        current = replace(current, status=event.status, sequence=sequence)

    at = event_time(event)
    started_at, answered_at, ended_at = current.started_at, current.answered_at, current.ended_at
    rank = STATUS_RANK[event.status]
    # The dial and sip-inbound events count too: they arrive as the leg starts, and a browser
    # leg has no other event before its end.
    if rank >= STATUS_RANK[CallStatus.INITIATED]:
        started_at = _earliest(started_at, at)
    if event.status is CallStatus.IN_PROGRESS:
        answered_at = _earliest(answered_at, at)
    if rank == TERMINAL_RANK:
        ended_at = _earliest(ended_at, at)
        started_at = _earliest(started_at, at)

    context = event.context
    return replace(
        current,
        parent_call_sid=_pick(current.parent_call_sid, event.parent_call_sid),
        from_number=_pick(current.from_number, event.from_),
        to_number=_pick(current.to_number, event.to),
        direction=_pick(current.direction, event.direction),
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        # Twilio reports CallDuration with the terminal status; the largest report wins.
        duration_s=max(
            (d for d in (current.duration_s, event.duration_s) if d is not None), default=None
        ),
        kintone_app_id=_pick(current.kintone_app_id, context.app_id),
        kintone_record_id=_pick(current.kintone_record_id, context.record_id),
        user_identity=_pick(current.user_identity, context.identity),
        line_user_id=_pick(current.line_user_id, context.line_user_id),
    )
