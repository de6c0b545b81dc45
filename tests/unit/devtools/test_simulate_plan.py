"""``calltrail simulate``'s planning: pure, seeded, and every flow one real Twilio could send."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from services.common.events import CallStatus
from services.common.numbers import parse_number
from services.devtools.simulate import (
    DESTINATIONS,
    OUTCOMES,
    PlannedCall,
    callback_forms,
    plan_calls,
    pstn_statuses,
)
from services.gateway.domain.callbacks import CALL_SID, status_event
from services.recorder.domain.legs import Leg, apply_event
from tests.factories import ACCOUNT_SID, CALLER_ID

START = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
SEED = 20261102
CALLS = plan_calls(300, seed=SEED, start=START)


def _without_sids(call: PlannedCall) -> tuple[object, ...]:
    return (
        call.identity,
        call.app_id,
        call.record_id,
        call.to,
        call.destination,
        call.outcome,
        call.duration_s,
        call.parent_duration_s,
        call.started_at,
        call.shuffle_seed,
    )


def _forms(call: PlannedCall) -> list[tuple[bool, dict[str, str]]]:
    return callback_forms(call, ACCOUNT_SID, CALLER_ID, parse_number(call.to).e164)


# --- plan_calls --------------------------------------------------------------------------------


def test_a_seed_gives_the_same_plan() -> None:
    again = plan_calls(300, seed=SEED, start=START)
    assert [_without_sids(c) for c in again] == [_without_sids(c) for c in CALLS]


def test_another_seed_gives_another_plan() -> None:
    other = plan_calls(300, seed=SEED + 1, start=START)
    assert [_without_sids(c) for c in other] != [_without_sids(c) for c in CALLS]


def test_a_plan_of_nothing() -> None:
    assert plan_calls(0, seed=1) == []


def test_every_call_has_its_own_valid_call_sids() -> None:
    sids = [sid for c in CALLS for sid in (c.parent_sid, c.child_sid)]
    assert len(set(sids)) == len(sids)
    assert all(CALL_SID.fullmatch(sid) for sid in sids)


def test_every_number_is_valid_of_the_planned_kind_and_not_premium() -> None:
    for call in CALLS:
        number = parse_number(call.to)
        assert number.destination_type().value == call.destination, call.to
        assert not number.is_premium, call.to
        assert "-" in call.to  # as a kintone record holds it
        assert not call.to.startswith("+")


def test_destinations_and_outcomes_are_the_planned_ones() -> None:
    destinations = Counter(c.destination for c in CALLS)
    outcomes = Counter(c.outcome for c in CALLS)
    assert set(destinations) == {name for name, _, _ in DESTINATIONS}
    assert set(outcomes) == {name for name, _ in OUTCOMES}


def test_every_prefix_is_used() -> None:
    # Each prefix must make valid numbers: an area code like 052 has 10 digits, not 11.
    used = Counter(c.to.split("-")[0] for c in CALLS)
    for _, _, prefixes in DESTINATIONS:
        for prefix in prefixes:
            assert used[prefix] > 0, prefix


def test_only_answered_calls_last() -> None:
    for call in CALLS:
        if call.outcome == "completed":
            assert 3 <= call.duration_s <= 900
            assert call.duration_s <= call.parent_duration_s <= call.duration_s + 2
        else:
            assert call.duration_s == 0
            assert call.parent_duration_s == 0


def test_calls_start_one_after_another_before_the_start() -> None:
    starts = [c.started_at for c in CALLS]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    assert starts[-1] < START
    assert all(t.tzinfo is not None for t in starts)


def test_the_context_is_a_kintone_record_and_user() -> None:
    for call in CALLS:
        assert call.app_id == "12"
        assert 1 <= int(call.record_id) <= 400
        assert call.identity.startswith("u_")


# --- pstn_statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "statuses"),
    [
        ("completed", ["initiated", "ringing", "in-progress", "completed"]),
        ("busy", ["initiated", "ringing", "busy"]),
        ("no-answer", ["initiated", "ringing", "no-answer"]),
        ("canceled", ["initiated", "ringing", "canceled"]),
        ("failed", ["initiated", "failed"]),
    ],
)
def test_pstn_statuses(outcome: str, statuses: list[str]) -> None:
    call = next(c for c in CALLS if c.outcome == outcome)
    assert pstn_statuses(call) == statuses
    assert all(CallStatus(s) for s in statuses)


# --- callback_forms ----------------------------------------------------------------------------


def test_every_pstn_status_once_or_more_and_one_browser_completion() -> None:
    for call in CALLS:
        forms = _forms(call)
        statuses = pstn_statuses(call)
        pstn = [form for is_pstn, form in forms if is_pstn]
        browser = [form for is_pstn, form in forms if not is_pstn]

        assert {f["CallStatus"] for f in pstn} == set(statuses)
        assert len(forms) - len(statuses) - 1 in (0, 1, 2)  # up to two repeats
        for form in pstn:
            assert form["CallSid"] == call.child_sid
            assert form["ParentCallSid"] == call.parent_sid
            assert form["SequenceNumber"] == str(statuses.index(form["CallStatus"]))
            assert form["To"] == parse_number(call.to).e164
            assert form["From"] == CALLER_ID
        assert {f["SequenceNumber"] for f in pstn} == {str(i) for i in range(len(statuses))}
        terminal = next(f for f in pstn if f["CallStatus"] == statuses[-1])
        assert terminal["CallDuration"] == str(call.duration_s)

        assert browser
        assert all(form == browser[0] for form in browser)  # repeats of the same callback
        (completion,) = {tuple(sorted(f.items())) for f in browser}
        form = dict(completion)
        assert form["CallSid"] == call.parent_sid
        assert form["CallStatus"] == "completed"
        assert "ParentCallSid" not in form
        assert "SequenceNumber" not in form
        assert form["From"] == f"client:{call.identity}"
        assert form["CallDuration"] == str(call.parent_duration_s)


def test_callbacks_are_sometimes_reordered_and_repeated() -> None:
    reordered = repeated = 0
    for call in CALLS:
        forms = _forms(call)
        seen = []
        for _, form in forms:
            if form not in seen:
                seen.append(form)
        repeated += len(seen) < len(forms)
        sequences = [int(f.get("SequenceNumber", 99)) for f in seen]
        reordered += sequences != sorted(sequences)
    assert 0 < reordered < len(CALLS)
    assert 0 < repeated < len(CALLS)


def test_callback_forms_are_deterministic_for_a_call() -> None:
    for call in CALLS[:50]:
        assert _forms(call) == _forms(call)


def test_the_recorder_makes_of_the_callbacks_what_was_planned() -> None:
    for call in CALLS:
        legs = {}
        for _, form in _forms(call):
            event = status_event(form, {}, START)
            legs[event.call_sid] = apply_event(legs.get(event.call_sid), event)
        assert set(legs) == {call.parent_sid, call.child_sid}
        pstn, browser = legs[call.child_sid], legs[call.parent_sid]
        assert pstn.leg is Leg.PSTN
        assert pstn.destination_type.value == call.destination
        assert pstn.status.value == call.outcome
        assert pstn.duration_s == call.duration_s
        assert pstn.ended
        assert browser.leg is Leg.BROWSER
        assert browser.status is CallStatus.COMPLETED
        assert browser.duration_s == call.parent_duration_s
        assert pstn.started_at is not None
        assert pstn.started_at > call.started_at
