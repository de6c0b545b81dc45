"""The LINE user id from a User-to-User header (CONTRACT.md section 9): every form it may come
in, and nothing else, never a wrong id, never an exception."""

from __future__ import annotations

from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.gateway.domain.line import (
    LINE_USER_ID,
    UUI_PARAMS,
    is_line_user_id,
    line_user_id,
    parse_uui,
)

LINE_ID = "U4af4980629abcdef0123456789abcdef"
LINE_ID_HEX = LINE_ID.encode().hex()  # "55346166…": RFC 7433's hex encoding of the id

line_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(lambda h: "U" + h)
# ;-parameters as LINE and SIP equipment add them (never an encoding other than the one given)
parameters = st.lists(
    st.sampled_from(
        [
            ";purpose=isdn-uui",
            ";content=isdn-uui",
            ";purpose=call",
            ";x=1",
            "; purpose = isdn-uui",
            ";",
        ]
    ),
    max_size=3,
).map("".join)


def _hex(value: str, upper: bool) -> str:
    encoded = value.encode().hex()
    return encoded.upper() if upper else encoded


# --- every form it may come in ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        LINE_ID,
        f"{LINE_ID};purpose=isdn-uui",
        f"{LINE_ID};encoding=ascii",  # not hex: the value is taken as it is
        f"{LINE_ID_HEX};encoding=hex",
        f"{LINE_ID_HEX.upper()};encoding=hex",
        f"{LINE_ID_HEX};encoding=hex;purpose=isdn-uui",
        f"{LINE_ID_HEX};purpose=isdn-uui;encoding=hex",
        f"{LINE_ID_HEX};Encoding=HEX",
        f"{LINE_ID_HEX}; encoding = hex",
        f"{LINE_ID_HEX}%3Bencoding%3Dhex",
        quote(f"{LINE_ID};purpose=isdn-uui", safe=""),
        "%55" + LINE_ID[1:],  # a percent-encoded "U"
        quote(LINE_ID, safe="").replace("4", "%34"),
    ],
)
def test_the_forms_of_a_line_user_id(value: str) -> None:
    assert parse_uui(value) == LINE_ID


# --- and nothing else --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "U4af4980629",  # too short
        LINE_ID + "0",  # too long
        LINE_ID[:-1],
        LINE_ID.upper(),  # LINE ids are lowercase hex
        "u" + LINE_ID[1:],
        " " + LINE_ID,
        LINE_ID + " ",
        LINE_ID + "\x00",
        f'"{LINE_ID}"',
        f"<{LINE_ID}>",
        f"{LINE_ID}&x=1",
        f"{LINE_ID}?x=1",
        f"{LINE_ID};encoding=hex",  # says hex, is not
        f"{LINE_ID_HEX}",  # hex without saying so: not an id
        f"{LINE_ID_HEX};encoding=base64",
        f"{LINE_ID_HEX[:-2]};encoding=hex",
        f"{LINE_ID_HEX}00;encoding=hex",
        f"{LINE_ID_HEX[:-1]};encoding=hex",
        f"{LINE_ID_HEX[:-1]}g;encoding=hex",
        (LINE_ID.upper().encode().hex()) + ";encoding=hex",
        quote(quote(LINE_ID, safe=""), safe="").replace("U", "%2555"),  # encoded twice
        quote(f"{LINE_ID_HEX};encoding=hex", safe="").replace("%", "%25"),  # encoded twice
        "%FF%FE" + LINE_ID,  # not UTF-8 once decoded
        "%" + LINE_ID,
        "ユーザー",
        ";" + LINE_ID,
        "encoding=hex;" + LINE_ID_HEX,
        "x" * 5000,
        LINE_ID + ";" + "x" * 5000,
        "U" + "０" * 32,  # full-width digits
        "U" + "٠" * 32,  # Arabic-Indic digits: str.isdigit, but not an id
    ],
)
def test_anything_else_is_absent(value: str) -> None:
    assert parse_uui(value) is None


@settings(max_examples=500, deadline=None)
@given(line_ids, parameters, st.booleans(), st.booleans(), st.booleans())
def test_a_valid_id_round_trips_through_every_encoding(
    line_id: str, params: str, hex_encoded: bool, upper_hex: bool, percent: bool
) -> None:
    value = f"{_hex(line_id, upper_hex)};encoding=hex{params}" if hex_encoded else line_id + params
    if percent:
        value = quote(value, safe="")
    assert parse_uui(value) == line_id


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=120) | st.binary(max_size=80).map(lambda b: b.hex() + ";encoding=hex"))
@example("%")
@example("%zz;encoding=hex")
@example(f"{LINE_ID_HEX};encoding=hex")
def test_arbitrary_text_never_yields_an_id_that_was_not_encoded_in_it(value: str) -> None:
    result = parse_uui(value)  # never raises
    if result is None:
        return
    assert LINE_USER_ID.fullmatch(result)
    decoded = unquote(value)
    assert decoded.startswith(result) or decoded.lower().startswith(result.encode().hex())


@settings(max_examples=300, deadline=None)
@given(line_ids, st.text(min_size=1, max_size=20).filter(lambda junk: ";" not in unquote(junk)))
def test_junk_before_or_glued_to_an_id_makes_it_absent(line_id: str, junk: str) -> None:
    assert parse_uui(junk + line_id) is None
    assert parse_uui(line_id + junk) is None
    assert parse_uui(f"{_hex(line_id, False)}{junk};encoding=hex") is None


# --- from the voice request's form ----------------------------------------------------------


def test_both_spellings_of_the_header() -> None:
    for name in UUI_PARAMS:
        assert line_user_id([(name, LINE_ID)]) == LINE_ID
    assert line_user_id([("SipHeader_x-user-to-user", LINE_ID)]) == LINE_ID
    assert line_user_id([("SIPHEADER_USER-TO-USER", f"{LINE_ID_HEX};encoding=hex")]) == LINE_ID


def test_no_header_or_another_header_gives_no_id() -> None:
    assert line_user_id([]) is None
    assert line_user_id([("From", LINE_ID), ("SipHeader_X-Other", LINE_ID)]) is None
    assert line_user_id([("SipHeader_X-User-To-User", "")]) is None


def test_a_bad_header_next_to_a_good_one() -> None:
    form = [("SipHeader_X-User-To-User", "junk"), ("SipHeader_User-to-User", LINE_ID)]
    assert line_user_id(form) == LINE_ID


def test_the_same_id_in_both_headers() -> None:
    form = [
        ("SipHeader_X-User-To-User", LINE_ID),
        ("SipHeader_User-to-User", f"{LINE_ID_HEX};encoding=hex"),
    ]
    assert line_user_id(form) == LINE_ID


def test_two_different_ids_give_none_rather_than_a_wrong_one() -> None:
    other = "U" + "f" * 32
    form = [("SipHeader_X-User-To-User", LINE_ID), ("SipHeader_User-to-User", other)]
    assert line_user_id(form) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*UUI_PARAMS, "From", "To", "SipHeader_X-Other"])
            | st.text(max_size=12),
            st.text(max_size=80) | line_ids,
        ),
        max_size=6,
    )
)
def test_arbitrary_forms_never_raise(form: list[tuple[str, str]]) -> None:
    result = line_user_id(form)
    assert result is None or is_line_user_id(result)


def test_is_line_user_id() -> None:
    assert is_line_user_id(LINE_ID)
    assert not is_line_user_id(None)
    assert not is_line_user_id(LINE_ID + "\n")
    assert not is_line_user_id(123)
