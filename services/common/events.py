"""The event on the wire: ``calltrail.call-event/1`` (CONTRACT.md section 3).

Both services speak only through this module. The gateway builds and encodes events; the
recorder decodes them. Decoding is strict: anything that does not match the schema raises
:class:`EventDecodeError` with a reason, so the consumer can dead-letter it.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SCHEMA = "calltrail.call-event/1"


class EventKind(enum.StrEnum):
    STATUS = "status"
    DIAL = "dial"
    SIP_INBOUND = "sip-inbound"
    INBOUND = "inbound"  # a customer calling the company number (/twiml/incoming)
    # CONTRACT.md section 11: a recording status callback and a real-time transcription
    # callback. Neither is a leg's status (``status`` is null); ``call_sid`` is the CallSid
    # Twilio posted (the call that ran the TwiML), ``sequence`` a transcript's SequenceId,
    # ``duration_s`` a recording's RecordingDuration, every posted parameter in ``params``.
    RECORDING = "recording"
    TRANSCRIPT = "transcript"


#: The kinds that carry a leg's CallStatus; every other kind carries none (status null).
LEG_STATUS_KINDS = frozenset(
    {EventKind.STATUS, EventKind.DIAL, EventKind.SIP_INBOUND, EventKind.INBOUND}
)


class CallStatus(enum.StrEnum):
    """Twilio's call statuses, in the order a leg can move through them."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    FAILED = "failed"


class EventDecodeError(ValueError):
    """An event that cannot be processed; the message is the reason sent to the DLQ."""


# CallContext and CallEvent are values, never mutated, but not frozen=True: building a frozen
# dataclass costs nine times as much, and the recorder builds one per event it consumes.
@dataclass(slots=True)
class CallContext:
    """Where a call came from: the kintone record and user, or the LINE user for SIP calls."""

    app_id: str | None = None
    record_id: str | None = None
    identity: str | None = None
    line_user_id: str | None = None
    # "inbound" (a customer called the company number or LINE) or "outbound"; None in events
    # from before the gateway said (the recorder then infers it from the leg).
    direction: str | None = None

    def with_direction(self, direction: str) -> CallContext:
        """This context for a call known to go that way (dataclasses.replace, at a fifth of
        the cost: it runs on every /twiml/voice)."""
        return CallContext(self.app_id, self.record_id, self.identity, self.line_user_id, direction)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "app_id": self.app_id,
            "record_id": self.record_id,
            "identity": self.identity,
            "line_user_id": self.line_user_id,
            "direction": self.direction,
        }


@dataclass(slots=True)
class CallEvent:
    kind: EventKind
    received_at: datetime
    call_sid: str
    status: CallStatus | None  # None exactly for the kinds outside LEG_STATUS_KINDS
    parent_call_sid: str | None = None
    sequence: int | None = None
    direction: str | None = None
    from_: str | None = None
    to: str | None = None
    duration_s: int | None = None
    context: CallContext = field(default_factory=CallContext)
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def root_call_sid(self) -> str:
        """The Kafka key: every leg of one call lands on the same partition, in order."""
        return self.parent_call_sid or self.call_sid

    def to_dict(self) -> dict[str, Any]:
        # The kind and status as they are: both are str (StrEnum), which orjson writes as
        # their value, without the cost of Enum's ``value`` property on every event.
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "received_at": format_rfc3339(self.received_at),
            "call_sid": self.call_sid,
            "parent_call_sid": self.parent_call_sid,
            "status": self.status,
            "sequence": self.sequence,
            "direction": self.direction,
            "from": self.from_,
            "to": self.to,
            "duration_s": self.duration_s,
            "context": self.context.to_dict(),
            "params": self.params if type(self.params) is dict else dict(self.params),
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def key(self) -> bytes:
        return self.root_call_sid.encode()


def format_rfc3339(moment: datetime) -> str:
    """``2024-05-01T09:30:15.123Z``: UTC, milliseconds."""
    if moment.tzinfo is not UTC:  # the gateway's own clock is UTC already
        if moment.tzinfo is None:
            raise ValueError("event timestamps must be timezone-aware")
        moment = moment.astimezone(UTC)
    # Every event the gateway publishes formats its time: the date and time up to the second
    # are the same for all the events of a second, formatted once (isoformat alone costs
    # twice all of this). timestamp() is exact to the microsecond until 2106 (2**32 s), so
    # its floor is the second; tests/unit/common/test_events.py pins this to isoformat.
    stamp = moment.timestamp()
    if 0 <= stamp < _EXACT_SECONDS:
        return _utc_second(int(stamp)) + _MILLISECONDS[moment.microsecond // 1000]
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


_EXACT_SECONDS = 2**32
_MILLISECONDS = [f"{ms:03d}Z" for ms in range(1000)]


@functools.lru_cache(maxsize=4)
def _utc_second(epoch_second: int) -> str:
    return datetime.fromtimestamp(epoch_second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


_KINDS: dict[str, EventKind] = {kind.value: kind for kind in EventKind}
#: Twilio's CallStatus text → CallStatus: a dict lookup, not CallStatus(text), which costs a
#: microsecond (the gateway reads one from every callback, the recorder from every event).
CALL_STATUSES: Mapping[str, CallStatus] = {status.value: status for status in CallStatus}


def decode_event(raw: bytes) -> CallEvent:
    """Parse one Kafka value into a :class:`CallEvent`, or say precisely why not."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EventDecodeError("not a JSON object")
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise EventDecodeError(f"unknown schema {schema!r}, expected {SCHEMA!r}")
    try:
        kind = _lookup(_KINDS, doc["kind"], EventKind)
        status = _status(kind, doc["status"])
        call_sid = _required_str(doc, "call_sid")
        received_at = datetime.fromisoformat(_required_str(doc, "received_at"))
        if received_at.tzinfo is None:
            raise EventDecodeError("received_at has no time zone")
        # Only null/absent means "empty": false, 0, "" or [] are type errors, not defaults.
        context_doc = doc.get("context")
        if context_doc is None:
            context_doc = {}
        if not isinstance(context_doc, dict):
            raise EventDecodeError("context is not an object")
        params = doc.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()
        ):
            raise EventDecodeError("params is not an object of strings")
        return CallEvent(
            kind=kind,
            received_at=received_at,
            call_sid=call_sid,
            status=status,
            parent_call_sid=_optional_str(doc, "parent_call_sid"),
            sequence=_optional_int(doc, "sequence"),
            direction=_optional_str(doc, "direction"),
            from_=_optional_str(doc, "from"),
            to=_optional_str(doc, "to"),
            duration_s=_optional_int(doc, "duration_s"),
            context=CallContext(
                app_id=_optional_str(context_doc, "app_id"),
                record_id=_optional_str(context_doc, "record_id"),
                identity=_optional_str(context_doc, "identity"),
                line_user_id=_optional_str(context_doc, "line_user_id"),
                direction=_context_direction(context_doc),
            ),
            params=params,
        )
    except KeyError as exc:
        raise EventDecodeError(f"missing field {exc.args[0]!r}") from None
    except ValueError as exc:
        if isinstance(exc, EventDecodeError):
            raise
        raise EventDecodeError(f"invalid value: {exc}") from None


def _lookup(members: Mapping[str, Any], value: object, enum_type: type[enum.Enum]) -> Any:
    # A dict lookup, not Enum(value): this runs for every event the recorder consumes.
    member = members.get(value) if isinstance(value, str) else None
    if member is None:
        raise EventDecodeError(f"invalid value: {value!r} is not a valid {enum_type.__name__}")
    return member


def _status(kind: EventKind, value: object) -> CallStatus | None:
    """A leg's kinds need a valid CallStatus; a recording or transcript carries none."""
    if kind in LEG_STATUS_KINDS:
        status: CallStatus = _lookup(CALL_STATUSES, value, CallStatus)
        return status
    if value is not None:
        raise EventDecodeError(f"status must be null for kind {kind.value!r}")
    return None


def _required_str(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value:
        raise EventDecodeError(f"{name} must be a non-empty string")
    return value


def _optional_str(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise EventDecodeError(f"{name} must be a string or null")
    return value


CONTEXT_DIRECTIONS = frozenset({"inbound", "outbound"})


def _context_direction(context: Mapping[str, Any]) -> str | None:
    value = _optional_str(context, "direction")
    if value is not None and value not in CONTEXT_DIRECTIONS:
        raise EventDecodeError("context.direction must be inbound, outbound or null")
    return value


def _optional_int(doc: Mapping[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise EventDecodeError(f"{name} must be an integer or null")
    return value
