"""One row per call leg, and how events move it forward (never backward).

:func:`apply_event` is a merge: applying the same set of events in any order, any number of
times, gives the same leg. That is what makes at-least-once delivery, out-of-order Twilio
callbacks and consumer rebalances harmless.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from services.common.events import CallEvent, CallStatus, EventKind
from services.common.numbers import DestinationType, InvalidNumberError, parse_number

CLIENT_PREFIX = "client:"
SIP_PREFIX = "sip:"


class Leg(enum.StrEnum):
    BROWSER = "browser"
    PSTN = "pstn"
    SIP = "sip"


class Direction(enum.StrEnum):
    """``calls.direction`` (CONTRACT.md section 4): who started the call, for every leg of it."""

    INBOUND = "inbound"  # a customer called the company number, or through LINE
    OUTBOUND = "outbound"  # a kintone user called from a record


INBOUND_KINDS = frozenset({EventKind.INBOUND, EventKind.SIP_INBOUND})


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


# Values, never mutated (merges build new ones), but not frozen=True: a frozen dataclass sets
# each field through object.__setattr__, nine times slower to build, and the recorder builds
# two per event it consumes.
@dataclass(slots=True)
class CallLeg:
    call_sid: str
    parent_call_sid: str | None
    leg: Leg
    destination_type: DestinationType
    status: CallStatus
    sequence: int  # of the event that set ``status``; -1 for one that carried none
    from_number: str | None = None
    to_number: str | None = None
    direction: Direction | None = None  # None only while no event has said (see direction_of)
    twilio_direction: str | None = None  # Twilio's own Direction: inbound, outbound-dial, …
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


def direction_of(event: CallEvent) -> Direction | None:
    """The call's direction as this event tells it (the wire agreement with the gateway):

    - the gateway says so in ``context.direction`` (inbound events, and the status callbacks of
      every leg it dials for an inbound call);
    - an ``inbound`` or ``sip-inbound`` event is the root of an inbound call;
    - a root leg's own callbacks carry no query: outbound when the caller is a browser
      (``client:…``), else a customer calling in;
    - a child leg nobody marked is a PSTN leg of a browser call: outbound.
    """
    said = event.context.direction
    if said:
        return Direction(said)
    if event.kind in INBOUND_KINDS:
        return Direction.INBOUND
    if event.parent_call_sid:
        return Direction.OUTBOUND
    caller = event.from_
    if not caller:
        return None  # nothing to go on; another event of the leg will say
    return Direction.OUTBOUND if caller.startswith(CLIENT_PREFIX) else Direction.INBOUND


def merge_direction(a: Direction | None, b: Direction | None) -> Direction | None:
    """Inbound wins: only an inbound call's legs are ever marked inbound, while an outbound
    one is merely the default of a leg that says nothing."""
    if a is None:
        return b
    if b is None or a is b:
        return a
    return Direction.INBOUND


@lru_cache(maxsize=65_536)
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
    return (twilio_timestamp(stamp) if stamp else None) or event.received_at


@lru_cache(maxsize=4096)
def twilio_timestamp(stamp: str) -> datetime | None:
    """Twilio's RFC 2822 time (``Timestamp``, ``RecordingStartTime``); None if it is not one."""
    # Cached: the callbacks of a busy minute share a handful of (one-second) timestamps.
    try:
        moment = parsedate_to_datetime(stamp)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def earliest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """The earlier of two times, either of which may be unknown (a merge: order-free)."""
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


def leg_from_event(event: CallEvent, home_region: str = "JP") -> CallLeg:
    """The leg as this one event describes it."""
    status = event.status
    if status is None:  # a recording or transcript: not a leg's event (domain.batch sorts)
        raise ValueError(f"a {event.kind.value} event describes no call leg")
    leg = classify_leg(event)
    at = event_time(event)
    rank = STATUS_RANK[status]
    context = event.context
    direction = direction_of(event)
    # The far end of the leg: for the root leg of an inbound call, the caller.
    caller_end = direction is Direction.INBOUND and not event.parent_call_sid
    far_end = event.from_ if caller_end else event.to
    return CallLeg(
        call_sid=event.call_sid,
        parent_call_sid=event.parent_call_sid or None,
        leg=leg,
        destination_type=destination_of(leg, far_end, home_region),
        status=status,
        sequence=event.sequence if event.sequence is not None else -1,
        from_number=event.from_ or None,
        to_number=event.to or None,
        direction=direction,
        twilio_direction=event.direction or None,
        # The dial and sip-inbound events count too: they arrive as the leg starts, and a
        # browser leg has no other event before its end.
        started_at=at if rank >= STATUS_RANK[CallStatus.INITIATED] else None,
        answered_at=at if status is CallStatus.IN_PROGRESS else None,
        ended_at=at if rank == TERMINAL_RANK else None,
        duration_s=event.duration_s,
        kintone_app_id=context.app_id or None,
        kintone_record_id=context.record_id or None,
        user_identity=context.identity or None,
        line_user_id=context.line_user_id or None,
    )


def _latest_status(a: CallLeg, b: CallLeg) -> CallLeg:
    """The leg whose status is further along: by rank, then SequenceNumber, then (two terminal
    statuses with one sequence) a fixed order, so arrival order never decides."""
    key_a = (STATUS_RANK[a.status], a.sequence, a.status.value)
    key_b = (STATUS_RANK[b.status], b.sequence, b.status.value)
    return a if key_a >= key_b else b


def merge_legs(a: CallLeg, b: CallLeg) -> CallLeg:
    """Two views of one leg, merged. Commutative, associative and idempotent: the same events
    give the same leg whatever their order, grouping or repetition."""
    status = _latest_status(a, b)
    return CallLeg(
        call_sid=a.call_sid,
        parent_call_sid=_pick(a.parent_call_sid, b.parent_call_sid),
        leg=min(a.leg, b.leg) if a.leg is not b.leg else a.leg,
        destination_type=_known_destination(a.destination_type, b.destination_type),
        status=status.status,
        sequence=status.sequence,
        from_number=_pick(a.from_number, b.from_number),
        to_number=_pick(a.to_number, b.to_number),
        direction=merge_direction(a.direction, b.direction),
        twilio_direction=_pick(a.twilio_direction, b.twilio_direction),
        started_at=earliest(a.started_at, b.started_at),
        answered_at=earliest(a.answered_at, b.answered_at),
        ended_at=earliest(a.ended_at, b.ended_at),
        # Twilio reports CallDuration with the terminal status; the largest report wins.
        duration_s=largest(a.duration_s, b.duration_s),
        kintone_app_id=_pick(a.kintone_app_id, b.kintone_app_id),
        kintone_record_id=_pick(a.kintone_record_id, b.kintone_record_id),
        user_identity=_pick(a.user_identity, b.user_identity),
        line_user_id=_pick(a.line_user_id, b.line_user_id),
    )


def apply_event(current: CallLeg | None, event: CallEvent, home_region: str = "JP") -> CallLeg:
    seen = leg_from_event(event, home_region)
    return seen if current is None else merge_legs(current, seen)


def largest(a: int | None, b: int | None) -> int | None:
    """The larger of two numbers, either of which may be unknown (a merge: order-free)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _known_destination(a: DestinationType, b: DestinationType) -> DestinationType:
    if a is b or b is DestinationType.UNKNOWN:
        return a
    if a is DestinationType.UNKNOWN:
        return b
    return min(a, b)
