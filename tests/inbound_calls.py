"""Inbound calls as the gateway publishes them, for the recorder's tests: the events of
``services.devtools.call_flows.inbound_call`` (the gateway's own parsers over Twilio-shaped
forms, the same flows ``calltrail simulate`` plays), with the CallSid of each leg by who it rang.

- the ``inbound`` event (``/twiml/incoming``) or ``sip-inbound`` event (``/twiml/sip``, LINE) for
  the root leg, when Twilio asks for TwiML;
- each ``<Client>`` leg ringing a browser of the ring group, its callbacks carrying
  ``direction=inbound`` (and the LINE user id) in their query, the identity in ``To``; the one
  who answers goes in-progress and completed, the others are canceled;
- the forward leg when nobody answers and a forward number is set;
- the root leg's own callbacks, which carry no query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.common.events import CallEvent
from services.devtools import call_flows

CLIENT = "client:"


@dataclass
class InboundCall:
    root: str
    events: list[CallEvent] = field(default_factory=list)
    legs: dict[str, str] = field(default_factory=dict)  # identity or "forward" → CallSid


def inbound_call(
    *,
    caller: str = "+819011112222",
    ring: Sequence[str] = ("kintone_5", "kintone_7"),
    answered_by: str | None = "kintone_5",
    talk_s: int = 61,
    forward_to: str | None = None,
    line_user_id: str | None = None,
    at: datetime | None = None,
    outcome: str | None = None,
) -> InboundCall:
    """One inbound call: to the company number, or through LINE when ``line_user_id`` is
    given (``caller`` is then ignored: LINE calls come from a SIP URI). ``outcome`` (one of
    ``call_flows.INBOUND_OUTCOMES``) overrides what ``answered_by`` and ``forward_to`` say."""
    answered = answered_by is not None and answered_by in ring
    outcome = outcome or ("answered" if answered else "forwarded" if forward_to else "missed")
    answered = outcome == "answered"
    events = call_flows.inbound_call(
        kind="line" if line_user_id is not None else "number",
        outcome=outcome,
        identities=tuple(ring),
        answered_by=answered_by if answered else None,
        caller=caller,
        line_user_id=line_user_id,
        forward_to=forward_to or "",
        talk_s=talk_s,
        at=at,
    )
    call = InboundCall(events[0].call_sid, events)
    for event in events:
        if event.parent_call_sid is None:
            continue
        to = event.to or ""
        who = to[len(CLIENT) :] if to.startswith(CLIENT) else "forward"
        call.legs.setdefault(who, event.call_sid)
    return call
