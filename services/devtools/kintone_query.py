"""kintone's query language, as far as the stand-in serves it: conditions on text fields and the
record id, ``and``/``or`` with parentheses, ``order by``, ``limit`` and ``offset``.

Sources: cybozu.dev "クエリの書き方" (operators per field type, options, the word search of
``like``), "複数のレコードを取得する" (GET records.json: ``limit`` at most 500, ``offset`` at most
10,000, default 100 records), and the error codes real kintone answers as recorded by
SonicGarden/kintone-emulator's real-kintone tests: a syntax error or a raw tab inside a string
is 400 ``CB_VA01``, ``limit`` over 500 ``GAIA_QU01``, ``offset`` over 10,000 ``GAIA_QU02``, an
unknown field ``GAIA_IQ11``, ``=`` on a field inside a table ``GAIA_IQ07``, ``=`` on a
multi-line text ``GAIA_IQ03``.

Guesses, not documented word for word: the error messages; ``and`` binding tighter than ``or``
(as in SQL); keywords matched case-insensitively; how ``like`` splits words, which follows the
kintone help page "キーワード入力時の注意事項" as the issue states it — letters and digits in a
run are one word, ``+``, ``_`` and ``#`` join words, every other symbol and space splits them —
and, for text with no word boundaries (Japanese), a substring match inside a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

MAX_LIMIT = 500
MAX_OFFSET = 10_000
DEFAULT_LIMIT = 100
TEXT_TYPES = frozenset({"SINGLE_LINE_TEXT", "LINK", "RADIO_BUTTON", "DROP_DOWN", "NUMBER"})
LONG_TEXT_TYPES = frozenset({"MULTI_LINE_TEXT", "RICH_TEXT"})
RECORD_ID = "$id"


class QueryError(Exception):
    """kintone's refusal of a query: the status, code and message it answers with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status


def _syntax(detail: str) -> QueryError:
    return QueryError("CB_VA01", f"Invalid query: {detail}")


# --- words, for like ------------------------------------------------------------------------

_WORD = re.compile(r"[\w+#]+")  # \w: letters (any script), digits, "_"


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def word_match(value: str, term: str) -> bool:
    """``value like term``: the term's words appear in the value, in a run, as whole words;
    a word holding non-ASCII text (Japanese has no spaces) may match inside a value's word."""
    wanted = words(term)
    if not wanted:
        return True
    have = words(value)
    for start in range(len(have) - len(wanted) + 1):
        if all(
            _same_word(h, w) for h, w in zip(have[start : start + len(wanted)], wanted, strict=True)
        ):
            return True
    return False


def _same_word(have: str, want: str) -> bool:
    return have == want or (not want.isascii() and want in have)


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "string", "number", "name", "op", "(", ")", ","
    text: str


_OPERATORS = ("!=", "<=", ">=", "=", "<", ">")


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in " \t\r\n\u3000":
            i += 1
        elif c == '"':
            i, text = _string(query, i + 1)
            tokens.append(Token("string", text))
        elif c in "(),":
            tokens.append(Token(c, c))
            i += 1
        elif any(query.startswith(op, i) for op in _OPERATORS):
            op = next(op for op in _OPERATORS if query.startswith(op, i))
            tokens.append(Token("op", op))
            i += len(op)
        else:
            start = i
            while i < n and query[i] not in ' \t\r\n\u3000"(),=!<>':
                i += 1
            word = query[start:i]
            if not word:
                raise _syntax(f"unexpected {c!r}")
            tokens.append(Token("number" if word.isdigit() else "name", word))
    return tokens


def _string(query: str, i: int) -> tuple[int, str]:
    out: list[str] = []
    while i < len(query):
        c = query[i]
        if c == "\\":
            if i + 1 >= len(query):
                break
            out.append(query[i + 1])
            i += 2
        elif c == '"':
            return i + 1, "".join(out)
        elif c in "\t\r\n":
            raise _syntax("a control character inside a string")
        else:
            out.append(c)
            i += 1
    raise _syntax("an unterminated string")


# --- the parse tree ---------------------------------------------------------------------------

Record = Mapping[str, Any]  # field code → stored value (str, or list of rows for a table)
Predicate = Callable[[Record], bool]


@dataclass(frozen=True, slots=True)
class Field:
    """What the evaluator needs to know of a field: its type, and its table if it is in one."""

    type: str
    table: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    field: str
    descending: bool


@dataclass(slots=True)
class Query:
    where: Predicate
    order: list[Order]
    limit: int
    offset: int

    def run(self, records: Sequence[tuple[int, Record]]) -> tuple[list[int], int]:
        """The ids of the page of matching records, and how many match in all."""
        hits = [(rid, rec) for rid, rec in records if self.where({**rec, RECORD_ID: str(rid)})]
        for order in reversed(self.order):
            hits.sort(key=partial(_sort_key, code=order.field), reverse=order.descending)
        page = hits[self.offset : self.offset + self.limit]
        return [rid for rid, _ in page], len(hits)


def _sort_key(item: tuple[int, Record], code: str) -> tuple[int, Any]:
    rid, record = item
    if code == RECORD_ID:
        return (0, rid)
    value = record.get(code, "")
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return (0, float(value))
    return (1, str(value))


class _Parser:
    def __init__(self, tokens: list[Token], fields: Mapping[str, Field]) -> None:
        self.tokens = tokens
        self.i = 0
        self.fields = fields

    def peek(self, offset: int = 0) -> Token | None:
        at = self.i + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def at(self, kind: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == kind

    def keyword(self, word: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "name" and token.text.lower() == word

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _syntax("the query ends too early")
        self.i += 1
        return token

    def expect(self, kind: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise _syntax(f"expected {kind}, found {token.text!r}")
        return token

    def parse(self) -> Query:
        where: Predicate = lambda _r: True  # noqa: E731
        if self.peek() is not None and not self._at_option():
            where = self.disjunction()
        order: list[Order] = []
        limit, offset = DEFAULT_LIMIT, 0
        if self.keyword("order"):
            self.take()
            if not self.keyword("by"):
                raise _syntax("order without by")
            self.take()
            while True:
                code = self.expect("name").text
                self.field(code)
                descending = False
                if self.keyword("asc") or self.keyword("desc"):
                    descending = self.take().text.lower() == "desc"
                order.append(Order(code, descending))
                if not self.at(","):
                    break
                self.take()
        if self.keyword("limit"):
            self.take()
            limit = int(self.expect("number").text)
            if limit > MAX_LIMIT:
                raise QueryError("GAIA_QU01", f"limit must be {MAX_LIMIT} or less.")
        if self.keyword("offset"):
            self.take()
            offset = int(self.expect("number").text)
            if offset > MAX_OFFSET:
                raise QueryError("GAIA_QU02", f"offset must be {MAX_OFFSET} or less.")
        left = self.peek()
        if left is not None:
            raise _syntax(f"unexpected {left.text!r}")
        return Query(where, order or [Order(RECORD_ID, True)], limit, offset)

    def _at_option(self) -> bool:
        return self.keyword("order") or self.keyword("limit") or self.keyword("offset")

    def disjunction(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            self.take()
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda record: any(term(record) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while self.keyword("and"):
            self.take()
            terms.append(self.term())
        if len(terms) == 1:
            return terms[0]
        return lambda record: all(term(record) for term in terms)

    def term(self) -> Predicate:
        token = self.peek()
        if token is not None and token.kind == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        code = self.expect("name").text
        spec = self.field(code)
        negate = False
        if self.keyword("not"):
            self.take()
            negate = True
            if not (self.keyword("in") or self.keyword("like")):
                raise _syntax("not must be followed by in or like")
        operator = self.take()
        name = operator.text.lower() if operator.kind == "name" else operator.text
        if operator.kind == "op" and name in ("=", "!="):
            if spec.table is not None:
                raise QueryError("GAIA_IQ07", f"Use in or not in for ({code}) in a table.")
            if spec.type in LONG_TEXT_TYPES:
                raise QueryError("GAIA_IQ03", f"The operator {name} cannot be used on {code}.")
            value = self.expect("string").text
            test = _cell(code, spec, lambda v: v == value)
            return test if name == "=" else _not(test)
        if operator.kind == "name" and name == "like":
            value = self.expect("string").text
            test = _cell(code, spec, lambda v: word_match(v, value))
            return _not(test) if negate else test
        if operator.kind == "name" and name == "in":
            if spec.type in LONG_TEXT_TYPES:
                raise QueryError("GAIA_IQ03", f"The operator in cannot be used on {code}.")
            self.expect("(")
            values = {self.expect("string").text}
            while self.at(","):
                self.take()
                values.add(self.expect("string").text)
            self.expect(")")
            test = _cell(code, spec, lambda v: v in values)
            return _not(test) if negate else test
        raise _syntax(f"unsupported operator {operator.text!r}")

    def field(self, code: str) -> Field:
        if code == RECORD_ID:
            return Field("__ID__")
        spec = self.fields.get(code)
        if spec is None:
            raise QueryError("GAIA_IQ11", f"Specified field ({code}) not found.")
        if spec.type not in TEXT_TYPES | LONG_TEXT_TYPES:
            raise QueryError("GAIA_IQ11", f"The field ({code}) cannot be used in this stand-in.")
        return spec


def _cell(code: str, spec: Field, test: Callable[[str], bool]) -> Predicate:
    if spec.table is None:
        return lambda record: test(str(record.get(code, "")))
    table = spec.table

    def any_row(record: Record) -> bool:  # a table field matches if one of its rows does
        rows = record.get(table) or []
        return any(test(str(row["value"].get(code, ""))) for row in rows)

    return any_row


def _not(test: Predicate) -> Predicate:
    return lambda record: not test(record)


def parse_query(query: str, fields: Mapping[str, Field]) -> Query:
    """Parse ``query`` against an app's fields; raises :class:`QueryError` as kintone would."""
    return _Parser(tokenize(query), fields).parse()
