"""Twilio's webhook forms → CallEvent, with every rejection a BadCallbackError."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext, CallEvent, CallStatus, EventKind, decode_event
from services.devtools.twilio_player import new_sid, status_callback_form, voice_request_form
from services.gateway.domain.callbacks import (
    MAX_COUNTER,
    BadCallbackError,
    call_event,
    context_from,
    status_event,
)
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID

RECEIVED_AT = datetime(2024, 5, 1, 9, 30, 15, 123000, tzinfo=UTC)
QUERY = {"app_id": "12", "record_id": "345", "identity": "u_123"}
LINE_ID = "U4af4980629abcdef0123456789abcdef"


def _form(**overrides: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "call_sid": new_sid(),
        "status": "completed",
        "sequence": 3,
        "from_": CALLER_ID,
        "to": "+819012345678",
        "direction": "outbound-dial",
        "parent_call_sid": new_sid(),
        "duration_s": 61,
    }
    values.update(overrides)
    return status_callback_form(**values)


def _reject(form: dict[str, str], query: dict[str, str] | None = None) -> str:
    with pytest.raises(BadCallbackError) as caught:
        status_event(form, query or {}, RECEIVED_AT)
    return str(caught.value)


# --- status_event: happy paths --------------------------------------------------------------


def test_status_event_carries_every_field() -> None:
    parent, child = new_sid(), new_sid()
    form = _form(call_sid=child, parent_call_sid=parent)
    event = status_event(form, QUERY, RECEIVED_AT)
    assert event.kind is EventKind.STATUS
    assert event.received_at == RECEIVED_AT
    assert event.call_sid == child
    assert event.parent_call_sid == parent
    assert event.status is CallStatus.COMPLETED
    assert event.sequence == 3
    assert event.direction == "outbound-dial"
    assert event.from_ == CALLER_ID
    assert event.to == "+819012345678"
    assert event.duration_s == 61
    assert event.context == CallContext(app_id="12", record_id="345", identity="u_123")
    assert event.params == form
    assert event.key() == parent.encode()
    # And it survives the wire.
    assert decode_event(event.encode()) == event


def test_params_are_a_copy_of_the_form() -> None:
    form = _form()
    event = status_event(form, {}, RECEIVED_AT)
    form["CallStatus"] = "failed"
    assert event.params["CallStatus"] == "completed"


def test_browser_leg_without_parent_is_its_own_root() -> None:
    sid = new_sid()
    form = _form(
        call_sid=sid,
        parent_call_sid=None,
        from_="client:u_123",
        to="",
        direction="inbound",
        status="ringing",
        duration_s=None,
        sequence=None,
    )
    event = status_event(form, {}, RECEIVED_AT)
    assert event.parent_call_sid is None
    assert event.key() == sid.encode()
    assert event.sequence is None
    assert event.duration_s is None


@pytest.mark.parametrize("status", list(CallStatus))
def test_every_twilio_status_is_accepted(status: CallStatus) -> None:
    assert status_event(_form(status=status.value), {}, RECEIVED_AT).status is status


def test_identity_falls_back_to_the_client_caller() -> None:
    form = _form(from_="client:xyz", parent_call_sid=None)
    event = status_event(form, {"app_id": "12"}, RECEIVED_AT)
    assert event.context == CallContext(app_id="12", identity="xyz")


def test_query_identity_wins_over_the_caller() -> None:
    form = _form(from_="client:xyz")
    assert status_event(form, QUERY, RECEIVED_AT).context.identity == "u_123"


@pytest.mark.parametrize("caller", ["client:", "client:bad name", "client:名前", "+815012345678"])
def test_unusable_client_caller_gives_no_identity(caller: str) -> None:
    event = status_event(_form(from_=caller), {}, RECEIVED_AT)
    assert event.context.identity is None


def test_empty_query_values_mean_absent() -> None:
    query = {"app_id": "", "record_id": "", "identity": "", "line_user_id": ""}
    assert status_event(_form(), query, RECEIVED_AT).context == CallContext()


def test_line_user_id_from_the_query() -> None:
    query = {"line_user_id": LINE_ID}
    context = status_event(_form(), query, RECEIVED_AT).context
    assert context.line_user_id == LINE_ID


@pytest.mark.parametrize(
    "value",
    ["U4af4980629", "U 1", "U\x00", "Uあ", "U" * 129, LINE_ID.upper(), f"{LINE_ID}0"],
)
def test_a_line_user_id_that_is_not_one_is_absent_not_refused(value: str) -> None:
    context = status_event(_form(), {"line_user_id": value}, RECEIVED_AT).context
    assert context.line_user_id is None


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_direction_from_the_query(direction: str) -> None:
    context = status_event(_form(), {"direction": direction}, RECEIVED_AT).context
    assert context.direction == direction
    assert status_event(_form(), {}, RECEIVED_AT).context.direction is None


def test_the_browser_rung_by_an_inbound_call_is_its_identity() -> None:
    """The client leg of an inbound call: From is the customer, To the browser rung; the one
    whose leg is answered is who answered."""
    form = _form(from_="+819012345678", to="client:kintone_5", status="in-progress")
    query = {"direction": "inbound", "line_user_id": LINE_ID}
    context = status_event(form, query, RECEIVED_AT).context
    assert context == CallContext(identity="kintone_5", line_user_id=LINE_ID, direction="inbound")


@pytest.mark.parametrize("callee", ["+81312345678", "client:bad name", "client:", "sip:a@b"])
def test_an_inbound_leg_to_no_browser_has_no_identity(callee: str) -> None:
    form = _form(from_="sip:line@example.com", to=callee)
    assert status_event(form, {"direction": "inbound"}, RECEIVED_AT).context.identity is None


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("007", 7), (str(MAX_COUNTER), MAX_COUNTER)])
def test_counter_bounds(raw: str, value: int) -> None:
    form = _form()
    form["SequenceNumber"] = raw
    form["CallDuration"] = raw
    event = status_event(form, {}, RECEIVED_AT)
    assert event.sequence == value
    assert event.duration_s == value


def test_empty_counters_mean_absent() -> None:
    form = _form()
    form["SequenceNumber"] = ""
    form["CallDuration"] = ""
    event = status_event(form, {}, RECEIVED_AT)
    assert event.sequence is None
    assert event.duration_s is None


# --- status_event: rejections ---------------------------------------------------------------


def test_missing_call_sid() -> None:
    form = _form()
    del form["CallSid"]
    assert _reject(form) == "missing CallSid"
    form["CallSid"] = ""
    assert _reject(form) == "missing CallSid"


@pytest.mark.parametrize(
    "sid",
    [
        "CA",
        "ca0123",
        "XX0123",
        "CA-0123",
        "CA 0123",
        "CA0123\n",
        "CA" + "a" * 63,
        "CAａｂｃ",
        "0123",
    ],
)
def test_malformed_call_sid(sid: str) -> None:
    assert _reject(_form(call_sid=sid)) == "malformed CallSid"


@pytest.mark.parametrize("sid", ["CA" + "a" * 62, "CAx", new_sid()])
def test_well_formed_call_sid(sid: str) -> None:
    assert status_event(_form(call_sid=sid), {}, RECEIVED_AT).call_sid == sid


@pytest.mark.parametrize("sid", ["PA123", "CA-1", "CA"])
def test_malformed_parent_call_sid(sid: str) -> None:
    assert _reject(_form(parent_call_sid=sid)) == "malformed ParentCallSid"


@pytest.mark.parametrize("status", ["answered", "COMPLETED", "in_progress", "", " completed"])
def test_unknown_call_status(status: str) -> None:
    assert _reject(_form(status=status)) == "missing or unknown CallStatus"


def test_missing_call_status() -> None:
    form = _form()
    del form["CallStatus"]
    assert _reject(form) == "missing or unknown CallStatus"


@pytest.mark.parametrize("name", ["SequenceNumber", "CallDuration"])
@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-1",
        "+1",
        "1.5",
        "1e3",
        " 1",
        "1 ",
        "0x10",
        "１２",  # fullwidth digits: str.isdigit() says yes, Twilio never sends them
        "١٢",  # Arabic-Indic digits
        "²",
        str(MAX_COUNTER + 1),
        "9" * 30,
        "9" * 5000,  # beyond Python's int() digit limit: must still be a 400, not a 500
    ],
)
def test_malformed_counter(name: str, value: str) -> None:
    form = _form()
    form[name] = value
    assert _reject(form) == f"malformed {name}"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"app_id": "12a"}, "malformed app_id"),
        ({"app_id": "-12"}, "malformed app_id"),
        ({"app_id": "１２"}, "malformed app_id"),
        ({"app_id": "1" * 21}, "malformed app_id"),
        ({"record_id": "345 "}, "malformed record_id"),
        ({"record_id": "3;DROP"}, "malformed record_id"),
        ({"identity": "u 123"}, "malformed identity"),
        ({"identity": "ユーザー"}, "malformed identity"),
        ({"identity": "a" * 122}, "malformed identity"),
        ({"identity": "u-123"}, "malformed identity"),
        ({"direction": "sideways"}, "malformed direction"),
        ({"direction": "Inbound"}, "malformed direction"),
        ({"direction": "outbound-dial"}, "malformed direction"),
    ],
)
def test_malformed_context(query: dict[str, str], reason: str) -> None:
    assert _reject(_form(), query) == reason


def test_bad_callback_error_is_a_value_error() -> None:
    assert issubclass(BadCallbackError, ValueError)


# --- context_from with the browser's parameter names ----------------------------------------


BROWSER_NAMES = {"app_id": "AppId", "record_id": "RecordId"}


def test_browser_custom_parameters() -> None:
    form = voice_request_form(
        account_sid=ACCOUNT_SID,
        call_sid=new_sid(),
        identity="u_123",
        to="09012345678",
        app_sid=APP_SID,
        AppId="12",
        RecordId="345",
    )
    context = context_from(form, caller=form["From"], names=BROWSER_NAMES)
    assert context == CallContext(app_id="12", record_id="345", identity="u_123")


def test_a_browser_cannot_set_the_direction_or_a_line_user() -> None:
    fields = {"AppId": "12", "direction": "nonsense", "line_user_id": LINE_ID}
    context = context_from(fields, caller="client:u_1", names=BROWSER_NAMES, ours=False)
    assert context == CallContext(app_id="12", identity="u_1")


def test_browser_parameter_errors_use_the_browser_names() -> None:
    with pytest.raises(BadCallbackError, match=r"^malformed AppId$"):
        context_from({"AppId": "x"}, names=BROWSER_NAMES)
    with pytest.raises(BadCallbackError, match=r"^malformed RecordId$"):
        context_from({"RecordId": "x"}, names=BROWSER_NAMES)


def test_a_browser_calling_out_is_not_taken_from_the_callee() -> None:
    assert context_from({}, caller="+819012345678", callee="client:u_1").identity is None


# --- call_event (dial / sip-inbound) --------------------------------------------------------


def test_dial_event_from_a_voice_request() -> None:
    sid = new_sid()
    form = voice_request_form(
        account_sid=ACCOUNT_SID,
        call_sid=sid,
        identity="u_123",
        to="09012345678",
        app_sid=APP_SID,
        AppId="12",
        RecordId="345",
    )
    context = CallContext(app_id="12", record_id="345", identity="u_123")
    event = call_event(EventKind.DIAL, form, context, RECEIVED_AT, to="+819012345678")
    assert event.kind is EventKind.DIAL
    assert event.call_sid == sid
    assert event.parent_call_sid is None
    assert event.status is CallStatus.RINGING
    assert event.direction == "inbound"
    assert event.from_ == "client:u_123"
    assert event.to == "+819012345678"
    assert event.sequence is None
    assert event.duration_s is None
    assert event.context == context
    assert event.params == form
    assert event.key() == sid.encode()


def test_call_event_defaults() -> None:
    form = {"CallSid": "CA1", "To": "sip:line@example.sip.twilio.com"}
    event = call_event(EventKind.SIP_INBOUND, form, CallContext(), RECEIVED_AT)
    assert event.status is CallStatus.RINGING  # no CallStatus posted
    assert event.to == "sip:line@example.sip.twilio.com"


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({}, "missing CallSid"),
        ({"CallSid": "nope"}, "malformed CallSid"),
        ({"CallSid": "CA1", "ParentCallSid": "nope"}, "malformed ParentCallSid"),
        ({"CallSid": "CA1", "CallStatus": "answered"}, "missing or unknown CallStatus"),
    ],
)
def test_call_event_rejections(form: dict[str, str], reason: str) -> None:
    with pytest.raises(BadCallbackError, match=f"^{reason}$"):
        call_event(EventKind.DIAL, form, CallContext(), RECEIVED_AT)


# --- never anything else --------------------------------------------------------------------

_NAMES = [
    "CallSid",
    "ParentCallSid",
    "CallStatus",
    "SequenceNumber",
    "CallDuration",
    "From",
    "To",
    "Direction",
]
_values = (
    st.text(max_size=20)
    | st.sampled_from(
        ["CA1", new_sid(), "completed", "ringing", "client:u_1", "０", "12", "inbound", LINE_ID]
    )
    | st.integers(min_value=-5, max_value=2 * MAX_COUNTER).map(str)
)
_forms = st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=10), _values, max_size=10)
_queries = st.dictionaries(
    st.sampled_from(["app_id", "record_id", "identity", "line_user_id", "direction"])
    | st.text(max_size=8),
    _values,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(_forms, _queries)
def test_arbitrary_forms_give_an_event_or_bad_callback_error(
    form: dict[str, str], query: dict[str, str]
) -> None:
    result: CallEvent | BadCallbackError
    try:
        result = status_event(form, query, RECEIVED_AT)
    except BadCallbackError as exc:
        result = exc
    if isinstance(result, BadCallbackError):
        assert str(result), "the reason is the 400 answer: it must not be empty"
        return
    event = result
    assert isinstance(event, CallEvent)
    assert event.call_sid == form["CallSid"]
    assert event.params == form
    assert decode_event(event.encode()) == event


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=10), _queries)
def test_arbitrary_text_forms_give_an_event_or_bad_callback_error(
    form: dict[str, str], query: dict[str, str]
) -> None:
    try:
        event = status_event(form, query, RECEIVED_AT)
    except BadCallbackError:
        return
    assert isinstance(event, CallEvent)
