"""Who called: an inbound call's caller, the kintone records query that finds them in the
customer app, and the filter that keeps only the records that really are them. Pure: no I/O.

kintone's ``like`` on a text field is a *word* search, not a substring one (cybozu.dev, "クエリの
書き方": "文字列を検索する場合は単語検索になります"; kintone help, "キーワード入力時の注意事項"):
letters and digits in a run are one word, ``-``, spaces, parentheses and most symbols split
words, while ``+``, ``_`` and ``#`` do not. So ``09011112222`` is one word that ``like "2222"``
never finds, while ``090-1111-2222`` is three words and is found. The query therefore asks for
the forms a number is commonly written in as whole values (``in``), or for its groups after the
first as words (``like … and like …``), and :func:`matching_records` then keeps only the
records whose number normalises to the caller's: the ``like`` half can find other people's
numbers that share its groups.

Every value goes into the query through :func:`quote`, and only values this module built from a
parsed number or a validated LINE user id: a caller's text never reaches the query as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers

from services.common.numbers import InvalidNumberError, parse_number

FULL_WIDTH = str.maketrans("0123456789-+", "０１２３４５６７８９－＋")
LINE_USER_ID = re.compile(r"U[0-9a-f]{32}")  # CONTRACT.md section 9
MAX_RECORDS = 500  # kintone's limit for one GET records.json (GAIA_QU01 beyond)
# A field code as it may stand bare in a query: kintone field codes hold letters, digits, "_",
# and a few full-width symbols, never spaces, quotes, parentheses or operators.
FIELD_CODE = re.compile(r"[^\s\"'()=!<>,\\]{1,128}")


@dataclass(frozen=True, slots=True)
class PhoneCaller:
    e164: str


@dataclass(frozen=True, slots=True)
class LineCaller:
    user_id: str


Caller = PhoneCaller | LineCaller


def identify_caller(
    from_number: str | None, line_user_id: str | None, home_region: str = "JP"
) -> Caller | None:
    """The caller to look up, or None (anonymous, withheld, unparseable, a SIP URI without a
    LINE user id): such a call is rung and recorded but matches no customer."""
    if line_user_id and LINE_USER_ID.fullmatch(line_user_id):
        return LineCaller(line_user_id)
    if not from_number or ":" in from_number or "@" in from_number:
        return None  # client:…, sip:…@…: not a phone number
    try:
        return PhoneCaller(parse_number(from_number, default_region=home_region).e164)
    except InvalidNumberError:
        return None  # "anonymous", "+266696687" (Twilio's withheld marker), junk


def quote(value: str) -> str:
    """A kintone query string literal: ``\\`` and ``"`` escaped with a backslash."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_field_code(code: str) -> str:
    if FIELD_CODE.fullmatch(code) is None:
        raise ValueError("is not a kintone field code (no spaces, quotes, brackets or operators)")
    return code


def phone_forms(e164: str) -> list[str]:
    """The ways people write this number in a text field, as whole values: E.164, the national
    number with and without hyphens or with spaces, the international forms, 81 without +."""
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    digits = "".join(c for c in national if c.isdigit())
    country = str(number.country_code)
    significant = phonenumbers.national_significant_number(number)
    forms = [
        e164,
        e164[1:],  # 819011112222
        digits,  # 09011112222
        national,  # 090-1111-2222
        national.replace("-", " "),  # 090 1111 2222
        international,  # +81 90-1111-2222
        international.replace(" ", "-"),  # +81-90-1111-2222
        international.replace("-", " "),  # +81 90 1111 2222
        f"+{country}{digits}",  # +8109011112222, the trunk 0 kept by mistake
        f"+{country}-{significant}",
        f"+{country} {significant}",
        digits.translate(FULL_WIDTH),  # ０９０１１１１２２２２, typed on a Japanese keyboard
        national.translate(FULL_WIDTH),  # ０９０－１１１１－２２２２
    ]
    return list(dict.fromkeys(form for form in forms if form))


def word_groups(e164: str) -> list[str]:
    """The words a ``like`` looks for: the groups of the number as written nationally after
    the first (``1111`` and ``2222`` of ``090-1111-2222``). Any separated form of the number
    holds them as words, whatever it does with the area or mobile prefix (``090``, ``90``,
    ``(0)90``); asking for all of them (``and``) keeps numbers that merely end alike out of the
    500 records one query returns."""
    number = phonenumbers.parse(e164)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    groups = [g for g in re.split(r"[^0-9]+", national) if g]
    if len(groups) > 1:
        return list(dict.fromkeys(groups[1:]))
    return groups or [phonenumbers.national_significant_number(number)]


@dataclass(frozen=True, slots=True)
class LookupFields:
    """The customer app's field codes (KINTONE_FIELD_PHONE, KINTONE_FIELD_LINE_USER_ID)."""

    phone: str
    line_user_id: str


def lookup_query(caller: Caller, fields: LookupFields) -> str:
    """The one records query for this caller, oldest records first, kintone's maximum."""
    tail = f" order by $id asc limit {MAX_RECORDS}"
    if isinstance(caller, LineCaller):
        code = check_field_code(fields.line_user_id)
        return f"{code} = {quote(caller.user_id)}{tail}"
    code = check_field_code(fields.phone)
    forms = ", ".join(quote(form) for form in phone_forms(caller.e164))
    words = " and ".join(f"{code} like {quote(word)}" for word in word_groups(caller.e164))
    return f"({code} in ({forms}) or ({words})){tail}"


MAX_FIELD_TEXT = 256  # a phone field longer than this is not searched for numbers


def same_number(value: str, e164: str, home_region: str = "JP") -> bool:
    """The field holds the caller's number: as its whole value, or among other text
    ("090-1111-2222 (携帯)", "携帯 090-… / 会社 03-…")."""
    try:
        return parse_number(value, default_region=home_region).e164 == e164
    except InvalidNumberError:
        pass
    text = value[:MAX_FIELD_TEXT]
    return any(
        phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164) == e164
        for match in phonenumbers.PhoneNumberMatcher(text, home_region)
    )


def _text(record: Mapping[str, Any], code: str) -> str:
    cell = record.get(code)
    value = cell.get("value") if isinstance(cell, Mapping) else None
    return value if isinstance(value, str) else ""


def record_id(record: Mapping[str, Any]) -> int | None:
    text = _text(record, "$id")
    return int(text) if text.isdigit() else None


def matching_records(
    records: Iterable[Mapping[str, Any]],
    caller: Caller,
    fields: LookupFields,
    home_region: str = "JP",
) -> list[Mapping[str, Any]]:
    """Of the records the query returned, the ones that are this caller, by record id."""
    if isinstance(caller, LineCaller):
        kept = [r for r in records if _text(r, fields.line_user_id).strip() == caller.user_id]
    else:
        kept = [r for r in records if same_number(_text(r, fields.phone), caller.e164, home_region)]
    return sorted((r for r in kept if record_id(r) is not None), key=lambda r: record_id(r) or 0)


def lookup_fields_wanted(fields: LookupFields, caller: Caller, extra: Sequence[str]) -> list[str]:
    """What the query asks kintone to return: the id and the field matched on, plus ``extra``
    (subtable mode: the revision and the history table, so no second read is needed)."""
    code = fields.line_user_id if isinstance(caller, LineCaller) else fields.phone
    return list(dict.fromkeys(["$id", code, *extra]))
