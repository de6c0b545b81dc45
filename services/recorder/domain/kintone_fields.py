"""What the write-back needs of a kintone app, field by field (``calltrail kintone check``).
Pure: it reads the form fields API's ``properties``, already fetched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.recorder.domain.customer_lookup import LookupFields
from services.recorder.domain.history import HistoryFields, WritebackMode

OLD_NUMBER_CODE = "電話番号"  # KINTONE_FIELD_NUMBER's default before inbound calls

TEXT = ("SINGLE_LINE_TEXT",)
NUMBER = ("NUMBER",)
CHOICE = ("SINGLE_LINE_TEXT", "DROP_DOWN", "RADIO_BUTTON")
MULTI_LINE_TEXT = ("MULTI_LINE_TEXT",)
FILE = ("FILE",)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok     ' if self.ok else 'PROBLEM'}  {self.code}: {self.message}"


def _expected(fields: HistoryFields) -> list[tuple[str, tuple[str, ...], str]]:
    conversation = [
        (code, types, what)
        for code, types, what in (
            (fields.transcript, MULTI_LINE_TEXT, "the transcript: who said what (TRANSCRIPTION)"),
            (fields.recording, FILE, "the recording's file (RECORDING)"),
        )
        if code is not None
    ]
    return [
        (fields.datetime, ("DATETIME",), "when the call started (UTC)"),
        (fields.number, (*TEXT, "LINK"), "the number called or calling, E.164"),
        (fields.result, CHOICE, "completed, busy, no-answer, canceled, failed or 不在着信"),
        (fields.seconds, NUMBER, "talk time in seconds"),
        (fields.charge, NUMBER, "the call's charge in the tariff's currency"),
        (fields.user, TEXT, "the kintone user who called, or answered"),
        (fields.call_sid, TEXT, "Twilio's CallSid: one row per call"),
        (fields.direction, CHOICE, "着信 (inbound) or 発信 (outbound)"),
        *conversation,
    ]


def _check(properties: Mapping[str, Any], code: str, types: Sequence[str], what: str) -> Finding:
    prop = properties.get(code)
    if not isinstance(prop, Mapping):
        return Finding(code, False, f"missing: add a {types[0]} field with code {code!r} ({what})")
    if prop.get("type") not in types:
        wanted = " or ".join(types)
        return Finding(code, False, f"is a {prop.get('type')}, should be {wanted} ({what})")
    return Finding(code, True, f"{prop.get('type')} ({what})")


def _number_column(findings: list[Finding], columns: Mapping[str, Any], code: str) -> None:
    """Say which number column was found: the default 通話番号, or the old 電話番号."""
    index = next(i for i, f in enumerate(findings) if f.code == code)
    finding = findings[index]
    if finding.ok:
        if code == OLD_NUMBER_CODE:
            findings[index] = Finding(
                code, True, f"{finding.message}; the old default (KINTONE_FIELD_NUMBER=電話番号)"
            )
    elif code != OLD_NUMBER_CODE and isinstance(columns.get(OLD_NUMBER_CODE), Mapping):
        findings[index] = Finding(
            code,
            False,
            f"missing, but the table has {OLD_NUMBER_CODE} (the old default): set "
            f"KINTONE_FIELD_NUMBER={OLD_NUMBER_CODE}, or rename that column to {code}",
        )


def check_lookup_fields(properties: Mapping[str, Any], lookup: LookupFields) -> list[Finding]:
    """The customer app's fields an inbound call is matched by (top-level text fields)."""
    return [
        _check(properties, lookup.phone, (*TEXT, "LINK"), "the customer's phone number"),
        _check(properties, lookup.line_user_id, TEXT, "the customer's LINE user id"),
    ]


def check_fields(
    properties: Mapping[str, Any],
    mode: WritebackMode,
    table_code: str,
    fields: HistoryFields,
    lookup: LookupFields | None = None,
) -> list[Finding]:
    """Field by field, what the write-back needs of the app (form fields API ``properties``).
    ``lookup``: the app is also the customer app inbound calls are matched in."""
    extra = check_lookup_fields(properties, lookup) if lookup is not None else []
    if mode is WritebackMode.APP:
        findings = [_check(properties, c, t, w) for c, t, w in _expected(fields)]
        _number_column(findings, properties, fields.number)
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
        return findings + extra
    table = properties.get(table_code)
    if not isinstance(table, Mapping) or table.get("type") != "SUBTABLE":
        found = "missing" if not isinstance(table, Mapping) else f"a {table.get('type')}"
        return [
            Finding(table_code, False, f"is {found}: add a table (SUBTABLE) with this code"),
            *extra,
        ]
    inner = table.get("fields") or {}
    findings = [Finding(table_code, True, "SUBTABLE (the call history)")]
    findings += [_check(inner, c, t, w) for c, t, w in _expected(fields)]
    _number_column(findings, inner, fields.number)
    return findings + extra
