"""Events as the gateway publishes them, built by the gateway's own parsers from the forms
Twilio posts (``twilio_player``), and legs folded from them by the recorder's domain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from services.common.events import CallContext, CallEvent, EventKind
from services.devtools.twilio_player import status_callback_form
from services.gateway.domain.callbacks import call_event, status_event
from services.recorder.domain.legs import CallLeg, apply_event
from tests.factories import ACCOUNT_SID, CALLER_ID

T0 = datetime(2026, 11, 2, 1, 0, 0, tzinfo=UTC)  # 10:00 in Tokyo
MOBILE = "+819012345678"
LANDLINE = "+81312345678"
IP_PHONE = "+815012345678"
SIP_FROM = "sip:line-bot@calltrail.sip.twilio.com"
QUERY = {"app_id": "12", "record_id": "345", "identity": "u_123"}


def status(
    status: str,
    *,
    call_sid: str,
    sequence: int | None = None,
    parent: str | None = None,
    from_: str = CALLER_ID,
    to: str = MOBILE,
    direction: str = "outbound-dial",
    duration_s: int | None = None,
    at: datetime = T0,
    received_at: datetime | None = None,
    query: Mapping[str, str] | None = None,
    timestamp: str | None = None,
    drop_timestamp: bool = False,
) -> CallEvent:
    """A status callback of one leg, as Twilio posts it and the gateway publishes it.

    ``at`` is Twilio's ``Timestamp``; ``timestamp`` replaces its text, ``drop_timestamp``
    removes it. ``received_at`` defaults to ``at``.
    """
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=call_sid,
        parent_call_sid=parent,
        status=status,
        sequence=sequence,
        from_=from_,
        to=to,
        direction=direction,
        duration_s=duration_s,
        timestamp=at,
    )
    if timestamp is not None:
        form["Timestamp"] = timestamp
    if drop_timestamp:
        del form["Timestamp"]
    return status_event(form, query or {}, received_at or at)


def dial(
    *,
    call_sid: str,
    identity: str = "u_123",
    to: str = MOBILE,
    typed_to: str = "090-1234-5678",
    at: datetime = T0,
    context: CallContext | None = None,
) -> CallEvent:
    """The ``dial`` event from /twiml/voice: the browser leg, with the number it dialled."""
    form = {
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": f"client:{identity}",
        "To": typed_to,
    }
    ctx = context or CallContext(app_id="12", record_id="345", identity=identity)
    return call_event(EventKind.DIAL, form, ctx, at, to=to)


def sip_inbound(
    *,
    call_sid: str,
    from_: str = SIP_FROM,
    line_user_id: str = "U0123456789abcdef",
    at: datetime = T0,
) -> CallEvent:
    form = {
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": from_,
        "To": "sip:calltrail@calltrail.sip.twilio.com",
    }
    return call_event(EventKind.SIP_INBOUND, form, CallContext(line_user_id=line_user_id), at)


def fold(events: Iterable[CallEvent], legs: dict[str, CallLeg] | None = None) -> dict[str, CallLeg]:
    """Apply events one by one, as the recorder does, to legs keyed by CallSid."""
    out = dict(legs or {})
    for event in events:
        out[event.call_sid] = apply_event(out.get(event.call_sid), event)
    return out


def leg_of(*events: CallEvent) -> CallLeg:
    legs = fold(events)
    assert len(legs) == 1
    return next(iter(legs.values()))
