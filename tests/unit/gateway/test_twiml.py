"""TwiML answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext
from services.common.numbers import PhoneNumber, parse_number
from services.gateway.domain.twiml import (
    REFUSAL_JA,
    STATUS_CALLBACK_EVENTS,
    STATUS_CALLBACK_PATH,
    UNAVAILABLE_JA,
    dial_number_twiml,
    refusal_twiml,
    sip_inbound_twiml,
    status_callback_url,
)
from tests.factories import CALLER_ID, PUBLIC_BASE_URL

CONTEXT = CallContext(app_id="12", record_id="345", identity="u_123")
CALLBACK = f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?app_id=12&record_id=345&identity=u_123"


def _parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    return root


# --- status_callback_url --------------------------------------------------------------------


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


def test_callback_url_for_a_line_call() -> None:
    url = status_callback_url(PUBLIC_BASE_URL, CallContext(line_user_id="U1+2/3"))
    assert parse_qs(urlsplit(url).query) == {"line_user_id": ["U1+2/3"]}
    assert "U1%2B2%2F3" in url


# --- dial_number_twiml ----------------------------------------------------------------------


def test_dial_number_twiml() -> None:
    callback = status_callback_url(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    twiml = dial_number_twiml(parse_number("090-1234-5678"), CALLER_ID, callback)
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
    assert root.find("Say") is None
    assert root.find("Hangup") is None


def test_dial_number_twiml_escapes_the_callback_query() -> None:
    twiml = dial_number_twiml(parse_number("09012345678"), CALLER_ID, CALLBACK)
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


# --- sip_inbound_twiml ----------------------------------------------------------------------


def test_sip_forwards_to_a_phone() -> None:
    twiml = sip_inbound_twiml(
        caller_id=CALLER_ID, callback_url=CALLBACK, forward_to="+819012345678", identities=["u_1"]
    )
    dial = _parse(twiml).find("Dial")
    assert dial is not None
    assert dial.attrib == {"callerId": CALLER_ID, "answerOnBridge": "true"}
    [number] = list(dial)
    assert number.tag == "Number"
    assert number.text == "+819012345678"
    assert number.attrib["statusCallback"] == CALLBACK
    assert number.attrib["statusCallbackEvent"] == STATUS_CALLBACK_EVENTS
    # SIP_FORWARD_TO wins over the browser identities.
    assert dial.find("Client") is None


def test_sip_rings_the_browsers() -> None:
    twiml = sip_inbound_twiml(
        caller_id=CALLER_ID,
        callback_url=CALLBACK,
        forward_to=None,
        identities=iter(["u_1", "u_2"]),
    )
    dial = _parse(twiml).find("Dial")
    assert dial is not None
    assert dial.attrib["callerId"] == CALLER_ID
    clients = list(dial)
    assert [c.tag for c in clients] == ["Client", "Client"]
    assert [c.text for c in clients] == ["u_1", "u_2"]
    for client in clients:
        assert client.attrib["statusCallback"] == CALLBACK
        assert client.attrib["statusCallbackEvent"] == STATUS_CALLBACK_EVENTS
        assert client.attrib["statusCallbackMethod"] == "POST"
    assert dial.find("Number") is None


@pytest.mark.parametrize("forward_to", [None, ""])
def test_sip_with_nobody_to_ring_is_refused(forward_to: str | None) -> None:
    twiml = sip_inbound_twiml(
        caller_id=CALLER_ID, callback_url=CALLBACK, forward_to=forward_to, identities=[]
    )
    root = _parse(twiml)
    assert root.find("Dial") is None
    say = root.find("Say")
    assert say is not None
    assert say.attrib["language"] == "ja-JP"
    assert say.text == UNAVAILABLE_JA
    assert root.find("Hangup") is not None


# --- the prepared template is VoiceResponse's output, exactly ---------------------------------


def _voice_response_dial(number: str, caller_id: str, callback_url: str) -> str:
    """How dial_number_twiml built its answer before the template: the reference."""
    from twilio.twiml.voice_response import Dial, VoiceResponse

    response = VoiceResponse()
    dial = Dial(caller_id=caller_id, answer_on_bridge=True)
    dial.number(
        number,
        status_callback=callback_url,
        status_callback_event=STATUS_CALLBACK_EVENTS,
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)


_xml_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("&<>\"'\r\n\t =?#%+;:/"), st.characters(blacklist_categories=("Cs",))
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(number=_xml_text.filter(bool), caller_id=_xml_text, callback=_xml_text)
def test_dial_template_equals_voice_response(number: str, caller_id: str, callback: str) -> None:
    phone = PhoneNumber(e164=number, region="JP", line_type=1)
    assert dial_number_twiml(phone, caller_id, callback) == _voice_response_dial(
        number, caller_id, callback
    )


@pytest.mark.parametrize("to", ["090-1234-5678", "0312345678", "+819012345678", "05012345678"])
def test_dial_template_for_real_numbers_and_callbacks(to: str) -> None:
    number = parse_number(to)
    callback = status_callback_url(PUBLIC_BASE_URL, CONTEXT, "rc=3&rp=all")
    assert dial_number_twiml(number, CALLER_ID, callback) == _voice_response_dial(
        number.e164, CALLER_ID, callback
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
