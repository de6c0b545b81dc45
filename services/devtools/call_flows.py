"""One call as the gateway publishes it, for tests and benchmarks that feed the recorder
directly: the ``dial`` event (from /twiml/voice), the PSTN leg's callbacks and the browser
leg's completion, each built by the gateway's own parsers from a Twilio-shaped form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.events import CallContext, CallEvent, EventKind
from services.devtools.twilio_player import new_sid, status_callback_form
from services.gateway.domain.callbacks import call_event, status_event

PSTN_STATUSES = ("initiated", "ringing", "in-progress", "completed")
ACCOUNT_SID = "AC" + "0" * 32
CALLER_ID = "+815012345678"


def pstn_leg_forms(
    *,
    parent: str,
    child: str,
    to: str,
    duration_s: int,
    at: datetime,
    seconds_between: int = 0,
) -> list[dict[str, str]]:
    """The dialled leg's four status callbacks (initiated … completed) as Twilio posts them."""
    return [
        status_callback_form(
            account_sid=ACCOUNT_SID,
            call_sid=child,
            parent_call_sid=parent,
            status=status,
            sequence=sequence,
            from_=CALLER_ID,
            to=to,
            direction="outbound-dial",
            duration_s=duration_s if status == "completed" else None,
            timestamp=at + timedelta(seconds=sequence * seconds_between),
        )
        for sequence, status in enumerate(PSTN_STATUSES)
    ]


def answered_call(
    *,
    to: str = "+819012345678",
    duration_s: int = 61,
    app_id: str = "12",
    record_id: str = "345",
    identity: str = "u_1",
    at: datetime | None = None,
) -> list[CallEvent]:
    """Six distinct events of one answered call, the browser leg's CallSid first."""
    parent, child = new_sid(), new_sid()
    stamp = at or datetime.now(UTC)
    query = {"app_id": app_id, "record_id": record_id, "identity": identity}
    events = [
        call_event(
            EventKind.DIAL,
            {"CallSid": parent, "CallStatus": "ringing", "From": f"client:{identity}", "To": to},
            CallContext(app_id=app_id, record_id=record_id, identity=identity),
            stamp,
        )
    ]
    for form in pstn_leg_forms(parent=parent, child=child, to=to, duration_s=duration_s, at=stamp):
        events.append(status_event(form, query, stamp))
    form = status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=parent,
        status="completed",
        sequence=None,
        from_=f"client:{identity}",
        to=to,
        direction="inbound",
        duration_s=duration_s,
        timestamp=stamp,
    )
    events.append(status_event(form, {}, stamp))
    return events
