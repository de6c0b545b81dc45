"""The gateway's fast paths must agree exactly with the reference implementations they replace:
``parse_form`` with ``urllib.parse.parse_qsl``, the one-HMAC signature check with twilio's
``RequestValidator``."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from services.gateway.domain.security import HmacSha1, TwilioSignature, _signed_fields
from services.gateway.entrypoints.handlers import MAX_FIELDS, parse_form

TOKEN = "unit-auth-token-0123456789abcdef"
BASE = "https://calltrail.example.com"


def reference(text: str) -> list[tuple[str, str]] | type[Exception]:
    try:
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc)


def fast(text: str) -> list[tuple[str, str]] | type[Exception]:
    try:
        return parse_form(text)
    except (UnicodeDecodeError, ValueError) as exc:
        return type(exc)


_form_text = st.text(alphabet="ab=&%+2FfFc0 é\u3042;", max_size=60)


@settings(max_examples=300, deadline=None)
@given(_form_text)
def test_parse_form_equals_parse_qsl(text: str) -> None:
    assert fast(text) == reference(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), max_size=12))
def test_parse_form_round_trips_encoded_forms(pairs: list[tuple[str, str]]) -> None:
    text = urlencode(pairs)
    assert fast(text) == reference(text)


def test_parse_form_field_limit_is_parse_qsl_s() -> None:
    at_limit = "&".join(["a=1"] * MAX_FIELDS)
    over = "&".join(["a=1"] * (MAX_FIELDS + 1))
    assert fast(at_limit) == reference(at_limit)
    assert fast(over) is ValueError
    assert reference(over) is ValueError


@pytest.mark.parametrize("text", ["a=%ff", "%fe=1", "a=%e3%81", "a=%zz", "a=%", "=", "&&", "a"])
def test_parse_form_edge_cases(text: str) -> None:
    assert fast(text) == reference(text)


_params = st.lists(
    st.tuples(
        st.sampled_from(["CallSid", "To", "From", "A", "b", "SipHeader_X"]), st.text(max_size=15)
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(_params, st.text(alphabet="abc=&", max_size=10), st.booleans())
def test_fast_signature_check_agrees_with_request_validator(
    pairs: list[tuple[str, str]], query: str, tamper: bool
) -> None:
    params = MultiDict(pairs)
    path = "/twilio/status" + (f"?{quote(query, safe='=&')}" if query else "")
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    if tamper:
        signature = RequestValidator("another-token").compute_signature(BASE + path, params)
    expected = RequestValidator(TOKEN).validate(BASE + path, params, signature)
    assert TwilioSignature(TOKEN, BASE).is_valid(path, params, signature) is expected


@settings(max_examples=300, deadline=None)
@given(_params, st.text(alphabet="abc=&", max_size=10), st.booleans())
def test_fast_signature_alone_is_request_validator_s(
    pairs: list[tuple[str, str]], query: str, as_dict: bool
) -> None:
    # is_valid falls back to RequestValidator when the fast path refuses: here the fast path
    # is checked on its own, so that a wrong one cannot hide behind the slow one.
    params = dict(pairs) if as_dict else MultiDict(pairs)
    url = BASE + "/twilio/status" + (f"?{quote(query, safe='=&')}" if query else "")
    digest = HmacSha1(TOKEN.encode()).digest((url + _signed_fields(params)).encode())
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    assert base64.b64encode(digest).decode() == signature


_escaped_bytes = st.binary(max_size=12).map(lambda b: "".join(f"%{x:02X}" for x in b))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_escaped_bytes | _form_text, _escaped_bytes | _form_text), max_size=6))
def test_parse_form_equals_parse_qsl_for_any_escaped_bytes(pairs: list[tuple[str, str]]) -> None:
    """Every byte escaped: valid UTF-8 or not, %25 (a literal %) included."""
    text = "&".join(f"{name}={value}" for name, value in pairs)
    assert fast(text) == reference(text)
