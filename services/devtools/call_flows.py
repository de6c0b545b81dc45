"""One call as the gateway publishes it, for tests and benchmarks that feed the recorder
directly: the ``dial`` event (from /twiml/voice), the PSTN leg's callbacks and the browser
leg's completion, each built by the gateway's own parsers from a Twilio-shaped form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from services.common.events import CallContext, CallEvent, EventKind
from services.common.numbers import parse_number
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


# --- inbound calls ---------------------------------------------------------------------------
#
# A customer calls the company number (voice URL /twiml/incoming) or calls through LINE (the
# SIP domain's voice URL /twiml/sip). Twilio then: rings the browsers of the ring group, one
# child leg per <Client>, each reporting to the callback URL of its <Client>; asks the <Dial>'s
# action URL what next when the ring ends; maybe dials the forward number (another child leg);
# and reports the parent leg once, when it ends, to the number's (or SIP domain's) status
# callback, /twilio/status without a query.

COMPANY_NUMBER = CALLER_ID
LINE_SIP_DOMAIN = "acme-line.sip.twilio.com"
LINE_SIP_FROM = "sip:line-call@line-sip.example.jp"
LINE_SIP_TO = f"sip:calltrail@{LINE_SIP_DOMAIN}"
LINE_USER_ID = "U" + "0123456789abcdef" * 2
RING_STATUSES = {
    "answered": ("initiated", "ringing", "in-progress", "completed"),
    "canceled": ("initiated", "ringing", "canceled"),  # another browser answered
    "no-answer": ("initiated", "ringing", "no-answer"),  # RING_TIMEOUT_S passed
    "busy": ("initiated", "ringing", "busy"),  # declined in the browser
}


@dataclass(frozen=True, slots=True)
class DevCustomer:
    """A customer of the dev kintone's customer app, with their number as someone typed it."""

    name: str
    phone: str  # as written on the record: hyphens, spaces, +81, parentheses, or none
    line_user_id: str | None = None  # set when they also call through LINE

    @property
    def e164(self) -> str:
        """The number as Twilio posts it in ``From`` when they call."""
        return parse_number(self.phone).e164


#: The customers ``calltrail dev``'s kintone stand-in holds (records 1, 2, … of app 12) and the
#: callers ``calltrail simulate --customers`` draws most inbound calls from: one definition, so
#: the simulated callers match records. Two records share a number written two ways (a company
#: and its contact person), as real customer apps do; such a call lands on both.
DEV_CUSTOMERS: tuple[DevCustomer, ...] = (
    DevCustomer("株式会社青葉商事", "03-3123-4567", "U" + "a1" * 16),
    DevCustomer("青葉商事 田中様", "(03) 3123-4567"),
    DevCustomer("山田 太郎", "090-1234-5678", "U" + "b2" * 16),
    DevCustomer("佐々木 花子", "080 2345 6789"),
    DevCustomer("有限会社みどり工務店", "+81 6-6123-4567"),
    DevCustomer("鈴木 一郎", "+81-70-3456-7890", "U" + "c3" * 16),
    DevCustomer("株式会社さくら物流", "052-123-4567"),
    DevCustomer("高橋 美咲", "09045678901"),
    DevCustomer("伊藤 健", "+819056789012"),
    DevCustomer("渡辺商店", "(0465) 22-1234"),
    DevCustomer("中村 由美", "050-3456-7890", "U" + "d4" * 16),
    DevCustomer("小林 誠", "080-6789-0123"),
)


def _dialled_leg_forms(
    *,
    parent: str,
    child: str,
    statuses: tuple[str, ...],
    from_: str,
    to: str,
    answered: bool,
    at: datetime,
    ring_s: int,
    talk_s: int,
) -> list[dict[str, str]]:
    """A leg the gateway's ``<Dial>`` made: initiated and ringing at once, answered (or not)
    after ``ring_s``, over ``talk_s`` later; CallDuration with the terminal status."""
    forms = []
    for sequence, status in enumerate(statuses):
        moment = at + timedelta(seconds=min(sequence, 1))
        duration = None
        if status == "in-progress":
            moment = at + timedelta(seconds=ring_s)
        elif sequence == len(statuses) - 1:
            moment = at + timedelta(seconds=ring_s + (talk_s if answered else 0))
            duration = talk_s if answered else 0
        forms.append(
            status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=child,
                parent_call_sid=parent,
                status=status,
                sequence=sequence,
                from_=from_,
                to=to,
                direction="outbound-dial",
                duration_s=duration,
                timestamp=moment,
            )
        )
    return forms


def ring_leg_forms(
    *,
    parent: str,
    child: str,
    caller: str,
    identity: str,
    outcome: str,
    at: datetime,
    ring_s: int = 6,
    talk_s: int = 0,
) -> list[dict[str, str]]:
    """One ``<Client>`` leg's status callbacks: From the caller, To ``client:<identity>``;
    ``outcome`` is how it ends (a key of RING_STATUSES)."""
    return _dialled_leg_forms(
        parent=parent,
        child=child,
        statuses=RING_STATUSES[outcome],
        from_=caller,
        to=f"client:{identity}",
        answered=outcome == "answered",
        at=at,
        ring_s=ring_s,
        talk_s=talk_s,
    )


def forward_leg_forms(
    *,
    parent: str,
    child: str,
    to: str,
    answered: bool,
    at: datetime,
    ring_s: int = 8,
    talk_s: int = 0,
    caller_id: str = CALLER_ID,
) -> list[dict[str, str]]:
    """The forward ``<Number>`` leg's status callbacks (caller ID: the company's number)."""
    return _dialled_leg_forms(
        parent=parent,
        child=child,
        statuses=PSTN_STATUSES if answered else ("initiated", "ringing", "no-answer"),
        from_=caller_id,
        to=to,
        answered=answered,
        at=at,
        ring_s=ring_s,
        talk_s=talk_s,
    )


def parent_leg_form(
    *, parent: str, from_: str, to: str, duration_s: int, at: datetime
) -> dict[str, str]:
    """The inbound (parent) leg's one status callback, when it ends: the number's or the SIP
    domain's status callback reports ``completed`` only, without a SequenceNumber."""
    return status_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=parent,
        status="completed",
        sequence=None,
        from_=from_,
        to=to,
        direction="inbound",
        duration_s=duration_s,
        timestamp=at,
    )


INBOUND_OUTCOMES = ("answered", "forwarded", "forward-unanswered", "missed", "hung-up")


def _twilio_order(form: dict[str, str]) -> tuple[datetime, bool]:
    return parsedate_to_datetime(form["Timestamp"]), form["CallStatus"] == "canceled"


def inbound_call(
    *,
    kind: str = "number",
    outcome: str = "answered",
    identities: tuple[str, ...] = ("kintone_1", "kintone_2"),
    answered_by: str | None = None,
    caller: str = "+819012345678",
    line_user_id: str | None = LINE_USER_ID,
    forward_to: str = "+81312345678",
    ring_s: int = 6,
    talk_s: int = 61,
    at: datetime | None = None,
) -> list[CallEvent]:
    """The distinct events of one inbound call, as the gateway publishes them, in Twilio's
    order: the ``inbound`` (``kind="number"``) or ``sip-inbound`` (``kind="line"``) event,
    every ``<Client>`` leg's callbacks, the forward leg's, and the parent leg's ``completed``.

    ``outcome``: ``answered`` (by ``answered_by``, default the first identity; the other legs
    are canceled), ``forwarded`` (nobody answered: every client leg ``no-answer``, then the
    forward phone answers), ``forward-unanswered`` (the forward phone rings out too),
    ``missed`` (nobody answered, nowhere to forward: a message) or ``hung-up`` (the caller
    hung up while it rang: Twilio cancels the client legs)."""
    if outcome not in INBOUND_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    stamp = at or datetime.now(UTC)
    parent = new_sid()
    line = kind == "line"
    from_, to = (LINE_SIP_FROM, LINE_SIP_TO) if line else (caller, COMPANY_NUMBER)
    line_user_id = line_user_id if line else None
    context = CallContext(line_user_id=line_user_id, direction="inbound")
    query = {"direction": "inbound"}
    if line_user_id is not None:
        query["line_user_id"] = line_user_id
    voice = {"CallSid": parent, "CallStatus": "ringing", "From": from_, "To": to}
    events = [
        call_event(EventKind.SIP_INBOUND if line else EventKind.INBOUND, voice, context, stamp)
    ]
    answerer = answered_by or identities[0]
    leg_forms: list[dict[str, str]] = []
    for identity in identities:
        if outcome == "answered":
            leg_outcome = "answered" if identity == answerer else "canceled"
        elif outcome == "hung-up":
            leg_outcome = "canceled"
        else:
            leg_outcome = "no-answer"
        leg_forms += ring_leg_forms(
            parent=parent,
            child=new_sid(),
            caller=from_,
            identity=identity,
            outcome=leg_outcome,
            at=stamp,
            ring_s=ring_s,
            talk_s=talk_s,
        )
    ended = stamp + timedelta(seconds=ring_s + (talk_s if outcome == "answered" else 0))
    if outcome in ("forwarded", "forward-unanswered"):
        answered = outcome == "forwarded"
        leg_forms += forward_leg_forms(
            parent=parent,
            child=new_sid(),
            to=forward_to,
            answered=answered,
            at=ended,
            talk_s=talk_s if answered else 0,
        )
        ended += timedelta(seconds=8 + (talk_s if answered else 0))
    elif outcome == "missed":
        ended += timedelta(seconds=5)  # the message
    # Twilio's order: by time; at the moment a browser answers, its leg first, then the
    # others' cancellations.
    leg_forms.sort(key=_twilio_order)
    events += [status_event(form, query, stamp) for form in leg_forms]
    duration = int((ended - stamp).total_seconds())
    events.append(
        status_event(
            parent_leg_form(parent=parent, from_=from_, to=to, duration_s=duration, at=ended),
            {},
            stamp,
        )
    )
    return events
