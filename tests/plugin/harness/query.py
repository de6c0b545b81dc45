"""kintone's record query language, enough of it for the plugin's records lookup
(``GET /k/v1/records.json`` through ``kintone.api``), as cybozu.dev documents it in
"クエリの書き方" (how to write a query) and "複数のレコードを取得する" (get records).

What follows the documentation: ``=``, ``!=``, ``in``, ``not in``, ``like``, ``not like`` on text
fields; ``and``/``or`` and parentheses; ``order by <field> asc|desc`` (several, comma-separated);
``limit`` (default 100, at most 500) and ``offset``; without ``order by`` the records come
newest first (``$id desc``); strings in double quotes with ``\\"`` and ``\\\\`` escaped; ``like``
matches whole words, not substrings. ``fields`` narrows the answer, ``totalCount`` counts.

Where it guesses: ``and`` binds tighter than ``or`` (the documentation shows both, not their
precedence); what a word is for ``like``: a run of letters, digits, ``+``, ``_`` and ``#`` —
``-``, spaces, parentheses and other symbols split words (the documented behaviour for
numbers; kintone's tokenizer for Japanese text is not documented and not played here); a
``like`` string of several words matches them in a row; any other backslash escape stands for
the character after it; a comparison with a field the app does not have is an error (kintone
answers GAIA_IQ11 for that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

WORD = re.compile(r"[\w+#]+")
TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[(),])
      | (?P<op>!=|>=|<=|=|>|<)
      | (?P<word>[^\s(),"=!<>]+)
    )""",
    re.VERBOSE | re.DOTALL,
)
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class QueryError(ValueError):
    """A query kintone would refuse (answered 400 by the harness)."""


@dataclass
class Token:
    kind: str  # string | punct | op | word
    value: str


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while at < len(query):
        if query[at:].strip() == "":
            break
        m = TOKEN.match(query, at)
        if not m or m.end() == at:
            raise QueryError(f"cannot read the query at {query[at : at + 20]!r}")
        at = m.end()
        kind = m.lastgroup
        assert kind is not None
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
        tokens.append(Token(kind, value))
    return tokens


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def like(value: str, pattern: str) -> bool:
    wanted = words(pattern)
    have = words(value)
    if not wanted:
        return True
    n = len(wanted)
    return any(have[i : i + n] == wanted for i in range(len(have) - n + 1))


def field_value(record: Record, code: str) -> str:
    if code not in record:
        return ""
    value = record[code].get("value")
    return "" if value is None else str(value)


class Parser:
    def __init__(self, query: str, fields: set[str]) -> None:
        self.tokens = tokenize(query)
        self.at = 0
        self.fields = fields

    def peek(self, offset: int = 0) -> Token | None:
        i = self.at + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def keyword(self, *names: str) -> bool:
        """Whether the next words are these keywords (case-insensitive); consumes them."""
        for i, name in enumerate(names):
            token = self.peek(i)
            if token is None or token.kind != "word" or token.value.lower() != name:
                return False
        self.at += len(names)
        return True

    def take(self, kind: str, value: str | None = None) -> Token:
        token = self.peek()
        if token is None or token.kind != kind or (value is not None and token.value != value):
            raise QueryError(f"expected {value or kind}, found {token.value if token else 'end'}")
        self.at += 1
        return token

    def at_clause_end(self) -> bool:
        token = self.peek()
        if token is None:
            return True
        if token.kind != "word":
            return False
        word = token.value.lower()
        nxt = self.peek(1)
        return (word == "order" and nxt is not None and nxt.value.lower() == "by") or word in {
            "limit",
            "offset",
        }

    def condition(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return lambda r: any(t(r) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while self.keyword("and"):
            terms.append(self.term())
        return lambda r: all(t(r) for t in terms)

    def term(self) -> Predicate:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.value == "(":
            self.at += 1
            inner = self.condition()
            self.take("punct", ")")
            return inner
        code = self.take("word").value
        if code not in self.fields:
            raise QueryError(f"GAIA_IQ11: no field {code}")
        if self.keyword("not", "in") or self.keyword("in"):
            negate = self.tokens[self.at - 2].value.lower() == "not"
            values = self.values()
            return lambda r: (field_value(r, code) in values) != negate
        if self.keyword("not", "like") or self.keyword("like"):
            negate = self.tokens[self.at - 2].value.lower() == "not"
            pattern = self.take("string").value
            return lambda r: like(field_value(r, code), pattern) != negate
        op = self.take("op").value
        value = self.take("string").value
        if code == "$id" or op in {">", "<", ">=", "<="}:
            return self.compare_number(code, op, value)
        if op == "=":
            return lambda r: field_value(r, code) == value
        if op == "!=":
            return lambda r: field_value(r, code) != value
        raise QueryError(f"operator {op} on text")

    @staticmethod
    def compare_number(code: str, op: str, value: str) -> Predicate:
        try:
            wanted = float(value)
        except ValueError as error:
            raise QueryError(f"not a number: {value!r}") from error
        ops: dict[str, Callable[[float, float], bool]] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
        }

        def check(record: Record) -> bool:
            try:
                return ops[op](float(field_value(record, code)), wanted)
            except ValueError:
                return False

        return check

    def values(self) -> set[str]:
        self.take("punct", "(")
        out = {self.take("string").value}
        while self.peek() is not None and self.peek().value == ",":  # type: ignore[union-attr]
            self.at += 1
            out.add(self.take("string").value)
        self.take("punct", ")")
        return out

    def number(self) -> int:
        token = self.take("word")
        if not token.value.isdigit():
            raise QueryError(f"not a number: {token.value}")
        return int(token.value)


def run(query: str, records: list[Record], fields: list[str] | None = None) -> dict[str, Any]:
    """The answer of GET /k/v1/records.json for these records: {"records", "totalCount"}."""
    codes = {"$id"} | {code for r in records for code in r}
    parser = Parser(query, codes)
    predicate: Predicate = (lambda r: True) if parser.at_clause_end() else parser.condition()
    order: list[tuple[str, bool]] = []
    if parser.keyword("order", "by"):
        while True:
            code = parser.take("word").value
            if code not in codes:
                raise QueryError(f"GAIA_IQ11: no field {code}")
            descending = parser.keyword("desc")
            if not descending:
                parser.keyword("asc")
            order.append((code, descending))
            if parser.peek() is None or parser.peek().value != ",":  # type: ignore[union-attr]
                break
            parser.at += 1
    limit = parser.number() if parser.keyword("limit") else DEFAULT_LIMIT
    offset = parser.number() if parser.keyword("offset") else 0
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek().value}")  # type: ignore[union-attr]
    if limit > MAX_LIMIT:
        raise QueryError("limit over 500")
    matched = [r for r in records if predicate(r)]
    for code, descending in reversed(order or [("$id", True)]):

        def key(r: Record, code: str = code) -> tuple[int, float | str]:
            value = field_value(r, code)
            try:
                return (0, float(value))
            except ValueError:
                return (1, value)

        matched.sort(key=key, reverse=descending)
    page = matched[offset : offset + limit]
    if fields:
        page = [{k: v for k, v in r.items() if k in fields} for r in page]
    return {"records": page, "totalCount": str(len(matched))}
