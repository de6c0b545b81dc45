"""TwiML answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext
from services.common.numbers import PhoneNumber, parse_number
from services.gateway.domain.twiml import (
    AFTER_DIAL_PATH,
    MISSED_DIAL_STATUSES,
    NOTHING_RECORDED,
    RECORDING_CALLBACK_EVENTS,
    RECORDING_CALLBACK_PATH,
    RECORDING_NOTICE_JA,
    REFUSAL_JA,
    STATUS_CALLBACK_EVENTS,
    STATUS_CALLBACK_PATH,
    TRANSCRIPTION_CALLBACK_PATH,
    UNAVAILABLE_JA,
    VOICEMAIL_DONE_PATH,
    VOICEMAIL_GREETING_JA,
    VOICEMAIL_THANKS_JA,
    AfterDial,
    Callbacks,
    Conversation,
    DialOutcome,
    InboundCall,
    InboundKind,
    OutboundDial,
    VoicemailAnswer,
    after_dial_twiml,
    after_dial_url,
    caller_gone,
    caller_number,
    forward_target,
    hangup_twiml,
    is_missed,
    line_call,
    nobody_answered_twiml,
    notice_twiml,
    notice_url,
    number_call,
    refusal_twiml,
    ring_group_twiml,
    status_callback_url,
    voicemail_done_twiml,
    voicemail_recording_url,
)
from tests.factories import CALLER_ID, PUBLIC_BASE_URL

CONTEXT = CallContext(app_id="12", record_id="345", identity="u_123")
CALLBACK = f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?app_id=12&record_id=345&identity=u_123"


def _dial(
    number: PhoneNumber,
    caller_id: str,
    callbacks: Callbacks,
    conversation: Conversation = NOTHING_RECORDED,
    notice_url: str = "",
) -> str:
    return OutboundDial.prepare(conversation, notice_url).twiml(number, caller_id, callbacks)


def _parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    return root


# --- status_callback_url --------------------------------------------------------------------


_context_value = (
    st.none() | st.text(max_size=12) | st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
)


@settings(max_examples=300, deadline=None)
@given(st.tuples(*[_context_value] * 5))
def test_status_callback_url_query_is_urlencode_s(values: tuple[str | None, ...]) -> None:
    """Unquoted when every field is safe, quoted otherwise: always what urlencode gives."""
    context = CallContext(*values)
    expected = urlencode([(k, v) for k, v in context.to_dict().items() if v is not None])
    url = status_callback_url(PUBLIC_BASE_URL, context)
    assert url == f"{PUBLIC_BASE_URL}/twilio/status" + (f"?{expected}" if expected else "")


def test_callback_url_carries_the_context() -> None:
    url = status_callback_url(PUBLIC_BASE_URL, CONTEXT)
    assert url == CALLBACK
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_BASE_URL
    assert parts.path == STATUS_CALLBACK_PATH
    assert parse_qs(parts.query) == {"app_id": ["12"], "record_id": ["345"], "identity": ["u_123"]}
    assert parts.fragment == ""


def test_callback_url_with_overrides_fragment() -> None:
    url = status_callback_url(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    assert url == f"{CALLBACK}#rc=3&rp=all"
    assert urlsplit(url).fragment == "rc=3&rp=all"


def test_callback_url_without_context() -> None:
    assert status_callback_url(PUBLIC_BASE_URL, CallContext()) == (
        f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}"
    )
    assert status_callback_url(PUBLIC_BASE_URL, CallContext(), "rc=3") == (
        f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}#rc=3"
    )


def test_callback_url_quotes_what_it_carries() -> None:
    url = status_callback_url(PUBLIC_BASE_URL, CallContext(line_user_id="U1+2/3&x=#"))
    assert parse_qs(urlsplit(url).query) == {"line_user_id": ["U1+2/3&x=#"]}
    assert "U1%2B2%2F3%26x%3D%23" in url


# --- dial_number_twiml ----------------------------------------------------------------------


def test__dial() -> None:
    callbacks = Callbacks.of(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    callback = callbacks.status
    twiml = _dial(parse_number("090-1234-5678"), CALLER_ID, callbacks)
    root = _parse(twiml)
    [dial] = list(root)
    assert dial.tag == "Dial"
    assert dial.attrib == {"callerId": CALLER_ID, "answerOnBridge": "true"}
    [number] = list(dial)
    assert number.tag == "Number"
    assert number.text == "+819012345678"
    assert number.attrib["statusCallback"] == callback
    assert number.attrib["statusCallbackEvent"] == "initiated ringing answered completed"
    assert number.attrib["statusCallbackEvent"] == STATUS_CALLBACK_EVENTS
    assert number.attrib["statusCallbackMethod"] == "POST"
    assert "url" not in number.attrib  # no notice: nothing is recorded
    assert root.find("Say") is None
    assert root.find("Hangup") is None
    assert root.find("Start") is None


def test_dial_number_twiml_escapes_the_callback_query() -> None:
    callbacks = Callbacks(CALLBACK, "r", "t")
    twiml = _dial(parse_number("09012345678"), CALLER_ID, callbacks)
    assert "&amp;record_id=345" in twiml
    number = _parse(twiml).find("Dial/Number")
    assert number is not None
    assert number.attrib["statusCallback"] == CALLBACK


# --- refusals -------------------------------------------------------------------------------


def test_refusal_twiml_speaks_japanese_and_hangs_up() -> None:
    root = _parse(refusal_twiml())
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None
    assert say.attrib == {"language": "ja-JP"}
    assert say.text == REFUSAL_JA
    assert root.find("Dial") is None
    assert root.find(".//Number") is None


def test_refusal_twiml_with_a_message() -> None:
    say = _parse(refusal_twiml("お待ちください")).find("Say")
    assert say is not None
    assert say.text == "お待ちください"


# --- the ring group (inbound calls) ----------------------------------------------------------

LINE_ID = "U" + "0123456789abcdef" * 2
RING_CALLBACK = f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?direction=inbound"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("+819012345678", "+819012345678"),
        ("09012345678", "+819012345678"),
        ("+81312345678", "+81312345678"),
        ("anonymous", "anonymous"),
        ("Anonymous", "anonymous"),
        ("+266696687", "anonymous"),  # Twilio's ANONYMOUS
        ("+86282452253", "anonymous"),  # UNAVAILABLE
        ("+8656696", "anonymous"),  # UNKNOWN
        ("+2562533", "anonymous"),  # BLOCKED
        ("+7378742833", "anonymous"),  # RESTRICTED
        ("sip:someone@line.example.com", "anonymous"),
        ("client:kintone_1", "anonymous"),
        ("", "anonymous"),
        (None, "anonymous"),
        ("+81" + "9" * 40, "anonymous"),
        ('"><Hangup/>', "anonymous"),
    ],
)
def test_the_caller_shown_to_the_browsers(caller: str | None, expected: str) -> None:
    call = number_call(caller)
    assert call == InboundCall(InboundKind.NUMBER, expected)
    assert caller_number(caller) == (None if expected == "anonymous" else expected)


def test_parameters_of_a_number_call_and_a_line_call() -> None:
    assert number_call("+819012345678").parameters() == {
        "caller": "+819012345678",
        "kind": "number",
    }
    assert line_call(LINE_ID).parameters() == {
        "caller": "LINE",
        "kind": "line",
        "line_user_id": LINE_ID,
    }
    assert line_call(None).parameters() == {"caller": "LINE", "kind": "line"}


def test_callback_context_of_the_legs_of_an_inbound_call() -> None:
    assert number_call("+819012345678").callback_context() == CallContext(direction="inbound")
    assert line_call(LINE_ID).callback_context() == CallContext(
        line_user_id=LINE_ID, direction="inbound"
    )
    url = status_callback_url(PUBLIC_BASE_URL, line_call(LINE_ID).callback_context())
    assert parse_qs(urlsplit(url).query) == {"line_user_id": [LINE_ID], "direction": ["inbound"]}


def _ring(call: InboundCall, identities: list[str], fragment: str = "") -> ET.Element:
    return _parse(
        ring_group_twiml(
            call,
            identities=identities,
            timeout_s=20,
            callbacks=Callbacks.of(PUBLIC_BASE_URL, call.callback_context(), fragment),
            action_url=after_dial_url(PUBLIC_BASE_URL, call, fragment=fragment),
        )
    )


def test_the_ring_group_rings_every_browser_with_the_call_s_parameters() -> None:
    root = _ring(line_call(LINE_ID), ["kintone_1", "kintone_22"], "rc=3&rp=all")
    [dial] = list(root)
    assert dial.tag == "Dial"
    assert dial.attrib == {
        "action": f"{PUBLIC_BASE_URL}{AFTER_DIAL_PATH}?kind=line&line_user_id={LINE_ID}"
        "#rc=3&rp=all",
        "method": "POST",
        "timeout": "20",
        "answerOnBridge": "true",
    }
    clients = list(dial)
    assert [c.tag for c in clients] == ["Client", "Client"]
    assert [c.findtext("Identity") for c in clients] == ["kintone_1", "kintone_22"]
    for client in clients:
        assert client.text is None  # the identity is in <Identity>, not the text
        assert client.attrib == {
            "statusCallback": f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}"
            f"?line_user_id={LINE_ID}&direction=inbound#rc=3&rp=all",
            "statusCallbackEvent": STATUS_CALLBACK_EVENTS,
            "statusCallbackMethod": "POST",
        }
        params = {p.get("name"): p.get("value") for p in client.findall("Parameter")}
        assert params == {"caller": "LINE", "kind": "line", "line_user_id": LINE_ID}
    assert root.find("Say") is None


def test_a_number_call_rings_without_a_caller_id_and_without_a_line_id() -> None:
    dial = _ring(number_call("+819012345678"), ["kintone_1"]).find("Dial")
    assert dial is not None
    assert "callerId" not in dial.attrib  # each browser sees the customer's own From
    assert dial.attrib["action"] == f"{PUBLIC_BASE_URL}{AFTER_DIAL_PATH}?kind=number"
    [client] = dial.findall("Client")
    assert client.attrib["statusCallback"] == RING_CALLBACK
    params = {p.get("name"): p.get("value") for p in client.findall("Parameter")}
    assert params == {"caller": "+819012345678", "kind": "number"}


@pytest.mark.parametrize("timeout_s", [5, 20, 600])
def test_the_ring_timeout(timeout_s: int) -> None:
    call = number_call(None)
    twiml = ring_group_twiml(
        call,
        identities=["k"],
        timeout_s=timeout_s,
        callbacks=Callbacks("u", "r", "t"),
        action_url="a",
    )
    dial = _parse(twiml).find("Dial")
    assert dial is not None
    assert dial.get("timeout") == str(timeout_s)


# --- after the ring group ---------------------------------------------------------------------


def _after(
    query: dict[str, str], status: str | None, forward_to: str | None
) -> tuple[DialOutcome, ET.Element]:
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query(query),
        status,
        forward_to=forward_to,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        fragment="rc=3",
    )
    return outcome, _parse(twiml)


@pytest.mark.parametrize("status", ["completed", "answered", None, "", "in-progress", "bogus"])
@pytest.mark.parametrize("forwarded", [False, True])
def test_a_call_a_browser_answered_is_never_forwarded(status: str | None, forwarded: bool) -> None:
    query = {"kind": "number", **({"forwarded": "1"} if forwarded else {})}
    outcome, root = _after(query, status, "+81312345678")
    assert outcome is (DialOutcome.FORWARD_ANSWERED if forwarded else DialOutcome.ANSWERED)
    assert [child.tag for child in root] == ["Hangup"]


@pytest.mark.parametrize("status", sorted(MISSED_DIAL_STATUSES))
def test_a_missed_number_call_goes_to_the_forward_number(status: str) -> None:
    outcome, root = _after({"kind": "number"}, status, "+81312345678")
    assert outcome is DialOutcome.FORWARDED
    [dial] = list(root)
    assert dial.attrib == {
        "callerId": CALLER_ID,
        "answerOnBridge": "true",
        "action": f"{PUBLIC_BASE_URL}{AFTER_DIAL_PATH}?kind=number&forwarded=1#rc=3",
        "method": "POST",
    }
    [number] = list(dial)
    assert number.tag == "Number"
    assert number.text == "+81312345678"
    assert number.attrib["statusCallback"] == f"{RING_CALLBACK}#rc=3"
    assert number.attrib["statusCallbackEvent"] == STATUS_CALLBACK_EVENTS


def test_a_missed_line_call_keeps_its_line_user_on_the_forward_leg() -> None:
    outcome, root = _after({"kind": "line", "line_user_id": LINE_ID}, "no-answer", "+8131")
    assert outcome is DialOutcome.FORWARDED
    number = root.find("Dial/Number")
    assert number is not None
    query = parse_qs(urlsplit(number.attrib["statusCallback"]).query)
    assert query == {"line_user_id": [LINE_ID], "direction": ["inbound"]}
    dial = root.find("Dial")
    assert dial is not None
    action = parse_qs(urlsplit(dial.attrib["action"]).query)
    assert action == {"kind": ["line"], "line_user_id": [LINE_ID], "forwarded": ["1"]}


@pytest.mark.parametrize(
    "query", [{"kind": "number"}, {"kind": "number", "forwarded": "1"}, {"kind": "line"}]
)
def test_a_missed_call_with_nowhere_to_go_hears_the_message(query: dict[str, str]) -> None:
    outcome, root = _after(query, "no-answer", None)
    assert outcome is DialOutcome.UNANSWERED
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.findtext("Say") == UNAVAILABLE_JA
    assert root.find("Say").attrib == {"language": "ja-JP"}  # type: ignore[union-attr]


def test_a_missed_forward_hears_the_message_not_a_second_forward() -> None:
    outcome, root = _after({"kind": "number", "forwarded": "1"}, "busy", "+81312345678")
    assert outcome is DialOutcome.UNANSWERED
    assert root.find("Dial") is None
    assert root.findtext("Say") == UNAVAILABLE_JA


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, AfterDial(InboundCall(InboundKind.NUMBER, "anonymous"), False)),
        ({"kind": "fax", "forwarded": "yes"}, AfterDial(number_call(None), False)),
        ({"kind": "line", "line_user_id": "U1"}, AfterDial(line_call(None), False)),
        ({"kind": "line", "line_user_id": LINE_ID}, AfterDial(line_call(LINE_ID), False)),
        ({"kind": "line", "forwarded": "1"}, AfterDial(line_call(None), True)),
    ],
)
def test_the_after_dial_query_is_read_leniently(query: dict[str, str], expected: AfterDial) -> None:
    assert AfterDial.from_query(query) == expected


@pytest.mark.parametrize(
    ("kind", "inbound", "sip", "expected"),
    [
        (InboundKind.NUMBER, "+8131", "+8132", "+8131"),
        (InboundKind.NUMBER, None, "+8132", None),
        (InboundKind.LINE, "+8131", "+8132", "+8132"),
        (InboundKind.LINE, "+8131", None, "+8131"),
        (InboundKind.LINE, None, None, None),
    ],
)
def test_forward_target(
    kind: InboundKind, inbound: str | None, sip: str | None, expected: str | None
) -> None:
    assert forward_target(kind, inbound_forward_to=inbound, sip_forward_to=sip) == expected


def test_nobody_to_ring_goes_straight_to_the_forward_number_or_the_message() -> None:
    common = {"caller_id": CALLER_ID, "public_base_url": PUBLIC_BASE_URL}
    root = _parse(nobody_answered_twiml(number_call(None), forward_to="+81312345678", **common))
    number = root.find("Dial/Number")
    assert number is not None
    assert number.text == "+81312345678"
    root = _parse(nobody_answered_twiml(line_call(LINE_ID), forward_to=None, **common))
    assert [child.tag for child in root] == ["Say", "Hangup"]


def test_hangup_twiml() -> None:
    assert [child.tag for child in _parse(hangup_twiml())] == ["Hangup"]


def test_is_missed() -> None:
    assert all(is_missed(s) for s in ("no-answer", "busy", "failed", "canceled"))
    assert not any(is_missed(s) for s in ("completed", "answered", None, "NO-ANSWER"))


# --- the prepared template is VoiceResponse's output, exactly ---------------------------------


def _voice_response_start(conversation: Conversation, callback: str) -> Any:
    """twilio-python's own ``<Start><Transcription>`` for the conversation."""
    from twilio.twiml.voice_response import Start

    start = Start()
    optional = {"transcription_engine": conversation.engine, "speech_model": conversation.model}
    start.transcription(
        language_code=conversation.language,
        track="both_tracks",
        partial_results=False,
        status_callback_url=callback,
        **{k: v for k, v in optional.items() if v is not None},
    )
    return start


def _voice_response_dial(
    number: str,
    caller_id: str,
    callbacks: Callbacks,
    conversation: Conversation = NOTHING_RECORDED,
    notice: str = "",
) -> str:
    """How dial_number_twiml built its answer before the template: the reference, with
    twilio-python's own <Start><Transcription> and <Dial record…> attributes."""
    from twilio.twiml.voice_response import Dial, VoiceResponse

    response = VoiceResponse()
    if conversation.transcription:
        response.append(_voice_response_start(conversation, callbacks.transcription))
    record: dict[str, str] = {}
    if conversation.recording:
        record = {
            "record": "record-from-answer-dual",
            "recording_status_callback": callbacks.recording,
            "recording_status_callback_event": "completed absent",
        }
    dial = Dial(caller_id=caller_id, answer_on_bridge=True, **record)
    dial.number(
        number,
        status_callback=callbacks.status,
        status_callback_event=STATUS_CALLBACK_EVENTS,
        status_callback_method="POST",
        **({"url": notice} if conversation.notice_to_say else {}),
    )
    response.append(dial)
    return str(response)


_xml_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("&<>\"'\r\n\t =?#%+;:/{}[]"), st.characters(blacklist_categories=("Cs",))
    ),
    max_size=40,
)
_conversations = st.builds(
    Conversation,
    recording=st.booleans(),
    transcription=st.booleans(),
    language=_xml_text,
    engine=st.none() | _xml_text,
    model=st.none() | _xml_text,
    notice=st.sampled_from(["", RECORDING_NOTICE_JA]) | _xml_text,
)


@settings(max_examples=400, deadline=None)
@given(
    number=_xml_text.filter(bool),
    caller_id=_xml_text,
    callbacks=st.builds(Callbacks, _xml_text, _xml_text, _xml_text),
    conversation=_conversations,
    notice=_xml_text,
)
def test_dial_template_equals_voice_response(
    number: str, caller_id: str, callbacks: Callbacks, conversation: Conversation, notice: str
) -> None:
    phone = PhoneNumber(e164=number, region="JP", line_type=1)
    assert _dial(phone, caller_id, callbacks, conversation, notice) == _voice_response_dial(
        number, caller_id, callbacks, conversation, notice
    )


@pytest.mark.parametrize("to", ["090-1234-5678", "0312345678", "+819012345678", "05012345678"])
@pytest.mark.parametrize(
    "conversation",
    [
        Conversation(),
        Conversation(recording=True),
        Conversation(transcription=True, notice=""),
        Conversation(recording=True, transcription=True, engine="deepgram", model="nova-3"),
    ],
)
def test_dial_template_for_real_numbers_and_callbacks(to: str, conversation: Conversation) -> None:
    number = parse_number(to)
    callbacks = Callbacks.of(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    notice = notice_url(PUBLIC_BASE_URL, "rc=3&rp=all")
    assert _dial(number, CALLER_ID, callbacks, conversation, notice) == _voice_response_dial(
        number.e164, CALLER_ID, callbacks, conversation, notice
    )


_context_value = (
    st.none() | st.text(max_size=20) | st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
)


@settings(max_examples=300, deadline=None)
@given(
    _context_value, _context_value, _context_value, _context_value, st.sampled_from(["", "rc=3"])
)
def test_callback_url_query_is_urlencode_s(
    app_id: str | None,
    record_id: str | None,
    identity: str | None,
    line_user_id: str | None,
    fragment: str,
) -> None:
    context = CallContext(app_id, record_id, identity, line_user_id)
    query = urlencode({k: v for k, v in context.to_dict().items() if v is not None})
    expected = f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}" + (f"?{query}" if query else "")
    expected += f"#{fragment}" if fragment else ""
    assert status_callback_url(PUBLIC_BASE_URL, context, fragment) == expected


# --- the conversation: recording, transcription, the notice (CONTRACT.md section 11) ---------

RECORDED = Conversation(recording=True)
TRANSCRIBED = Conversation(transcription=True)
BOTH = Conversation(recording=True, transcription=True, engine="google", model="telephony")


def test_the_three_callbacks_of_a_dial_carry_the_same_context_and_overrides() -> None:
    callbacks = Callbacks.of(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    query = "?app_id=12&record_id=345&identity=u_123#rc=3&rp=all"
    assert callbacks == Callbacks(
        f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}{query}",
        f"{PUBLIC_BASE_URL}{RECORDING_CALLBACK_PATH}{query}",
        f"{PUBLIC_BASE_URL}{TRANSCRIPTION_CALLBACK_PATH}{query}",
    )
    assert callbacks.status == status_callback_url(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    assert Callbacks.of(PUBLIC_BASE_URL, CallContext()).recording == (
        f"{PUBLIC_BASE_URL}/twilio/recording"
    )


def test_notice_url() -> None:
    assert notice_url(PUBLIC_BASE_URL) == f"{PUBLIC_BASE_URL}/twiml/notice"
    assert notice_url(PUBLIC_BASE_URL, "rc=3") == f"{PUBLIC_BASE_URL}/twiml/notice#rc=3"


@pytest.mark.parametrize(
    ("conversation", "said"),
    [
        (Conversation(), ""),
        (Conversation(notice="録音します"), ""),  # nothing recorded: nothing to tell
        (RECORDED, RECORDING_NOTICE_JA),
        (TRANSCRIBED, RECORDING_NOTICE_JA),
        (Conversation(recording=True, notice=""), ""),
    ],
)
def test_the_notice_is_said_only_when_something_is_recorded(
    conversation: Conversation, said: str
) -> None:
    assert conversation.notice_to_say == said


def test_an_outbound_dial_recorded_transcribed_and_noticed() -> None:
    callbacks = Callbacks.of(PUBLIC_BASE_URL, CONTEXT)
    notice = notice_url(PUBLIC_BASE_URL)
    root = _parse(_dial(parse_number("09012345678"), CALLER_ID, callbacks, BOTH, notice))
    assert [child.tag for child in root] == ["Start", "Dial"]
    [transcription] = list(root.find("Start"))  # type: ignore[arg-type]
    assert transcription.tag == "Transcription"
    assert transcription.attrib == {
        "languageCode": "ja-JP",
        "track": "both_tracks",
        "partialResults": "false",
        "statusCallbackUrl": callbacks.transcription,
        "transcriptionEngine": "google",
        "speechModel": "telephony",
    }
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib == {
        "callerId": CALLER_ID,
        "answerOnBridge": "true",
        "record": "record-from-answer-dual",
        "recordingStatusCallback": callbacks.recording,
        "recordingStatusCallbackEvent": RECORDING_CALLBACK_EVENTS,
    }
    number = dial.find("Number")
    assert number is not None
    assert number.attrib["url"] == f"{PUBLIC_BASE_URL}/twiml/notice"
    assert number.attrib["statusCallback"] == callbacks.status


def test_transcribed_without_engine_or_model_leaves_twilio_s_defaults() -> None:
    callbacks = Callbacks.of(PUBLIC_BASE_URL, CONTEXT)
    twiml = _dial(parse_number("09012345678"), CALLER_ID, callbacks, TRANSCRIBED)
    transcription = _parse(twiml).find("Start/Transcription")
    assert transcription is not None
    assert "transcriptionEngine" not in transcription.attrib
    assert "speechModel" not in transcription.attrib
    dial = _parse(twiml).find("Dial")
    assert dial is not None
    assert "record" not in dial.attrib  # transcribed, not recorded


def _ring_with(conversation: Conversation, call: InboundCall) -> ET.Element:
    return _parse(
        ring_group_twiml(
            call,
            identities=["kintone_1"],
            timeout_s=20,
            callbacks=Callbacks.of(PUBLIC_BASE_URL, call.callback_context(), "rc=3"),
            action_url=after_dial_url(PUBLIC_BASE_URL, call),
            conversation=conversation,
        )
    )


def test_the_ring_group_transcribes_then_says_the_notice_then_rings_recording() -> None:
    call = line_call(LINE_ID)
    root = _ring_with(BOTH, call)
    assert [child.tag for child in root] == ["Start", "Say", "Dial"]
    callbacks = Callbacks.of(PUBLIC_BASE_URL, call.callback_context(), "rc=3")
    transcription = root.find("Start/Transcription")
    assert transcription is not None
    assert transcription.attrib["statusCallbackUrl"] == callbacks.transcription
    assert parse_qs(urlsplit(callbacks.transcription).query) == {
        "line_user_id": [LINE_ID],
        "direction": ["inbound"],
    }
    assert transcription.attrib["track"] == "both_tracks"
    assert transcription.attrib["partialResults"] == "false"
    say = root.find("Say")
    assert say is not None
    assert say.attrib == {"language": "ja-JP"}
    assert say.text == RECORDING_NOTICE_JA
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallback"] == callbacks.recording
    assert dial.attrib["recordingStatusCallbackEvent"] == "completed absent"
    [client] = dial.findall("Client")
    assert client.attrib["statusCallback"] == callbacks.status


@pytest.mark.parametrize(
    ("conversation", "tags"),
    [
        (Conversation(), ["Dial"]),
        (RECORDED, ["Say", "Dial"]),
        (Conversation(recording=True, notice=""), ["Dial"]),
        (Conversation(transcription=True, notice=""), ["Start", "Dial"]),
    ],
)
def test_the_ring_group_s_opening_follows_the_conversation(
    conversation: Conversation, tags: list[str]
) -> None:
    root = _ring_with(conversation, number_call("+819012345678"))
    assert [child.tag for child in root] == tags
    dial = root.find("Dial")
    assert dial is not None
    assert ("record" in dial.attrib) is conversation.recording


def test_the_forward_after_the_ring_group_records_but_neither_transcribes_nor_notices_again() -> (
    None
):
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query({"kind": "number"}),
        "no-answer",
        forward_to="+81312345678",
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        conversation=BOTH,
    )
    assert outcome is DialOutcome.FORWARDED
    root = _parse(twiml)
    assert [child.tag for child in root] == ["Dial"]
    dial = root.find("Dial")
    assert dial is not None
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallback"] == f"{PUBLIC_BASE_URL}/twilio/recording" + (
        "?direction=inbound"
    )


def test_with_nobody_to_ring_the_forward_opens_the_conversation() -> None:
    twiml = nobody_answered_twiml(
        number_call(None),
        forward_to="+81312345678",
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        conversation=BOTH,
        opening=True,
    )
    root = _parse(twiml)
    assert [child.tag for child in root] == ["Start", "Say", "Dial"]
    assert root.find("Dial").attrib["record"] == "record-from-answer-dual"  # type: ignore[union-attr]


def test_with_nowhere_to_go_nothing_is_recorded_or_said_but_the_message() -> None:
    twiml = nobody_answered_twiml(
        number_call(None),
        forward_to=None,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        conversation=BOTH,
        opening=True,
    )
    assert [child.tag for child in _parse(twiml)] == ["Say", "Hangup"]
    assert _parse(twiml).findtext("Say") == UNAVAILABLE_JA


def test_the_notice_twiml() -> None:
    root = _parse(notice_twiml(RECORDING_NOTICE_JA))
    assert [child.tag for child in root] == ["Say"]
    assert root.find("Say").attrib == {"language": "ja-JP"}  # type: ignore[union-attr]
    assert root.findtext("Say") == RECORDING_NOTICE_JA
    assert list(_parse(notice_twiml(""))) == []
    assert "&lt;b&gt;" in notice_twiml("<b>録音</b>")


def test_a_dial_s_callbacks_are_only_those_its_conversation_needs() -> None:
    everything = Callbacks.of(PUBLIC_BASE_URL, CONTEXT)
    assert Callbacks.of(PUBLIC_BASE_URL, CONTEXT, conversation=NOTHING_RECORDED) == (
        everything.status,
        "",
        "",
    )
    assert Callbacks.of(PUBLIC_BASE_URL, CONTEXT, conversation=RECORDED) == (
        everything.status,
        everything.recording,
        "",
    )
    assert Callbacks.of(PUBLIC_BASE_URL, CONTEXT, conversation=BOTH) == everything


# --- voicemail (CONTRACT.md section 12) -------------------------------------------------------


def _voicemail(
    conversation: Conversation = NOTHING_RECORDED,
    greeting: str = VOICEMAIL_GREETING_JA,
    max_length_s: int = 120,
    public_base_url: str = PUBLIC_BASE_URL,
    fragment: str = "rc=3",
) -> VoicemailAnswer:
    return VoicemailAnswer.prepare(
        greeting=greeting,
        max_length_s=max_length_s,
        public_base_url=public_base_url,
        fragment=fragment,
        conversation=conversation,
    )


def _voice_response_voicemail(
    call: InboundCall,
    conversation: Conversation,
    greeting: str,
    max_length_s: int,
    public_base_url: str,
    fragment: str,
    first_answer: bool,
) -> str:
    """The voicemail as twilio-python's VoiceResponse builds it: the reference."""
    from twilio.twiml.voice_response import VoiceResponse

    context = call.callback_context()
    callbacks = Callbacks.of(public_base_url, context, fragment)
    response = VoiceResponse()
    response.say(greeting, language="ja-JP")
    if conversation.transcription and first_answer:
        response.append(_voice_response_start(conversation, callbacks.transcription))
    done = f"{public_base_url}{VOICEMAIL_DONE_PATH}" + (f"#{fragment}" if fragment else "")
    response.record(
        action=done,
        method="POST",
        max_length=max_length_s,
        play_beep=True,
        recording_status_callback=voicemail_recording_url(public_base_url, context, fragment),
        recording_status_callback_event="completed absent",
    )
    return str(response)


@settings(max_examples=300, deadline=None)
@given(
    conversation=_conversations,
    greeting=_xml_text.filter(bool),
    max_length_s=st.integers(min_value=5, max_value=14_400),
    public_base_url=_xml_text,
    fragment=st.sampled_from(["", "rc=3", "rc=3&rp=all"]),
    line=st.booleans(),
    first_answer=st.booleans(),
)
def test_voicemail_template_equals_voice_response(
    conversation: Conversation,
    greeting: str,
    max_length_s: int,
    public_base_url: str,
    fragment: str,
    line: bool,
    first_answer: bool,
) -> None:
    call = line_call(LINE_ID) if line else number_call("+819012345678")
    answer = _voicemail(conversation, greeting, max_length_s, public_base_url, fragment)
    assert answer.twiml(call, first_answer=first_answer) == _voice_response_voicemail(
        call, conversation, greeting, max_length_s, public_base_url, fragment, first_answer
    )


def test_after_the_ring_group_the_running_transcription_goes_on_none_starts_again() -> None:
    """The call's first TwiML (the ring group's) started its transcription, which runs until
    the call ends: a second <Start> in the voicemail would transcribe the message twice."""
    root = _parse(_voicemail(BOTH).twiml(line_call(LINE_ID)))
    assert [child.tag for child in root] == ["Say", "Record"]


def test_the_voicemail_greets_transcribes_then_records_with_the_beep() -> None:
    """As the call's first answer (no ring group, no forward) it starts the transcription."""
    call = line_call(LINE_ID)
    root = _parse(_voicemail(BOTH).twiml(call, first_answer=True))
    assert [child.tag for child in root] == ["Say", "Start", "Record"]
    say = root.find("Say")
    assert say is not None
    assert say.attrib == {"language": "ja-JP"}
    assert say.text == VOICEMAIL_GREETING_JA
    callbacks = Callbacks.of(PUBLIC_BASE_URL, call.callback_context(), "rc=3")
    transcription = root.find("Start/Transcription")
    assert transcription is not None
    assert transcription.attrib["statusCallbackUrl"] == callbacks.transcription
    assert transcription.attrib["track"] == "both_tracks"
    record = root.find("Record")
    assert record is not None
    assert record.attrib == {
        "action": f"{PUBLIC_BASE_URL}{VOICEMAIL_DONE_PATH}#rc=3",
        "method": "POST",
        "maxLength": "120",
        "playBeep": "true",
        "recordingStatusCallback": voicemail_recording_url(
            PUBLIC_BASE_URL, call.callback_context(), "rc=3"
        ),
        "recordingStatusCallbackEvent": "completed absent",
    }
    url = urlsplit(record.attrib["recordingStatusCallback"])
    assert url.path == RECORDING_CALLBACK_PATH
    assert parse_qs(url.query) == {
        "line_user_id": [LINE_ID],
        "direction": ["inbound"],
        "source": ["voicemail"],
    }


def test_an_untranscribed_voicemail_has_no_start() -> None:
    root = _parse(_voicemail(RECORDED, max_length_s=30).twiml(number_call(None)))
    assert [child.tag for child in root] == ["Say", "Record"]
    assert root.find("Record").attrib["maxLength"] == "30"  # type: ignore[union-attr]


def test_a_greeting_with_markup_and_braces_is_said_as_written() -> None:
    root = _parse(_voicemail(greeting="<b>{営業時間}</b> & 9:00").twiml(number_call(None)))
    assert root.findtext("Say") == "<b>{営業時間}</b> & 9:00"


def test_voicemail_recording_url_without_context() -> None:
    assert voicemail_recording_url("https://x.example", CallContext()) == (
        "https://x.example/twilio/recording?source=voicemail"
    )


@pytest.mark.parametrize("query", [{"kind": "number"}, {"kind": "number", "forwarded": "1"}])
def test_with_voicemail_a_call_nobody_took_is_offered_it(query: dict[str, str]) -> None:
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query(query),
        "no-answer",
        forward_to="+81312345678" if query.get("forwarded") else None,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        voicemail=_voicemail(),
    )
    assert outcome is DialOutcome.VOICEMAIL
    assert [child.tag for child in _parse(twiml)] == ["Say", "Record"]


def test_with_voicemail_a_missed_ring_group_still_goes_to_the_forward_first() -> None:
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query({"kind": "number"}),
        "no-answer",
        forward_to="+81312345678",
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        voicemail=_voicemail(),
    )
    assert outcome is DialOutcome.FORWARDED
    assert _parse(twiml).find("Dial/Number") is not None


@pytest.mark.parametrize("status", ["completed", "answered", None, "bogus"])
@pytest.mark.parametrize("forwarded", [False, True])
def test_a_call_someone_answered_never_reaches_voicemail(
    status: str | None, forwarded: bool
) -> None:
    query = {"kind": "line", **({"forwarded": "1"} if forwarded else {})}
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query(query),
        status,
        forward_to=None,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        voicemail=_voicemail(),
    )
    assert outcome in (DialOutcome.ANSWERED, DialOutcome.FORWARD_ANSWERED)
    assert [child.tag for child in _parse(twiml)] == ["Hangup"]


def test_a_caller_who_hung_up_while_it_rang_is_offered_no_voicemail() -> None:
    outcome, twiml = after_dial_twiml(
        AfterDial.from_query({"kind": "number"}),
        "no-answer",
        forward_to=None,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        voicemail=_voicemail(),
        caller_gone=True,
    )
    assert outcome is DialOutcome.UNANSWERED
    assert _parse(twiml).find("Record") is None


def test_caller_gone() -> None:
    assert all(caller_gone(s) for s in ("completed", "canceled", "no-answer", "busy", "failed"))
    assert not any(caller_gone(s) for s in ("in-progress", "ringing", None, ""))


def test_with_nobody_to_ring_nor_forward_to_the_voicemail_opens_the_call() -> None:
    twiml = nobody_answered_twiml(
        number_call(None),
        forward_to=None,
        caller_id=CALLER_ID,
        public_base_url=PUBLIC_BASE_URL,
        conversation=BOTH,
        opening=True,
        voicemail=_voicemail(BOTH),
    )
    assert [child.tag for child in _parse(twiml)] == ["Say", "Start", "Record"]


def test_the_thanks_after_the_message() -> None:
    root = _parse(voicemail_done_twiml())
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.findtext("Say") == VOICEMAIL_THANKS_JA
    assert root.find("Say").attrib == {"language": "ja-JP"}  # type: ignore[union-attr]
