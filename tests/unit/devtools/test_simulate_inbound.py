"""``calltrail simulate``'s inbound calls and the inbound builders of call_flows: pure, seeded,
and every flow one real Twilio could send."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from services.common.events import CallStatus, EventKind
from services.common.numbers import parse_number
from services.devtools.call_flows import (
    COMPANY_NUMBER,
    DEV_CUSTOMERS,
    LINE_SIP_FROM,
    LINE_SIP_TO,
    LINE_USER_ID,
    RING_STATUSES,
    forward_leg_forms,
    inbound_call,
    parent_leg_form,
    ring_leg_forms,
)
from services.devtools.simulate import (
    WITHHELD_CALLERS,
    PlannedInbound,
    inbound_voice,
    jitter,
    plan_inbound_calls,
    ring_forms,
)
from services.gateway.domain.callbacks import CALL_SID, status_event
from services.gateway.domain.line import line_user_id
from services.recorder.domain.customer_lookup import LINE_USER_ID as LINE_USER_ID_FORM
from services.recorder.domain.customer_lookup import same_number
from tests.factories import ACCOUNT_SID

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
SEED = 20261130
CALLS = plan_inbound_calls(400, seed=SEED, start=START)
RING = ["kintone_1", "kintone_2", "kintone_3"]
INBOUND_QUERY = {"direction": "inbound"}


def _without_sids(call: PlannedInbound) -> tuple[object, ...]:
    return (
        call.kind,
        call.caller,
        call.uui,
        call.line_user_id,
        call.answered,
        call.answerer,
        call.forward_answers,
        call.ring_s,
        call.talk_s,
        call.started_at,
        call.shuffle_seed,
    )


# --- plan_inbound_calls ------------------------------------------------------------------------


def test_a_seed_gives_the_same_plan_and_another_seed_another() -> None:
    same = plan_inbound_calls(400, seed=SEED, start=START)
    other = plan_inbound_calls(400, seed=SEED + 1, start=START)
    assert [_without_sids(c) for c in same] == [_without_sids(c) for c in CALLS]
    assert [_without_sids(c) for c in other] != [_without_sids(c) for c in CALLS]
    assert plan_inbound_calls(0, seed=1) == []


def test_missed_callers_hang_up_or_leave_a_message_without_changing_the_rest_of_the_plan() -> None:
    with_hang_ups = plan_inbound_calls(400, seed=SEED, start=START, hang_ups=0.5)
    assert [_without_sids(c) for c in with_hang_ups] == [_without_sids(c) for c in CALLS]
    assert not any(c.hangs_up for c in CALLS)  # none by default
    hung_up = [c for c in with_hang_ups if c.hangs_up]
    assert hung_up
    assert not any(c.answered for c in hung_up)  # only a call nobody answered is given up on
    assert 0.3 < len(hung_up) / sum(not c.answered for c in with_hang_ups) < 0.7
    messages = {c.leaves_message for c in with_hang_ups}
    assert messages == {True, False}  # voicemails with speech and silent ones
    assert all(5 <= c.message_s <= 40 for c in with_hang_ups)


def test_with_customers_most_callers_are_theirs_and_the_rest_of_the_plan_is_unchanged() -> None:
    calls = plan_inbound_calls(400, seed=SEED, start=START, customers=DEV_CUSTOMERS)
    phones = {customer.e164 for customer in DEV_CUSTOMERS}
    line_ids = {customer.line_user_id for customer in DEV_CUSTOMERS} - {None}
    # Only who calls changes: kinds, answers, timings are those of the same seed without them.
    assert [_without_sids(c)[:1] + _without_sids(c)[4:] for c in calls] == [
        _without_sids(c)[:1] + _without_sids(c)[4:] for c in CALLS
    ]
    numbers = [c.caller for c in calls if c.kind == "number" and c.caller not in WITHHELD_CALLERS]
    known = [caller for caller in numbers if caller in phones]
    assert 0.7 < len(known) / len(numbers) < 0.9  # KNOWN_CALLER_SHARE, and some strangers
    assert {c.caller for c in calls} & set(WITHHELD_CALLERS)  # withheld callers stay
    assert all(parse_number(caller).e164 == caller for caller in numbers)
    line_calls = [c for c in calls if c.kind == "line"]
    readable = [c.line_user_id for c in line_calls if c.line_user_id]
    assert 0.6 < sum(i in line_ids for i in readable) / len(readable) < 0.95
    assert any(i not in line_ids for i in readable)  # LINE users no record knows
    for call in line_calls:  # the gateway reads the customer's id from the header as planned
        assert line_user_id(inbound_voice(call, ACCOUNT_SID)[1].items()) == call.line_user_id


def test_dev_customers_numbers_are_written_the_ways_people_write_them() -> None:
    written = [customer.phone for customer in DEV_CUSTOMERS]
    assert any("-" in p for p in written)
    assert any(" " in p and "+" not in p for p in written)
    assert any(p.startswith("+81") for p in written)
    assert any("(" in p for p in written)
    assert any(p.isdigit() for p in written)
    for customer in DEV_CUSTOMERS:
        assert same_number(customer.phone, customer.e164)  # the recorder finds them
        assert customer.line_user_id is None or LINE_USER_ID_FORM.fullmatch(customer.line_user_id)
    assert len({c.line_user_id for c in DEV_CUSTOMERS if c.line_user_id}) >= 3


def test_every_call_has_its_own_call_sid_and_starts_before_the_start() -> None:
    sids = [c.parent_sid for c in CALLS]
    assert len(set(sids)) == len(sids)
    assert all(CALL_SID.fullmatch(sid) for sid in sids)
    starts = [c.started_at for c in CALLS]
    assert starts == sorted(starts)
    assert starts[-1] < START


def test_both_kinds_answered_and_missed() -> None:
    shapes = Counter((c.kind, c.answered) for c in CALLS)
    assert set(shapes) == {("number", True), ("number", False), ("line", True), ("line", False)}
    assert 0.55 < sum(c.answered for c in CALLS) / len(CALLS) < 0.75


def test_number_callers_are_valid_e164_numbers_or_withheld() -> None:
    number_calls = [c for c in CALLS if c.kind == "number"]
    withheld = [c for c in number_calls if c.caller in WITHHELD_CALLERS]
    assert 0 < len(withheld) < len(number_calls) / 5
    for call in number_calls:
        assert call.uui is None
        assert call.line_user_id is None
        if call.caller not in WITHHELD_CALLERS:
            assert parse_number(call.caller).e164 == call.caller


def test_line_calls_carry_a_uui_the_gateway_reads_as_planned() -> None:
    line_calls = [c for c in CALLS if c.kind == "line"]
    assert {c.caller for c in line_calls} == {LINE_SIP_FROM}
    assert any(c.uui is None for c in line_calls)  # no header at all
    assert any(c.uui is not None and c.line_user_id is None for c in line_calls)  # junk
    assert any(c.uui is not None and ";encoding=hex" in c.uui for c in line_calls)
    assert any(c.uui is not None and "%3B" in c.uui for c in line_calls)
    for call in line_calls:
        path, form = inbound_voice(call, ACCOUNT_SID)
        assert path == "/twiml/sip"
        assert form["To"] == LINE_SIP_TO
        assert line_user_id(form.items()) == call.line_user_id


def test_the_voice_request_of_a_number_call() -> None:
    call = next(c for c in CALLS if c.kind == "number")
    path, form = inbound_voice(call, ACCOUNT_SID)
    assert path == "/twiml/incoming"
    assert form["CallSid"] == call.parent_sid
    assert (form["From"], form["To"], form["Direction"]) == (call.caller, COMPANY_NUMBER, "inbound")
    assert form["CallStatus"] == "ringing"
    assert "ParentCallSid" not in form


def test_missed_calls_ring_the_whole_timeout() -> None:
    for call in CALLS:
        assert call.ring_s == 20 if not call.answered else 2 <= call.ring_s <= 18


# --- ring_forms --------------------------------------------------------------------------------


@pytest.mark.parametrize("ring", [["kintone_1"], RING])
def test_each_browser_leg_reports_in_twilio_s_shapes(ring: list[str]) -> None:
    for call in CALLS[:120]:
        forms = ring_forms(call, ring)
        by_leg: dict[str, list[dict[str, str]]] = {}
        for identity, form in forms:
            assert form["To"] == f"client:{identity}"
            assert form["From"] == call.caller
            assert form["ParentCallSid"] == call.parent_sid
            assert form["Direction"] == "outbound-dial"
            by_leg.setdefault(form["CallSid"], []).append(form)
        assert len(by_leg) == len(ring)
        assert len(forms) - sum(len(RING_STATUSES["canceled"]) for _ in ring) in range(0, 4)
        answered = [sid for sid, legs in by_leg.items() if _statuses(legs)[-1] == "completed"]
        if call.answered:
            [sid] = answered
            identity = by_leg[sid][0]["To"].removeprefix("client:")
            assert identity == ring[call.answerer % len(ring)]
            others = {_statuses(legs)[-1] for s, legs in by_leg.items() if s != sid}
            assert others <= {"canceled"}
        else:
            assert not answered
            assert {_statuses(legs)[-1] for legs in by_leg.values()} == {"no-answer"}


def _statuses(forms: list[dict[str, str]]) -> list[str]:
    """A leg's distinct statuses in sequence order."""
    ordered = sorted({(int(f["SequenceNumber"]), f["CallStatus"]) for f in forms})
    return [status for _, status in ordered]


def test_browser_legs_are_sometimes_reordered_and_repeated() -> None:
    reordered = repeated = 0
    for call in CALLS:
        forms = [form for _, form in ring_forms(call, RING)]
        distinct = {tuple(sorted(f.items())) for f in forms}
        repeated += len(distinct) < len(forms)
        per_leg: dict[str, list[int]] = {}
        for form in forms:
            per_leg.setdefault(form["CallSid"], []).append(int(form["SequenceNumber"]))
        reordered += any(seqs != sorted(seqs) for seqs in per_leg.values())
    assert 0 < reordered < len(CALLS)
    assert 0 < repeated < len(CALLS)


def test_the_gateway_reads_every_browser_leg_as_an_inbound_leg_of_its_browser() -> None:
    for call in CALLS[:60]:
        for identity, form in ring_forms(call, RING):
            event = status_event(form, INBOUND_QUERY, START)
            assert event.root_call_sid == call.parent_sid
            assert event.context.identity == identity
            assert event.context.direction == "inbound"


def test_jitter_keeps_every_item_and_an_empty_list() -> None:
    items = list(range(10))
    shuffled = jitter(list(items), random.Random(3))
    assert set(shuffled) == set(items)
    assert len(items) <= len(shuffled) <= len(items) + 2
    assert jitter([], random.Random(3)) == []


# --- the builders ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", list(RING_STATUSES))
def test_ring_leg_forms(outcome: str) -> None:
    forms = ring_leg_forms(
        parent="CA1", child="CA2", caller="+819012345678", identity="kintone_1",
        outcome=outcome, at=START, ring_s=6, talk_s=61,
    )  # fmt: skip
    assert [f["CallStatus"] for f in forms] == list(RING_STATUSES[outcome])
    assert [f["SequenceNumber"] for f in forms] == [str(i) for i in range(len(forms))]
    assert forms[-1]["CallDuration"] == ("61" if outcome == "answered" else "0")
    assert all("CallDuration" not in f for f in forms[:-1])


@pytest.mark.parametrize("answered", [True, False])
def test_forward_leg_forms(answered: bool) -> None:
    forms = forward_leg_forms(
        parent="CA1", child="CA3", to="+81312345678", answered=answered, at=START, talk_s=30
    )
    statuses = [f["CallStatus"] for f in forms]
    assert statuses[0] == "initiated"
    assert statuses[-1] == ("completed" if answered else "no-answer")
    assert forms[-1]["CallDuration"] == ("30" if answered else "0")
    assert {f["To"] for f in forms} == {"+81312345678"}


def test_parent_leg_form() -> None:
    form = parent_leg_form(parent="CA1", from_="+8190", to=COMPANY_NUMBER, duration_s=9, at=START)
    assert form["CallStatus"] == "completed"
    assert form["Direction"] == "inbound"
    assert "SequenceNumber" not in form
    assert "ParentCallSid" not in form
    assert form["CallDuration"] == "9"


@pytest.mark.parametrize("kind", ["number", "line"])
@pytest.mark.parametrize("outcome", ["answered", "forwarded", "missed"])
def test_inbound_call_events(kind: str, outcome: str) -> None:
    events = inbound_call(kind=kind, outcome=outcome, answered_by="kintone_2", at=START)
    first, *legs, last = events
    assert first.kind is (EventKind.SIP_INBOUND if kind == "line" else EventKind.INBOUND)
    parent = first.call_sid
    assert {e.key() for e in events} == {parent.encode()}
    expected_line = LINE_USER_ID if kind == "line" else None
    assert first.context.line_user_id == expected_line
    assert first.context.direction == "inbound"
    assert all(e.context.direction == "inbound" for e in legs)
    assert all(e.context.line_user_id == expected_line for e in legs)
    assert last.call_sid == parent
    assert last.status is CallStatus.COMPLETED
    assert last.context.direction is None  # the number's status callback has no query
    answered = {e.context.identity for e in legs if e.status is CallStatus.IN_PROGRESS}
    forward = {e.call_sid for e in legs if e.to == "+81312345678"}
    client_ends = Counter(
        e.status.value
        for e in legs
        if (e.to or "").startswith("client:") and e.duration_s is not None
    )
    if outcome == "answered":
        assert answered == {"kintone_2"}
        assert client_ends == {"completed": 1, "canceled": 1}
        assert not forward
    else:
        assert client_ends == {"no-answer": 2}
        assert len(forward) == (1 if outcome == "forwarded" else 0)
    assert len({e.encode() for e in events}) == len(events)  # distinct, no repeats


def test_inbound_call_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        inbound_call(outcome="voicemail")
