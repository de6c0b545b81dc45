"""What a finished call looks like on kintone: pure mapping from its legs to a history-table
row (subtable mode) or a call-log record (app mode). No I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


class WritebackMode(enum.StrEnum):
    """``KINTONE_WRITEBACK``: where a finished call lands (CONTRACT.md section 6)."""

    OFF = "off"
    SUBTABLE = "subtable"  # a row in a table on the customer's record
    APP = "app"  # a record per call in a call-log app


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What lands on kintone for one call."""

    call_sid: str  # the root (browser) leg's: the call as the salesperson made it
    started_at: datetime | None
    number: str | None
    result: str
    seconds: int | None
    charge: Decimal | None  # the sum of its legs' charges; None if none is rated yet
    user: str | None


@dataclass(frozen=True, slots=True)
class HistoryFields:
    """The kintone field codes a call is written into (KINTONE_FIELD_* settings)."""

    datetime: str
    number: str
    result: str
    seconds: str
    charge: str
    user: str
    call_sid: str
    customer_record: str


def kintone_datetime(moment: datetime | None) -> str:
    """kintone DATETIME values are written in UTC: YYYY-MM-DDTHH:MM:SSZ."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise(root: str, legs: Iterable[Mapping[str, Any]]) -> CallSummary:
    """A call from its legs: the dialled (child) leg says number, result and duration."""
    legs = list(legs)
    children = sorted(
        (leg for leg in legs if leg["parent_call_sid"] == root), key=lambda leg: leg["call_sid"]
    )
    root_leg = next((leg for leg in legs if leg["call_sid"] == root), None)
    main = children[0] if children else root_leg
    assert main is not None, "a job always has at least one leg"
    charges = [leg["charge"] for leg in legs if leg["charge"] is not None]
    return CallSummary(
        call_sid=root,
        started_at=main["started_at"] or (root_leg["started_at"] if root_leg else None),
        number=main["to_number"],
        result=main["status"],
        seconds=main["duration_s"],
        charge=sum(charges, Decimal(0)) if charges else None,
        user=next((leg["user_identity"] for leg in legs if leg["user_identity"]), None),
    )


def _number(value: int | Decimal | None) -> str:
    return "" if value is None else str(value)  # NUMBER values travel as strings


def history_row(summary: CallSummary, fields: HistoryFields) -> dict[str, Any]:
    return {"value": _cells(summary, fields)}


def _cells(summary: CallSummary, fields: HistoryFields) -> dict[str, Any]:
    return {
        fields.datetime: {"value": kintone_datetime(summary.started_at)},
        fields.number: {"value": summary.number or ""},
        fields.result: {"value": summary.result},
        fields.seconds: {"value": _number(summary.seconds)},
        fields.charge: {"value": _number(summary.charge)},
        fields.user: {"value": summary.user or ""},
        fields.call_sid: {"value": summary.call_sid},
    }


def call_log_record(summary: CallSummary, record_id: int, fields: HistoryFields) -> dict[str, Any]:
    cells = _cells(summary, fields)
    cells[fields.customer_record] = {"value": str(record_id)}
    return cells
