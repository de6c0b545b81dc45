"""Finding an inbound caller among the customer records: who the caller is, the one query (run
here through the kintone stand-in's own parser), and the filter after it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.devtools.kintone_query import Field, parse_query
from services.recorder.domain.customer_lookup import (
    LineCaller,
    LookupFields,
    PhoneCaller,
    identify_caller,
    lookup_query,
    matching_records,
    phone_forms,
    quote,
    word_groups,
)

FIELDS = LookupFields(phone="電話番号", line_user_id="LINEユーザーID")
QUERY_FIELDS = {"電話番号": Field("SINGLE_LINE_TEXT"), "LINEユーザーID": Field("SINGLE_LINE_TEXT")}
CALLER = "+819011112222"
LINE_ID = "U" + "0123456789abcdef" * 2
WRITTEN_FORMS = [
    "09011112222",
    "090-1111-2222",
    "090 1111 2222",
    "(090)1111-2222",
    "090(1111)2222",
    "+819011112222",
    "819011112222",
    "+81 90-1111-2222",
    "+81-90-1111-2222",
    "+81 90 1111 2222",
    "+81 (0)90-1111-2222",
    "+8109011112222",
    "０９０－１１１１－２２２２",  # full-width, as a Japanese keyboard gives it
    "090-1111-2222 (携帯)",  # with a note
    "携帯 090-1111-2222 / 会社 03-1234-5678",  # two numbers in one field
]
NOT_THE_CALLER = [
    "2222-1111-090",
    "090-3333-2222",
    "03-1111-2222",
    "09011112223",
    "2222",
    "",
    "090-1111-22222",
]


def find(query: str, values: list[str], code: str = "電話番号") -> list[dict[str, Any]]:
    """Run ``query`` over records holding ``values`` as the stand-in would; records as kintone
    returns them."""
    records = [(i + 1, {code: v}) for i, v in enumerate(values)]
    found, _ = parse_query(query, QUERY_FIELDS).run(records)
    return [{"$id": {"value": str(i)}, code: {"value": values[i - 1]}} for i in found]


@pytest.mark.parametrize(
    ("from_number", "line_id", "caller"),
    [
        ("+819011112222", None, PhoneCaller(CALLER)),
        ("09011112222", None, PhoneCaller(CALLER)),
        ("sip:line@example.sip.twilio.com", LINE_ID, LineCaller(LINE_ID)),
        ("sip:line@example.sip.twilio.com", None, None),
        ("sip:line@example.sip.twilio.com", "U" + "0" * 31, None),  # not a LINE user id
        ("anonymous", None, None),
        ("+266696687", None, None),  # Twilio's "withheld"
        ("client:kintone_5", None, None),
        ("", None, None),
        (None, None, None),
        ('+81" or 電話番号 like "', None, None),
    ],
)
def test_who_called(from_number: str | None, line_id: str | None, caller: object) -> None:
    assert identify_caller(from_number, line_id) == caller


def test_forms_and_word_groups() -> None:
    forms = phone_forms(CALLER)
    assert {"+819011112222", "09011112222", "090-1111-2222", "+81 90-1111-2222"} <= set(forms)
    assert word_groups(CALLER) == ["1111", "2222"]
    assert word_groups("+81312345678") == ["1234", "5678"]
    assert word_groups("+81120123456") == ["123", "456"]


def test_every_written_form_is_found_and_kept() -> None:
    query = lookup_query(PhoneCaller(CALLER), FIELDS)
    values = WRITTEN_FORMS + NOT_THE_CALLER
    found = find(query, values)
    kept = matching_records(found, PhoneCaller(CALLER), FIELDS)
    assert [r["電話番号"]["value"] for r in kept] == WRITTEN_FORMS
    # The like half finds numbers sharing the groups in another order; the filter drops them.
    assert any(r["電話番号"]["value"] == "2222-1111-090" for r in found)
    assert all(r["電話番号"]["value"] != "090-3333-2222" for r in found)
    assert all(r["電話番号"]["value"] not in NOT_THE_CALLER for r in kept)


def test_line_user_id_is_an_exact_match() -> None:
    query = lookup_query(LineCaller(LINE_ID), FIELDS)
    values = [LINE_ID, LINE_ID.upper(), LINE_ID[:-1], f"{LINE_ID} ", "x"]
    found = find(query, values, code="LINEユーザーID")
    kept = matching_records(found, LineCaller(LINE_ID), FIELDS)
    assert [r["LINEユーザーID"]["value"] for r in kept] == [LINE_ID]


def test_a_field_code_with_query_syntax_is_refused() -> None:
    with pytest.raises(ValueError, match="field code"):
        lookup_query(PhoneCaller(CALLER), LookupFields('電話番号 = "" or x', "LINE"))


QUERY_SYNTAX = st.sampled_from(['"', "\\", '" or 電話番号 like "', ")", "(", " or ", "\t", ""])
NUMBERISH = st.builds(
    "".join,
    st.lists(st.one_of(st.sampled_from(list("0123456789+-() ")), QUERY_SYNTAX), max_size=20),
)


@given(
    st.one_of(st.text(max_size=40), NUMBERISH, st.just(CALLER).map(lambda c: c + '" or "')),
    st.one_of(st.none(), st.text(max_size=40), st.just(LINE_ID + '" or "')),
)
# A raw text that is a substring of one of its number's forms ("+81120000000"), not a value.
@example("120000000", None)
def test_no_caller_text_breaks_or_widens_the_query(from_number: str, line_id: str | None) -> None:
    caller = identify_caller(from_number, line_id)
    if caller is None:
        return
    query = lookup_query(caller, FIELDS)
    parsed = parse_query(query, QUERY_FIELDS)  # never a syntax error
    # A record with an unrelated value is never returned.
    assert parsed.run([(1, {"電話番号": "unrelated", "LINEユーザーID": "unrelated"})])[0] == []
    if isinstance(caller, PhoneCaller):
        # The caller's raw text is never a value of the query, unless it is one of the forms.
        assert quote(from_number) not in query or from_number in phone_forms(caller.e164)
