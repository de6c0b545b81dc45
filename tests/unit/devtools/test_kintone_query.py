"""The kintone stand-in's query language: what kintone's GET records.json accepts, refuses, and
finds, word search included, and that quoting holds against injection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.devtools.kintone_query import (
    Field,
    QueryError,
    Token,
    parse_query,
    tokenize,
    word_match,
)
from services.recorder.domain.customer_lookup import quote

FIELDS = {
    "電話番号": Field("SINGLE_LINE_TEXT"),
    "顧客名": Field("SINGLE_LINE_TEXT"),
    "メモ": Field("MULTI_LINE_TEXT"),
    "通話番号": Field("SINGLE_LINE_TEXT", table="通話履歴"),
}
RECORDS: list[tuple[int, dict[str, Any]]] = [
    (1, {"電話番号": "09011112222", "顧客名": "山田商事株式会社"}),
    (2, {"電話番号": "090-1111-2222", "顧客名": "Sample Inc."}),
    (3, {"電話番号": "+81 90 1111 2222", "顧客名": "田中"}),
    (4, {"電話番号": "03-5555-2222", "顧客名": 'Quote "Co"'}),
    (5, {"電話番号": "", "顧客名": "x", "通話履歴": [{"id": "9", "value": {"通話番号": "+8190"}}]}),
]


def ids(query: str) -> list[int]:
    return parse_query(query, FIELDS).run(RECORDS)[0]


@pytest.mark.parametrize(
    ("value", "term", "found"),
    [
        ("09011112222", "2222", False),  # one word: no substring search
        ("090-1111-2222", "2222", True),
        ("090 1111 2222", "1111", True),
        ("(090)1111-2222", "090", True),
        ("+819011112222", "819011112222", False),  # "+" does not split words
        ("a_b", "b", False),  # nor "_"
        ("a#b", "a", False),  # nor "#"
        ("090-1111-2222", "1111-2222", True),  # a run of words
        ("090-1111-2222", "2222-1111", False),
        ("Sample Inc.", "sample", True),  # letters: case does not matter
        ("山田商事株式会社", "株式会社", True),  # Japanese: no word boundaries
    ],
)
def test_like_is_a_word_search(value: str, term: str, found: bool) -> None:
    assert word_match(value, term) is found


def test_operators_and_or_parentheses_order_limit_offset() -> None:
    assert ids('電話番号 = "09011112222"') == [1]
    assert ids('電話番号 like "2222" order by $id asc') == [2, 3, 4]
    assert ids('電話番号 not like "2222" order by $id asc') == [1, 5]
    assert ids('電話番号 in ("09011112222", "03-5555-2222") order by $id asc') == [1, 4]
    assert ids('電話番号 not in ("09011112222") order by $id asc limit 2 offset 1') == [3, 4]
    assert ids('電話番号 != "09011112222" and 顧客名 like "田中"') == [3]
    assert ids('(電話番号 like "1111" or 顧客名 = "x") and 顧客名 != "田中" order by $id') == [2, 5]
    assert ids("") == [5, 4, 3, 2, 1]  # kintone's default order: $id desc
    assert ids('通話番号 in ("+8190")') == [5]  # a table field: any of its rows
    assert ids('顧客名 = "Quote \\"Co\\""') == [4]


def test_total_count_counts_beyond_the_page() -> None:
    _, total = parse_query('電話番号 like "2222" limit 1', FIELDS).run(RECORDS)
    assert total == 3


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("電話番号 ===", "CB_VA01"),
        ('電話番号 = "a\tb"', "CB_VA01"),  # a raw tab inside a string
        ('電話番号 = "open', "CB_VA01"),
        ('電話番号 = "a" "b"', "CB_VA01"),
        ('(電話番号 = "a"', "CB_VA01"),
        ('電話番号 > "a" junk', "CB_VA01"),
        ("limit 501", "GAIA_QU01"),
        ("offset 10001", "GAIA_QU02"),
        ('xyz = "a"', "GAIA_IQ11"),
        ('通話番号 = "a"', "GAIA_IQ07"),
        ('メモ = "a"', "GAIA_IQ03"),
    ],
)
def test_what_kintone_refuses(query: str, code: str) -> None:
    with pytest.raises(QueryError) as refused:
        parse_query(query, FIELDS)
    assert refused.value.code == code
    assert refused.value.status == 400


def test_limits_at_the_edge_are_fine() -> None:
    parse_query("limit 500 offset 10000", FIELDS)


@pytest.mark.parametrize(
    "attack",
    [
        '" or 顧客名 like "',
        '2222" or 電話番号 != "',
        '\\" or 1 = 1 or \\"',
        "\\",
        '")) or ((電話番号 like "',
    ],
)
def test_a_quoted_value_never_widens_a_query(attack: str) -> None:
    query = f"電話番号 = {quote(attack)}"
    assert tokenize(query)[-1] == Token("string", attack)
    assert ids(query) == []


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_quote_round_trips_any_text(text: str) -> None:
    assert tokenize(quote(text)) == [Token("string", text)]
