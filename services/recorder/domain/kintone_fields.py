"""What the write-back needs of a kintone app, field by field (``calltrail kintone check``).
Pure: it reads the form fields API's ``properties``, already fetched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.recorder.domain.history import HistoryFields, WritebackMode

TEXT = ("SINGLE_LINE_TEXT",)
NUMBER = ("NUMBER",)
CHOICE = ("SINGLE_LINE_TEXT", "DROP_DOWN", "RADIO_BUTTON")


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok     ' if self.ok else 'PROBLEM'}  {self.code}: {self.message}"


def _expected(fields: HistoryFields) -> list[tuple[str, tuple[str, ...], str]]:
    return [
        (fields.datetime, ("DATETIME",), "when the call started (UTC)"),
        (fields.number, (*TEXT, "LINK"), "the number called, E.164"),
        (fields.result, CHOICE, "completed, busy, no-answer, canceled or failed"),
        (fields.seconds, NUMBER, "talk time in seconds"),
        (fields.charge, NUMBER, "the call's charge in the tariff's currency"),
        (fields.user, TEXT, "the kintone user who called"),
        (fields.call_sid, TEXT, "Twilio's CallSid: one row per call"),
    ]


def _check(properties: Mapping[str, Any], code: str, types: Sequence[str], what: str) -> Finding:
    prop = properties.get(code)
    if not isinstance(prop, Mapping):
        return Finding(code, False, f"missing: add a {types[0]} field with code {code!r} ({what})")
    if prop.get("type") not in types:
        wanted = " or ".join(types)
        return Finding(code, False, f"is a {prop.get('type')}, should be {wanted} ({what})")
    return Finding(code, True, f"{prop.get('type')} ({what})")


def check_fields(
    properties: Mapping[str, Any], mode: WritebackMode, table_code: str, fields: HistoryFields
) -> list[Finding]:
    """Field by field, what the write-back needs of the app (form fields API ``properties``)."""
    if mode is WritebackMode.APP:
        findings = [_check(properties, c, t, w) for c, t, w in _expected(fields)]
        findings.append(
            _check(
                properties, fields.customer_record, NUMBER + TEXT, "the customer's record number"
            )
        )
        key = properties.get(fields.call_sid)
        if isinstance(key, Mapping) and key.get("type") in TEXT and not key.get("unique"):
            findings.append(
                Finding(fields.call_sid, False, "must prohibit duplicate values (upsert key)")
            )
        return findings
    table = properties.get(table_code)
    if not isinstance(table, Mapping) or table.get("type") != "SUBTABLE":
        found = "missing" if not isinstance(table, Mapping) else f"a {table.get('type')}"
        return [Finding(table_code, False, f"is {found}: add a table (SUBTABLE) with this code")]
    inner = table.get("fields") or {}
    findings = [Finding(table_code, True, "SUBTABLE (the call history)")]
    findings += [_check(inner, c, t, w) for c, t, w in _expected(fields)]
    return findings
