"""Call legs from events: classification, destination, and a merge that ignores arrival order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext, CallEvent, CallStatus, EventKind
from services.common.numbers import DestinationType
from services.devtools.twilio_player import new_sid
from services.recorder.domain.legs import (
    STATUS_RANK,
    TERMINAL_RANK,
    CallLeg,
    Direction,
    Leg,
    apply_event,
    classify_leg,
    destination_of,
    event_time,
    merge_legs,
)
from tests.factories import CALLER_ID
from tests.unit.recorder.support import (
    IP_PHONE,
    LANDLINE,
    MOBILE,
    QUERY,
    SIP_FROM,
    T0,
    dial,
    fold,
    leg_of,
    sip_inbound,
    status,
)

PSTN_STATUSES = ("initiated", "ringing", "in-progress", "completed")
OFFSETS = (0, 2, 10, 71)  # seconds after T0 of each PSTN status above


def _pstn_events(child: str, parent: str, *, duration_s: int = 61) -> list[CallEvent]:
    """The PSTN leg's four callbacks, SequenceNumber 0..3, each with the callback URL's query."""
    return [
        status(
            name,
            call_sid=child,
            parent=parent,
            sequence=sequence,
            at=T0 + timedelta(seconds=offset),
            duration_s=duration_s if name == "completed" else None,
            query=QUERY,
        )
        for sequence, (name, offset) in enumerate(zip(PSTN_STATUSES, OFFSETS, strict=True))
    ]


def _browser_events(parent: str, *, duration_s: int = 63) -> list[CallEvent]:
    """The browser leg: the dial event, then the TwiML App's one callback when it ends."""
    return [
        dial(call_sid=parent),
        status(
            "completed",
            call_sid=parent,
            from_="client:u_123",
            to="090-1234-5678",
            direction="inbound",
            duration_s=duration_s,
            at=T0 + timedelta(seconds=72),
        ),
    ]


@st.composite
def _deliveries(draw: st.DrawFn, events: list[CallEvent]) -> list[CallEvent]:
    """Every event at least once, some repeated, in any order."""
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events) + 2))
    return draw(st.permutations(events + repeats))


# --- classification ---------------------------------------------------------------------------


def test_a_browser_leg_is_the_one_from_a_client() -> None:
    event = status("completed", call_sid=new_sid(), from_="client:u_123", to="090-1234-5678")
    assert classify_leg(event) is Leg.BROWSER
    assert classify_leg(dial(call_sid=new_sid())) is Leg.BROWSER


def test_a_child_leg_to_a_number_is_pstn() -> None:
    event = status("initiated", call_sid=new_sid(), parent=new_sid(), sequence=0)
    assert classify_leg(event) is Leg.PSTN


def test_a_call_without_parent_between_numbers_is_pstn() -> None:
    # An inbound call from a customer to the company's 050 number: the parent leg.
    event = status("ringing", call_sid=new_sid(), from_=MOBILE, to=CALLER_ID, direction="inbound")
    assert classify_leg(event) is Leg.PSTN


# --- direction (CONTRACT.md section 9, the wire agreement with the gateway) ------------------


def test_direction_of_every_kind_of_leg() -> None:
    root, client = new_sid(), new_sid()
    inbound_root = status("ringing", call_sid=root, from_=MOBILE, to=CALLER_ID)
    assert leg_of(inbound_root).direction is Direction.INBOUND  # no query, not a browser
    browser_root = status("completed", call_sid=root, from_="client:u_1", to=MOBILE)
    assert leg_of(browser_root).direction is Direction.OUTBOUND
    assert leg_of(dial(call_sid=root)).direction is Direction.OUTBOUND
    assert leg_of(sip_inbound(call_sid=root)).direction is Direction.INBOUND
    ringing_a_browser = status(
        "ringing",
        call_sid=client,
        parent=root,
        to="client:kintone_5",
        query={"identity": "kintone_5"},
    )
    ringing_a_browser.context.direction = "inbound"  # the gateway's statusCallback query
    leg = leg_of(ringing_a_browser)
    assert (leg.leg, leg.direction, leg.user_identity) == (
        Leg.BROWSER,
        Direction.INBOUND,
        "kintone_5",
    )
    # A child leg nobody marked is a browser call's PSTN leg.
    assert leg_of(status("ringing", call_sid=client, parent=root)).direction is Direction.OUTBOUND
    # A root leg without From says nothing; inbound wins over that default when merged.
    silent = status("ringing", call_sid=root, from_="", to=CALLER_ID)
    assert leg_of(silent).direction is None
    assert leg_of(silent, inbound_root).direction is Direction.INBOUND


def test_an_inbound_root_leg_is_classified_by_its_caller() -> None:
    leg = leg_of(status("completed", call_sid=new_sid(), from_=MOBILE, to=CALLER_ID))
    assert leg.leg is Leg.PSTN
    assert leg.destination_type is DestinationType.MOBILE  # who called, not the 050 number


def test_a_sip_leg_comes_from_sip() -> None:
    event = status("ringing", call_sid=new_sid(), from_=SIP_FROM, to=MOBILE, direction="inbound")
    assert classify_leg(event) is Leg.SIP


def test_a_sip_leg_to_sip_is_sip() -> None:
    event = status("initiated", call_sid=new_sid(), to="sip:agent@example.com", sequence=0)
    assert classify_leg(event) is Leg.SIP


def test_an_inbound_call_ringing_a_browser_is_a_browser_leg() -> None:
    event = status("ringing", call_sid=new_sid(), parent=new_sid(), from_=MOBILE, to="client:u_123")
    assert classify_leg(event) is Leg.BROWSER
    leg = leg_of(event)
    assert leg.leg is Leg.BROWSER
    assert leg.destination_type is DestinationType.CLIENT


def test_the_sip_inbound_event_makes_a_sip_leg_whatever_the_caller() -> None:
    event = sip_inbound(call_sid=new_sid(), from_=MOBILE)
    assert event.kind is EventKind.SIP_INBOUND
    assert classify_leg(event) is Leg.SIP


# --- destination types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (MOBILE, DestinationType.MOBILE),
        ("090-1234-5678", DestinationType.MOBILE),
        (LANDLINE, DestinationType.LANDLINE),
        (IP_PHONE, DestinationType.IP_PHONE),
        ("050-1234-5678", DestinationType.IP_PHONE),
        ("+81120123456", DestinationType.TOLL_FREE),
        ("+12025550123", DestinationType.INTERNATIONAL),
        ("+442079460000", DestinationType.INTERNATIONAL),
        ("anonymous", DestinationType.UNKNOWN),
        ("+81", DestinationType.UNKNOWN),
        ("", DestinationType.UNKNOWN),
        (None, DestinationType.UNKNOWN),
    ],
)
def test_the_destination_of_a_pstn_leg(to: str | None, expected: DestinationType) -> None:
    assert destination_of(Leg.PSTN, to) is expected


@pytest.mark.parametrize("to", [MOBILE, LANDLINE, "client:u_1", None])
def test_a_browser_leg_goes_to_a_client(to: str | None) -> None:
    assert destination_of(Leg.BROWSER, to) is DestinationType.CLIENT


def test_a_sip_leg_has_no_phone_destination() -> None:
    assert destination_of(Leg.SIP, MOBILE) is DestinationType.UNKNOWN


def test_destination_types_are_relative_to_the_home_region() -> None:
    assert destination_of(Leg.PSTN, "+12025550123", home_region="US") is (DestinationType.LANDLINE)
    assert destination_of(Leg.PSTN, MOBILE, home_region="US") is DestinationType.INTERNATIONAL


def test_the_leg_records_its_destination_from_the_events() -> None:
    child, parent = new_sid(), new_sid()
    leg = leg_of(status("initiated", call_sid=child, parent=parent, sequence=0, to=LANDLINE))
    assert leg.leg is Leg.PSTN
    assert leg.destination_type is DestinationType.LANDLINE
    assert leg.parent_call_sid == parent
    assert leg.to_number == LANDLINE
    assert leg.from_number == CALLER_ID
    assert leg.direction is Direction.OUTBOUND
    assert leg.twilio_direction == "outbound-dial"


# --- status: forward only -----------------------------------------------------------------------


def test_status_ranks_put_every_terminal_status_last() -> None:
    assert set(STATUS_RANK) == set(CallStatus)
    terminal = {s for s, rank in STATUS_RANK.items() if rank == TERMINAL_RANK}
    assert terminal == {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.CANCELED,
        CallStatus.FAILED,
    }
    assert max(STATUS_RANK.values()) == TERMINAL_RANK


def test_a_late_ringing_never_overwrites_completed() -> None:
    child, parent = new_sid(), new_sid()
    init, ringing, answered, completed = _pstn_events(child, parent)
    leg = leg_of(init, answered, completed, ringing)
    assert leg.status is CallStatus.COMPLETED
    assert leg.sequence == 3
    assert leg.ended


def test_a_late_status_without_sequence_does_not_move_the_leg_back() -> None:
    child, parent = new_sid(), new_sid()
    completed = _pstn_events(child, parent)[3]
    late = status("ringing", call_sid=child, parent=parent, sequence=None)
    assert leg_of(completed, late).status is CallStatus.COMPLETED


def test_a_status_moves_the_leg_forward() -> None:
    child, parent = new_sid(), new_sid()
    init, ringing, answered, _ = _pstn_events(child, parent)
    leg = leg_of(init)
    assert leg.status is CallStatus.INITIATED
    assert not leg.ended
    leg = apply_event(leg, ringing)
    assert (leg.status, leg.sequence) == (CallStatus.RINGING, 1)
    leg = apply_event(leg, answered)
    assert (leg.status, leg.sequence) == (CallStatus.IN_PROGRESS, 2)
    assert not leg.ended


def test_a_duplicate_changes_nothing() -> None:
    child, parent = new_sid(), new_sid()
    events = _pstn_events(child, parent)
    for n in range(1, len(events) + 1):
        leg = leg_of(*events[:n])
        for event in events[:n]:
            assert apply_event(leg, event) == leg


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        (("completed", 3), ("canceled", 2), CallStatus.COMPLETED),
        (("busy", 2), ("completed", 3), CallStatus.COMPLETED),
        (("no-answer", 4), ("completed", 3), CallStatus.NO_ANSWER),
        (("failed", None), ("busy", 1), CallStatus.BUSY),
    ],
)
def test_equal_rank_terminal_statuses_are_settled_by_sequence(
    first: tuple[str, int | None], second: tuple[str, int | None], winner: CallStatus
) -> None:
    sid = new_sid()
    a = status(first[0], call_sid=sid, sequence=first[1], duration_s=0)
    b = status(second[0], call_sid=sid, sequence=second[1], duration_s=0)
    assert leg_of(a, b).status is winner
    assert leg_of(b, a) == leg_of(a, b)


def test_terminal_statuses_with_the_same_sequence_do_not_depend_on_arrival() -> None:
    sid = new_sid()
    a = status("canceled", call_sid=sid, sequence=2)
    b = status("no-answer", call_sid=sid, sequence=2)
    assert leg_of(a, b) == leg_of(b, a)
    assert leg_of(a, b).status in (CallStatus.CANCELED, CallStatus.NO_ANSWER)


# --- times ----------------------------------------------------------------------------------


def test_times_come_from_twilios_timestamps() -> None:
    child, parent = new_sid(), new_sid()
    late = timedelta(seconds=30)  # the gateway received each callback well after Twilio sent it
    events = [
        status(
            name,
            call_sid=child,
            parent=parent,
            sequence=seq,
            at=T0 + timedelta(seconds=off),
            received_at=T0 + timedelta(seconds=off) + late,
            duration_s=61 if name == "completed" else None,
        )
        for seq, (name, off) in enumerate(zip(PSTN_STATUSES, OFFSETS, strict=True))
    ]
    leg = leg_of(*events)
    assert leg.started_at == T0
    assert leg.answered_at == T0 + timedelta(seconds=10)
    assert leg.ended_at == T0 + timedelta(seconds=71)
    assert leg.duration_s == 61


def test_event_time_reads_rfc_2822_with_any_offset() -> None:
    event = status(
        "initiated",
        call_sid=new_sid(),
        sequence=0,
        timestamp="Mon, 02 Nov 2026 10:00:00 +0900",
        received_at=T0 + timedelta(minutes=5),
    )
    assert event_time(event) == T0
    assert event_time(event).utcoffset() is not None


@pytest.mark.parametrize(
    "timestamp",
    [
        None,  # no Timestamp parameter at all
        "",
        "yesterday at noon",
        "Mon, 02 Nov 2026 01:00:00 -0000",  # RFC 2822's "zone unknown": naive, unusable
    ],
)
def test_event_time_falls_back_to_received_at(timestamp: str | None) -> None:
    received = T0 + timedelta(seconds=3, milliseconds=250)
    event = status(
        "initiated",
        call_sid=new_sid(),
        sequence=0,
        at=T0,
        received_at=received,
        timestamp=timestamp,
        drop_timestamp=timestamp is None,
    )
    assert event_time(event) == received
    assert leg_of(event).started_at == received


def test_a_leg_known_only_from_its_end_started_when_it_ended() -> None:
    event = status("completed", call_sid=new_sid(), parent=new_sid(), sequence=3, duration_s=0)
    leg = leg_of(event)
    assert leg.started_at == leg.ended_at == T0
    assert leg.answered_at is None


def test_queued_is_not_a_start() -> None:
    sid = new_sid()
    queued = status("queued", call_sid=sid, at=T0 - timedelta(seconds=20))
    init = status("initiated", call_sid=sid, sequence=0, at=T0)
    assert leg_of(queued, init).started_at == T0
    assert leg_of(queued).started_at is None


def test_the_earliest_report_of_a_moment_wins() -> None:
    sid = new_sid()
    early = status("in-progress", call_sid=sid, sequence=2, at=T0)
    again = status("in-progress", call_sid=sid, sequence=2, at=T0 + timedelta(seconds=4))
    assert leg_of(again, early).answered_at == T0
    assert leg_of(early, again).answered_at == T0


def test_the_browser_leg_starts_with_its_dial_event() -> None:
    parent = new_sid()
    leg = leg_of(*reversed(_browser_events(parent)))
    assert leg.leg is Leg.BROWSER
    assert leg.started_at == T0
    assert leg.ended_at == T0 + timedelta(seconds=72)
    assert leg.status is CallStatus.COMPLETED
    assert leg.sequence == -1  # the TwiML App's callback carries no SequenceNumber


# --- context and duration --------------------------------------------------------------------


def test_context_is_kept_from_whichever_event_carries_it() -> None:
    child, parent = new_sid(), new_sid()
    init = status("initiated", call_sid=child, parent=parent, sequence=0, query=QUERY)
    done = status("completed", call_sid=child, parent=parent, sequence=3, duration_s=5)
    for events in ([init, done], [done, init]):
        leg = leg_of(*events)
        assert leg.kintone_app_id == "12"
        assert leg.kintone_record_id == "345"
        assert leg.user_identity == "u_123"
        assert leg.line_user_id is None


def test_the_browser_leg_gets_its_record_from_the_dial_event() -> None:
    parent = new_sid()
    dial_event, completed = _browser_events(parent)
    assert completed.context == CallContext(identity="u_123")
    for events in ([dial_event, completed], [completed, dial_event]):
        leg = leg_of(*events)
        assert (leg.kintone_app_id, leg.kintone_record_id, leg.user_identity) == (
            "12",
            "345",
            "u_123",
        )
        # The dial event's E.164 number and the callback's number as typed: not arrival decides.
        assert leg.to_number == MOBILE


def test_the_line_user_is_kept_from_the_sip_inbound_event() -> None:
    sid = new_sid()
    inbound = sip_inbound(call_sid=sid, line_user_id="U0123456789abcdef")
    done = status(
        "completed", call_sid=sid, from_=SIP_FROM, to=MOBILE, direction="inbound", duration_s=90
    )
    for events in ([inbound, done], [done, inbound]):
        leg = leg_of(*events)
        assert leg.leg is Leg.SIP
        assert leg.destination_type is DestinationType.UNKNOWN
        assert leg.line_user_id == "U0123456789abcdef"
        assert leg.duration_s == 90


def test_the_line_user_from_the_callback_query() -> None:
    sid = new_sid()
    event = status(
        "ringing", call_sid=sid, from_=SIP_FROM, query={"line_user_id": "U" + "abc0" * 8}
    )
    assert leg_of(event).line_user_id == "U" + "abc0" * 8


def test_the_largest_reported_duration_wins() -> None:
    sid = new_sid()
    first = status("completed", call_sid=sid, sequence=3, duration_s=60)
    second = status("completed", call_sid=sid, sequence=3, duration_s=61)
    ringing = status("ringing", call_sid=sid, sequence=1)
    assert leg_of(first, second).duration_s == 61
    assert leg_of(second, first).duration_s == 61
    assert leg_of(second, ringing).duration_s == 61  # no report does not erase one
    assert leg_of(ringing).duration_s is None


def test_a_zero_duration_is_a_report() -> None:
    sid = new_sid()
    busy = status("busy", call_sid=sid, sequence=2, duration_s=0)
    ringing = status("ringing", call_sid=sid, sequence=1)
    assert leg_of(ringing, busy).duration_s == 0
    assert leg_of(busy, ringing).duration_s == 0


# --- THE property: arrival order and repeats do not matter ------------------------------------

_CHILD, _PARENT = new_sid(), new_sid()
_PSTN = _pstn_events(_CHILD, _PARENT)
_BROWSER = _browser_events(_PARENT)
_PSTN_LEG = leg_of(*_PSTN)
_PAIR = fold(_BROWSER + _PSTN)


def test_the_reference_leg_is_what_twilio_reported() -> None:
    expected = CallLeg(
        call_sid=_CHILD,
        parent_call_sid=_PARENT,
        leg=Leg.PSTN,
        destination_type=DestinationType.MOBILE,
        status=CallStatus.COMPLETED,
        sequence=3,
        from_number=CALLER_ID,
        to_number=MOBILE,
        direction=Direction.OUTBOUND,
        twilio_direction="outbound-dial",
        started_at=T0,
        answered_at=T0 + timedelta(seconds=10),
        ended_at=T0 + timedelta(seconds=71),
        duration_s=61,
        kintone_app_id="12",
        kintone_record_id="345",
        user_identity="u_123",
        line_user_id=None,
    )
    assert expected == _PSTN_LEG
    browser = _PAIR[_PARENT]
    assert browser.leg is Leg.BROWSER
    assert browser.destination_type is DestinationType.CLIENT
    assert browser.parent_call_sid is None
    assert browser.duration_s == 63
    assert _PAIR[_CHILD] == _PSTN_LEG


@settings(max_examples=200, deadline=None)
@given(_deliveries(_PSTN))
def test_any_order_and_any_repeats_give_the_same_leg(events: list[CallEvent]) -> None:
    assert leg_of(*events) == _PSTN_LEG
    # Replaying everything (a consumer rebalance) changes nothing either.
    assert fold(events, {_CHILD: _PSTN_LEG}) == {_CHILD: _PSTN_LEG}


@settings(max_examples=200, deadline=None)
@given(_deliveries(_BROWSER + _PSTN))
def test_any_order_gives_the_same_parent_and_child(events: list[CallEvent]) -> None:
    assert fold(events) == _PAIR
    assert fold(events, _PAIR) == _PAIR


@st.composite
def _any_events(draw: st.DrawFn) -> list[CallEvent]:
    """Events of one leg with anything Twilio might send: any status, sequence, time,
    duration and context, some without a Timestamp."""
    sid, parent = _CHILD, _PARENT
    out = []
    for _ in range(draw(st.integers(1, 6))):
        at = T0 + timedelta(seconds=draw(st.integers(0, 120)))
        kwargs: dict[str, Any] = {
            "call_sid": sid,
            "parent": parent,
            "sequence": draw(st.none() | st.integers(0, 4)),
            "at": at,
            "received_at": at + timedelta(milliseconds=draw(st.integers(0, 5000))),
            "drop_timestamp": draw(st.booleans()),
            "duration_s": draw(st.none() | st.integers(0, 200)),
            "query": draw(
                st.sampled_from(
                    [{}, QUERY, {"app_id": "13"}, {"record_id": "7", "identity": "u_9"}]
                )
            ),
        }
        out.append(status(draw(st.sampled_from(list(CallStatus))).value, **kwargs))
    return out


@settings(max_examples=200, deadline=None)
@given(events=_any_events(), data=st.data())
def test_the_merge_is_order_independent_for_any_events(
    events: list[CallEvent], data: st.DataObject
) -> None:
    expected = leg_of(*events)
    shuffled = data.draw(_deliveries(events))
    assert leg_of(*shuffled) == expected
    assert fold(events, {_CHILD: expected}) == {_CHILD: expected}
    # The status is the highest (rank, sequence) reported.
    best = max(STATUS_RANK[e.status] for e in events)
    assert STATUS_RANK[expected.status] == best
    assert expected.sequence == max(
        (e.sequence if e.sequence is not None else -1)
        for e in events
        if STATUS_RANK[e.status] == best
    )


@settings(max_examples=200, deadline=None)
@given(events=_any_events(), data=st.data())
def test_folding_in_batches_then_merging_equals_one_by_one(
    events: list[CallEvent], data: st.DataObject
) -> None:
    """What the recorder does: each batch folded per leg outside the transaction, then merged
    with the stored leg. Any split into batches gives the leg that one-by-one gives."""
    expected = leg_of(*events)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=3)))
    batches = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    stored = None
    for batch in batches:
        if not batch:
            continue
        partial = leg_of(*batch)
        stored = partial if stored is None else merge_legs(stored, partial)
    assert stored == expected
    assert merge_legs(expected, expected) == expected
