"""The event on the wire (CONTRACT.md section 3): encoding, the Kafka key, strict decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import (
    LEG_STATUS_KINDS,
    SCHEMA,
    CallContext,
    CallEvent,
    CallStatus,
    EventDecodeError,
    EventKind,
    decode_event,
    format_rfc3339,
)
from services.devtools.twilio_player import new_sid

RECEIVED_AT = datetime(2024, 5, 1, 9, 30, 15, 123000, tzinfo=UTC)


def _event(**overrides: Any) -> CallEvent:
    values: dict[str, Any] = {
        "kind": EventKind.STATUS,
        "received_at": RECEIVED_AT,
        "call_sid": new_sid(),
        "status": CallStatus.COMPLETED,
        "parent_call_sid": None,
        "sequence": 3,
        "direction": "outbound-dial",
        "from_": "+815012345678",
        "to": "+819012345678",
        "duration_s": 61,
        "context": CallContext(app_id="12", record_id="345", identity="u_123"),
        "params": {"CallStatus": "completed"},
    }
    values.update(overrides)
    return CallEvent(**values)


def _doc(**overrides: Any) -> dict[str, Any]:
    doc = _event().to_dict()
    doc.update(overrides)
    return doc


def _raw(doc: Any) -> bytes:
    return orjson.dumps(doc)


# --- encoding -------------------------------------------------------------------------------


def test_encode_matches_the_contract_shape() -> None:
    parent, child = new_sid(), new_sid()
    event = _event(call_sid=child, parent_call_sid=parent)
    doc = orjson.loads(event.encode())
    assert doc == {
        "schema": "calltrail.call-event/1",
        "kind": "status",
        "received_at": "2024-05-01T09:30:15.123Z",
        "call_sid": child,
        "parent_call_sid": parent,
        "status": "completed",
        "sequence": 3,
        "direction": "outbound-dial",
        "from": "+815012345678",
        "to": "+819012345678",
        "duration_s": 61,
        "context": {
            "app_id": "12",
            "record_id": "345",
            "identity": "u_123",
            "line_user_id": None,
            "direction": None,
        },
        "params": {"CallStatus": "completed"},
    }


@pytest.mark.parametrize("direction", ["inbound", "outbound", None])
def test_context_direction_round_trips(direction: str | None) -> None:
    event = _event(kind=EventKind.INBOUND, context=CallContext(direction=direction))
    decoded = decode_event(event.encode())
    assert decoded.kind is EventKind.INBOUND
    assert decoded.context.direction == direction


@pytest.mark.parametrize("bad", ["in", "INBOUND", "", 1, True, ["inbound"]])
def test_context_direction_is_inbound_outbound_or_null(bad: object) -> None:
    doc = _event().to_dict()
    doc["context"]["direction"] = bad
    with pytest.raises(EventDecodeError, match="direction"):
        decode_event(orjson.dumps(doc))


def test_old_events_without_a_context_direction_still_decode() -> None:
    doc = _event().to_dict()
    del doc["context"]["direction"]
    assert decode_event(orjson.dumps(doc)).context.direction is None


def test_encode_is_utf8_json_with_unicode_kept() -> None:
    event = _event(params={"SipHeader_X-Name": "山田太郎 📞"})
    raw = event.encode()
    assert "山田太郎 📞".encode() in raw
    assert decode_event(raw).params == {"SipHeader_X-Name": "山田太郎 📞"}


def test_received_at_is_utc_with_milliseconds() -> None:
    tokyo = timezone(timedelta(hours=9))
    moment = datetime(2024, 5, 1, 18, 30, 15, 123456, tzinfo=tokyo)
    assert format_rfc3339(moment) == "2024-05-01T09:30:15.123Z"


@settings(max_examples=500)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=9)), timezone(-timedelta(hours=12))]
        ),
    )
)
def test_received_at_format_is_isoformat_in_utc_to_the_millisecond(moment: datetime) -> None:
    # Around 1970 and 2106, where the second comes from isoformat instead, included.
    expected = moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    assert format_rfc3339(moment) == expected


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2106, 2, 7, 6, 28, 15, 999999, tzinfo=UTC),  # 2**32 s - 1 us
        datetime(2106, 2, 7, 6, 28, 16, tzinfo=UTC),  # 2**32 s
    ],
)
def test_received_at_format_at_the_edges_of_a_second(moment: datetime) -> None:
    expected = moment.isoformat(timespec="milliseconds")[:-6] + "Z"
    assert format_rfc3339(moment) == expected


def test_naive_timestamp_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_rfc3339(datetime(2024, 5, 1, 9, 30))


# --- the Kafka key --------------------------------------------------------------------------


def test_key_of_a_root_leg_is_its_own_call_sid() -> None:
    event = _event(parent_call_sid=None)
    assert event.root_call_sid == event.call_sid
    assert event.key() == event.call_sid.encode()


def test_key_of_a_child_leg_is_the_parent_call_sid() -> None:
    parent = new_sid()
    event = _event(parent_call_sid=parent)
    assert event.root_call_sid == parent
    assert event.key() == parent.encode()


def test_both_legs_of_one_call_share_a_key() -> None:
    parent = new_sid()
    browser = _event(call_sid=parent)
    pstn = _event(call_sid=new_sid(), parent_call_sid=parent)
    assert browser.key() == pstn.key()


# --- round trip -----------------------------------------------------------------------------

_optional_text = st.none() | st.text(max_size=40)
_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # hypothesis bounds are naive
    max_value=datetime(2100, 1, 1),
    timezones=_offsets,
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
_counters = st.none() | st.integers(min_value=-(2**53), max_value=2**53)
_contexts = st.builds(
    CallContext,
    app_id=_optional_text,
    record_id=_optional_text,
    identity=_optional_text,
    line_user_id=_optional_text,
    direction=st.sampled_from([None, "inbound", "outbound"]),
)
_event_fields: dict[str, st.SearchStrategy[Any]] = {
    "received_at": _moments,
    "call_sid": st.text(min_size=1, max_size=64),
    "parent_call_sid": st.none() | st.text(min_size=1, max_size=64),
    "sequence": _counters,
    "direction": _optional_text,
    "from_": _optional_text,
    "to": _optional_text,
    "duration_s": _counters,
    "context": _contexts,
    "params": st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=12),
}
_STATUSLESS_KINDS = sorted(set(EventKind) - LEG_STATUS_KINDS)
# A leg's kinds carry a status; a recording or a transcript none (CONTRACT.md section 11).
_events = st.builds(
    CallEvent,
    kind=st.sampled_from(sorted(LEG_STATUS_KINDS)),
    status=st.sampled_from(CallStatus),
    **_event_fields,
) | st.builds(CallEvent, kind=st.sampled_from(_STATUSLESS_KINDS), status=st.none(), **_event_fields)


@settings(max_examples=200, deadline=None)
@given(_events)
def test_encode_decode_round_trip(event: CallEvent) -> None:
    decoded = decode_event(event.encode())
    assert decoded == event
    assert decoded.received_at.utcoffset() == timedelta(0)
    assert decoded.key() == event.key()
    assert decoded.encode() == event.encode()


@pytest.mark.parametrize("kind", sorted(LEG_STATUS_KINDS))
@pytest.mark.parametrize("status", list(CallStatus))
def test_every_kind_and_status_round_trips(kind: EventKind, status: CallStatus) -> None:
    event = _event(kind=kind, status=status)
    assert decode_event(event.encode()) == event


# --- recordings and transcripts (CONTRACT.md section 11) ------------------------------------


def test_the_new_kinds_are_on_the_wire_as_the_contract_names_them() -> None:
    assert EventKind.RECORDING.value == "recording"
    assert EventKind.TRANSCRIPT.value == "transcript"
    assert set(EventKind) - LEG_STATUS_KINDS == {EventKind.RECORDING, EventKind.TRANSCRIPT}


def test_a_recording_round_trips_with_a_null_status() -> None:
    root = new_sid()
    event = _event(
        kind=EventKind.RECORDING,
        call_sid=root,
        status=None,
        sequence=None,
        direction=None,
        from_=None,
        to=None,
        duration_s=61,
        context=CallContext(app_id="12", record_id="345", identity="u_123", direction="outbound"),
        params={
            "CallSid": root,
            "RecordingSid": "RE" + "0" * 32,
            "RecordingStatus": "completed",
            "RecordingDuration": "61",
            "RecordingChannels": "2",
            "RecordingSource": "DialVerb",
            "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        },
    )
    doc = orjson.loads(event.encode())
    assert doc["kind"] == "recording"
    assert doc["status"] is None
    assert doc["duration_s"] == 61
    assert decode_event(event.encode()) == event
    assert event.key() == root.encode()


def test_a_transcript_round_trips_with_its_sequence_id_and_japanese_text() -> None:
    data = orjson.dumps({"transcript": "お世話になっております", "confidence": 0.93}).decode()
    event = _event(
        kind=EventKind.TRANSCRIPT,
        status=None,
        sequence=7,
        duration_s=None,
        params={
            "TranscriptionEvent": "transcription-content",
            "SequenceId": "7",
            "Track": "inbound_track",
            "TranscriptionData": data,
        },
    )
    decoded = decode_event(event.encode())
    assert decoded == event
    assert decoded.status is None
    assert decoded.sequence == 7
    assert (
        orjson.loads(decoded.params["TranscriptionData"])["transcript"] == "お世話になっております"
    )


@pytest.mark.parametrize("kind", ["recording", "transcript"])
@pytest.mark.parametrize("status", ["completed", "in-progress", "absent", "", 0, False, {}])
def test_the_new_kinds_refuse_any_status(kind: str, status: object) -> None:
    with pytest.raises(EventDecodeError, match=f"status must be null for kind '{kind}'"):
        decode_event(_raw(_doc(kind=kind, status=status)))


@pytest.mark.parametrize("kind", ["recording", "transcript"])
def test_the_new_kinds_still_need_the_status_field(kind: str) -> None:
    doc = _doc(kind=kind, status=None)
    del doc["status"]
    with pytest.raises(EventDecodeError, match="missing field 'status'"):
        decode_event(_raw(doc))


@pytest.mark.parametrize("kind", sorted(LEG_STATUS_KINDS))
def test_a_legs_kinds_refuse_a_null_status(kind: EventKind) -> None:
    with pytest.raises(EventDecodeError, match="not a valid CallStatus"):
        decode_event(_raw(_doc(kind=kind.value, status=None)))


def test_optional_fields_may_be_absent() -> None:
    doc = {
        "schema": SCHEMA,
        "kind": "dial",
        "received_at": "2024-05-01T09:30:15.123Z",
        "call_sid": "CA123",
        "status": "ringing",
    }
    event = decode_event(_raw(doc))
    assert event.call_sid == "CA123"
    assert event.parent_call_sid is None
    assert event.sequence is None
    assert event.duration_s is None
    assert event.context == CallContext()
    assert event.params == {}


def test_offset_timestamps_are_accepted() -> None:
    event = decode_event(_raw(_doc(received_at="2024-05-01T18:30:15.123+09:00")))
    assert event.received_at == RECEIVED_AT


# --- strict decoding: each reason -----------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe", b"{'a': 1}", b"[1,]"])
def test_not_json(raw: bytes) -> None:
    with pytest.raises(EventDecodeError, match="not JSON"):
        decode_event(raw)


@pytest.mark.parametrize("raw", [b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true"])
def test_not_an_object(raw: bytes) -> None:
    with pytest.raises(EventDecodeError, match="not a JSON object"):
        decode_event(raw)


@pytest.mark.parametrize(
    "schema",
    ["calltrail.call-event/2", "calltrail.call-event/0", "", None, 1, "CALLTRAIL.CALL-EVENT/1"],
)
def test_wrong_schema_version(schema: Any) -> None:
    with pytest.raises(EventDecodeError, match="unknown schema") as caught:
        decode_event(_raw(_doc(schema=schema)))
    assert SCHEMA in str(caught.value)


def test_missing_schema() -> None:
    doc = _doc()
    del doc["schema"]
    with pytest.raises(EventDecodeError, match="unknown schema None"):
        decode_event(_raw(doc))


@pytest.mark.parametrize("name", ["kind", "status", "call_sid", "received_at"])
def test_missing_required_field(name: str) -> None:
    doc = _doc()
    del doc[name]
    with pytest.raises(EventDecodeError, match=f"missing field '{name}'"):
        decode_event(_raw(doc))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kind": "hangup"}, "invalid value"),
        ({"kind": 1}, "invalid value"),
        ({"kind": ["status"]}, "invalid value"),
        ({"status": "answered"}, "invalid value"),
        ({"status": "COMPLETED"}, "invalid value"),
        ({"status": None}, "invalid value"),
        ({"call_sid": ""}, "call_sid must be a non-empty string"),
        ({"call_sid": 123}, "call_sid must be a non-empty string"),
        ({"call_sid": None}, "call_sid must be a non-empty string"),
        ({"received_at": 1714555815}, "received_at must be a non-empty string"),
        ({"received_at": "yesterday"}, "invalid value"),
        ({"received_at": "2024-13-01T00:00:00Z"}, "invalid value"),
        ({"parent_call_sid": 7}, "parent_call_sid must be a string or null"),
        ({"direction": ["inbound"]}, "direction must be a string or null"),
        ({"from": {"n": 1}}, "from must be a string or null"),
        ({"to": 819012345678}, "to must be a string or null"),
        ({"sequence": "3"}, "sequence must be an integer or null"),
        ({"sequence": 3.0}, "sequence must be an integer or null"),
        ({"sequence": True}, "sequence must be an integer or null"),
        ({"duration_s": False}, "duration_s must be an integer or null"),
        ({"duration_s": 61.5}, "duration_s must be an integer or null"),
        ({"duration_s": "61"}, "duration_s must be an integer or null"),
        ({"context": "12/345"}, "context is not an object"),
        ({"context": ["12"]}, "context is not an object"),
        ({"context": {"app_id": 12}}, "app_id must be a string or null"),
        ({"context": {"identity": True}}, "identity must be a string or null"),
        ({"context": {"line_user_id": ["U1"]}}, "line_user_id must be a string or null"),
        ({"params": ["a", "b"]}, "params is not an object of strings"),
        ({"params": "a=b"}, "params is not an object of strings"),
        ({"params": {"a": 1}}, "params is not an object of strings"),
        ({"params": {"a": None}}, "params is not an object of strings"),
        ({"params": {"a": {"b": "c"}}}, "params is not an object of strings"),
    ],
)
def test_wrong_types_are_refused_with_a_reason(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(_raw(_doc(**overrides)))


@pytest.mark.parametrize("field_name", ["context", "params"])
@pytest.mark.parametrize("value", [False, 0, "", []])
def test_falsy_values_of_the_wrong_type_are_refused_not_defaulted(
    field_name: str, value: Any
) -> None:
    with pytest.raises(EventDecodeError, match=f"{field_name} is not an object"):
        decode_event(_raw(_doc(**{field_name: value})))


@pytest.mark.parametrize("field_name", ["context", "params"])
def test_null_context_and_params_mean_empty(field_name: str) -> None:
    event = decode_event(_raw(_doc(**{field_name: None})))
    assert getattr(event, field_name) == ({} if field_name == "params" else CallContext())


@pytest.mark.parametrize(
    "stamp", ["2024-05-01T09:30:15", "2024-05-01T09:30:15.123", "2024-05-01 09:30:15", "2024-05-01"]
)
def test_naive_timestamps_are_refused(stamp: str) -> None:
    with pytest.raises(EventDecodeError, match="received_at has no time zone"):
        decode_event(_raw(_doc(received_at=stamp)))


def test_error_is_a_value_error_for_generic_handlers() -> None:
    assert issubclass(EventDecodeError, ValueError)


# --- never anything else --------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20)
_json = st.recursive(
    _json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(raw: bytes) -> None:
    result: CallEvent | EventDecodeError
    try:
        result = decode_event(raw)
    except EventDecodeError as exc:
        result = exc
    if isinstance(result, EventDecodeError):
        assert str(result), "the reason goes to the DLQ: it must not be empty"
    else:
        assert isinstance(result, CallEvent)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_event_decode_error(raw: bytes) -> None:
    _outcome(raw)


_field_values = {
    "schema": st.just(SCHEMA) | _json,
    "kind": st.sampled_from([k.value for k in EventKind]) | _json,
    "status": st.sampled_from([s.value for s in CallStatus]) | _json,
    "call_sid": st.just("CA1") | _json,
    "received_at": st.sampled_from(["2024-05-01T09:30:15Z", "2024-05-01T09:30:15"])
    | st.text(max_size=30)
    | _json,
    "parent_call_sid": _json,
    "sequence": _json,
    "duration_s": _json,
    "direction": _json,
    "from": _json,
    "to": _json,
    "context": _json
    | st.fixed_dictionaries(
        {},
        optional={n: _json for n in ("app_id", "record_id", "identity", "line_user_id")},
    ),
    "params": _json,
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=_field_values))
def test_near_miss_documents_decode_or_raise_event_decode_error(doc: dict[str, Any]) -> None:
    _outcome(_raw(doc))
