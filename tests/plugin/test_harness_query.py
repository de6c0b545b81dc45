"""The kintone stand-in's query language (harness/query.py) against what cybozu.dev documents,
so the browser tests' lookups run against kintone's rules, not the plugin's own idea of them."""

from __future__ import annotations

import pytest

from tests.plugin.harness.query import QueryError, like, run, tokenize
from tests.plugin.harness.server import make_record

RECORDS = [
    make_record(1, "A", "09011112222", ""),
    make_record(2, "B", "090-1111-2222", ""),
    make_record(3, "C", "+81 90 1111 2222", ""),
    make_record(4, "D", "03-9999-2222", ""),
    make_record(5, "E", 'he said "x"', ""),
]


def ids(answer: dict) -> list[str]:
    return [r["$id"]["value"] for r in answer["records"]]


def test_like_matches_whole_words() -> None:
    assert not like("09011112222", "2222")
    assert like("090-1111-2222", "2222")
    assert like("(090) 1111 2222", "2222")
    assert not like("+819011112222", "819011112222")  # + does not split a word
    assert like("+819011112222", "+819011112222")
    assert not like("a_2222", "2222")
    assert not like("#2222", "2222")
    assert like("090-1111-2222", "1111-2222")  # several words in a row


def test_in_like_or_and_order_limit_fields() -> None:
    answer = run('phone in ("09011112222") or phone like "2222"', RECORDS, ["$id"])
    assert ids(answer) == ["4", "3", "2", "1"]  # newest first without order by
    assert answer["records"][0] == {"$id": {"type": "__ID__", "value": "4"}}
    answer = run('phone like "2222" and company != "D" order by $id asc limit 1 offset 1', RECORDS)
    assert ids(answer) == ["3"]
    assert answer["totalCount"] == "2"
    assert ids(run('(phone = "09011112222" or company = "E") and $id > "1"', RECORDS)) == ["5"]
    assert ids(run('phone not in ("09011112222", "090-1111-2222") limit 2', RECORDS)) == ["5", "4"]
    # The plugin's lookup, as it sends it.
    query = (
        '(phone in ("09011112222", "+819011112222") or (phone like "1111" and phone like "2222"))'
        " order by $id asc limit 500"
    )
    assert ids(run(query, RECORDS)) == ["1", "2", "3"]


def test_escaped_strings_stay_one_string() -> None:
    assert [t.value for t in tokenize(r'phone = "he said \"x\""')] == ["phone", "=", 'he said "x"']
    assert ids(run(r'phone = "he said \"x\""', RECORDS)) == ["5"]
    # An escaped quote cannot end the string: the rest is part of the value, nothing matches.
    assert ids(run(r'phone = "\" or $id > \"0"', RECORDS)) == []


@pytest.mark.parametrize(
    "query",
    ['phone = "x', 'nope = "x"', "phone = x", 'phone in "x"', "limit 501", 'phone = "x" junk'],
)
def test_bad_queries_are_refused(query: str) -> None:
    with pytest.raises(QueryError):
        run(query, RECORDS)
