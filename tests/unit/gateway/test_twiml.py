"""TwiML answers and the dial policy (the toll-fraud gate)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.events import CallContext
from services.common.numbers import parse_number
from services.gateway.twiml import (
    REFUSAL_JA,
    STATUS_CALLBACK_EVENTS,
    STATUS_CALLBACK_PATH,
    UNAVAILABLE_JA,
    DialDecision,
    decide_dial,
    dial_number_twiml,
    refusal_twiml,
    sip_inbound_twiml,
    status_callback_url,
)
from tests.conftest import CALLER_ID, PUBLIC_BASE_URL

CONTEXT = CallContext(app_id="12", record_id="345", identity="u_123")
CALLBACK = f"{PUBLIC_BASE_URL}{STATUS_CALLBACK_PATH}?app_id=12&record_id=345&identity=u_123"


def _parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    return root


# --- decide_dial ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("09012345678", "+819012345678"),
        ("090-1234-5678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("0312345678", "+81312345678"),
        ("05012345678", "+815012345678"),
        ("0120-123-456", "+81120123456"),
    ],
)
def test_domestic_numbers_are_allowed(raw: str, e164: str) -> None:
    decision = decide_dial(raw, ["JP"])
    assert decision.allowed
    assert decision.refusal is None
    assert decision.number is not None
    assert decision.number.e164 == e164


@pytest.mark.parametrize("raw", [None, ""])
def test_no_number(raw: str | None) -> None:
    decision = decide_dial(raw, ["JP"])
    assert not decision.allowed
    assert decision.number is None
    assert decision.refusal == "no number given"


@pytest.mark.parametrize("raw", ["abc", "123", "client:u_123", "0000000000", "9" * 500, "   "])
def test_invalid_numbers_are_refused(raw: str) -> None:
    decision = decide_dial(raw, ["JP"])
    assert not decision.allowed
    assert decision.refusal is not None
    assert "phone number" in decision.refusal


def test_premium_rate_is_refused() -> None:
    decision = decide_dial("0990-123-456", ["JP"])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


@pytest.mark.parametrize(("raw", "region"), [("+4918012345", "DE"), ("+34901123456", "ES")])
def test_shared_cost_is_refused_even_in_an_allowed_country(raw: str, region: str) -> None:
    # Japan has no shared-cost range in libphonenumber; use countries that do.
    decision = decide_dial(raw, ["JP", region])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


def test_foreign_premium_rate_is_refused_even_when_allowed() -> None:
    decision = decide_dial("+19002345678", ["JP", "US"])
    assert not decision.allowed
    assert decision.refusal == "premium-rate or shared-cost number"


def test_other_country_is_refused_when_only_japan_is_allowed() -> None:
    decision = decide_dial("+12025550123", ["JP"])
    assert not decision.allowed
    assert decision.refusal == "country US not allowed"


def test_other_country_is_allowed_when_listed() -> None:
    decision = decide_dial("+12025550123", ["JP", "US"])
    assert decision.allowed
    assert decision.number is not None
    assert decision.number.e164 == "+12025550123"
    assert decision.number.region == "US"


def test_national_numbers_are_read_in_the_first_allowed_country() -> None:
    us_first = decide_dial("2025550123", ["US", "JP"])
    assert us_first.number is not None
    assert us_first.number.e164 == "+12025550123"
    assert decide_dial("09012345678", ["JP", "US"]).allowed


def test_non_geographic_numbers_are_refused() -> None:
    # +800 (international freephone) belongs to no country ("001").
    decision = decide_dial("+80012345678", ["JP"])
    assert not decision.allowed
    assert decision.refusal is not None


def test_dial_decision_allowed_follows_the_number() -> None:
    assert not DialDecision(None, "x").allowed
    assert DialDecision(parse_number("09012345678")).allowed


_regions = st.lists(st.sampled_from(["JP", "US", "DE", "ES", "GB", "FR"]), min_size=1, max_size=3)
_phoneish = st.text(alphabet="0123456789+-() ０１２３４５６７８９", max_size=20)
_known = st.sampled_from(
    [
        "0990123456",
        "+81990123456",
        "+4918012345",
        "+34901123456",
        "+19002345678",
        "+449012345678",
        "09012345678",
        "+12025550123",
        "0570123456",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.none() | st.text(max_size=40) | _phoneish | _known, _regions)
def test_decide_dial_never_raises_and_never_allows_premium(
    raw: str | None, regions: list[str]
) -> None:
    decision = decide_dial(raw, regions)
    assert isinstance(decision, DialDecision)
    if decision.allowed:
        assert decision.refusal is None
        assert decision.number is not None
        assert not decision.number.is_premium
        assert decision.number.region in regions
    else:
        assert decision.refusal


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
