"""Inbound calls as the gateway publishes them (the wire agreement of issue 11), for the
recorder's tests: built from Twilio-shaped forms by the gateway's own parsers, with
``context.direction`` set where the gateway sets it.

- the ``inbound`` event (``/twiml/incoming``) or ``sip-inbound`` event (``/twiml/sip``, LINE) for
  the root leg, when Twilio asks for TwiML;
- each ``<Client>`` leg ringing a browser of the ring group, its callbacks carrying
  ``direction=inbound`` and the identity (and the LINE user id) in their query; the one who
  answers goes in-progress and completed, the others are canceled;
- the forward leg when nobody answers and a forward number is set;
- the root leg's own callbacks, which carry no query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.common.events import CallContext, CallEvent, EventKind
from services.devtools.twilio_player import new_sid, status_callback_form
from services.gateway.domain.callbacks import call_event, status_event
from tests.factories import ACCOUNT_SID, CALLER_ID

LINE_FROM = "sip:line-caller@calltrail.sip.twilio.com"
LINE_TO = "sip:+810000000000@calltrail.sip.twilio.com"


@dataclass
class InboundCall:
    root: str
    events: list[CallEvent] = field(default_factory=list)
    legs: dict[str, str] = field(default_factory=dict)  # identity or "forward" → CallSid


def _marked(event: CallEvent, line_user_id: str | None) -> CallEvent:
    event.context.direction = "inbound"
    if line_user_id:
        event.context.line_user_id = line_user_id
    return event


def inbound_call(
    *,
    caller: str = "+819011112222",
    ring: Sequence[str] = ("kintone_5", "kintone_7"),
    answered_by: str | None = "kintone_5",
    talk_s: int = 61,
    forward_to: str | None = None,
    line_user_id: str | None = None,
    at: datetime | None = None,
) -> InboundCall:
    """One inbound call: to the company number, or through LINE when ``line_user_id`` is
    given (``caller`` is then ignored: LINE calls come from a SIP URI)."""
    stamp = at or datetime.now(UTC)
    root = new_sid()
    call = InboundCall(root)
    line = line_user_id is not None
    from_, to = (LINE_FROM, LINE_TO) if line else (caller, CALLER_ID)
    kind = EventKind.SIP_INBOUND if line else EventKind.INBOUND
    form = {"CallSid": root, "CallStatus": "ringing", "Direction": "inbound", "From": from_}
    form["To"] = to
    call.events.append(
        call_event(kind, form, CallContext(line_user_id=line_user_id, direction="inbound"), stamp)
    )
    answered = answered_by is not None and answered_by in ring
    for identity in ring:
        sid = new_sid()
        call.legs[identity] = sid
        took = identity == answered_by
        statuses = ["initiated", "ringing"] + (["in-progress", "completed"] if took else [])
        if not took:
            statuses.append("canceled")
        for sequence, status in enumerate(statuses):
            done = status in ("completed", "canceled")
            form = status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=sid,
                parent_call_sid=root,
                status=status,
                sequence=sequence,
                from_=from_,
                to=f"client:{identity}",
                direction="outbound-dial",
                duration_s=(talk_s if took else 0) if done else None,
                timestamp=stamp + timedelta(seconds=2 * sequence),
            )
            query = {"identity": identity}
            call.events.append(_marked(status_event(form, query, stamp), line_user_id))
    forwarded = not answered and forward_to is not None
    if forwarded:
        assert forward_to is not None
        sid = new_sid()
        call.legs["forward"] = sid
        for sequence, status in enumerate(("initiated", "ringing", "in-progress", "completed")):
            form = status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=sid,
                parent_call_sid=root,
                status=status,
                sequence=sequence,
                from_=CALLER_ID,
                to=forward_to,
                direction="outbound-dial",
                duration_s=talk_s if status == "completed" else None,
                timestamp=stamp + timedelta(seconds=20 + sequence),
            )
            call.events.append(_marked(status_event(form, {}, stamp), line_user_id))
    rang_s = 20 if not answered else 4
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=root,
        status="completed",
        sequence=None,
        from_=from_,
        to=to,
        direction="inbound",
        duration_s=rang_s + (talk_s if answered or forwarded else 3),
        timestamp=stamp,
    )
    call.events.append(status_event(form, {}, stamp))
    return call
