"""What a finished call looks like on kintone: pure mapping from its legs to a history-table
row (subtable mode) or a call-log record (app mode). No I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.common.numbers import InvalidNumberError, parse_number
from services.recorder.domain.missed import MISSED, VOICEMAIL, InboundOutcome, inbound_outcome

INBOUND = "inbound"
DIRECTION_LABELS = {"inbound": "着信", "outbound": "発信"}  # KINTONE_FIELD_DIRECTION's values
LINE_CALLER = "LINE"  # the number column of a LINE call: it has no number
ANSWERED = "completed"


class WritebackMode(enum.StrEnum):
    """``KINTONE_WRITEBACK``: where a finished call lands (CONTRACT.md section 6)."""

    OFF = "off"
    SUBTABLE = "subtable"  # a row in a table on the customer's record
    APP = "app"  # a record per call in a call-log app


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What lands on kintone for one call."""

    call_sid: str  # the root leg's: the call as the salesperson made it, or as it came in
    started_at: datetime | None
    number: str | None  # the number called; inbound: the caller's (LINE: "LINE")
    result: str
    seconds: int | None
    charge: Decimal | None  # the sum of its legs' charges; None if none is rated yet
    user: str | None  # who called; inbound: who answered
    direction: str = "outbound"
    caller: str | None = None  # inbound: the root leg's From, as Twilio sent it
    line_user_id: str | None = None  # inbound through LINE
    # A missed call's voicemail (留守電): what the caller said, line by line (empty: said
    # nothing the transcription caught, or not transcribed); None: no voicemail was left.
    voicemail: tuple[str, ...] | None = None

    @property
    def inbound(self) -> bool:
        return self.direction == INBOUND

    @property
    def missed(self) -> bool:
        """An inbound call no browser answered and nobody else took (domain/missed.py), a
        voicemail left or not."""
        return self.inbound and self.result in (MISSED, VOICEMAIL)


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
    direction: str = "発着信"
    # The conversation (CONTRACT.md section 11): None while it is not recorded/transcribed.
    transcript: str | None = None  # multi-line text: who said what
    recording: str | None = None  # attachment: the recording's file


def kintone_datetime(moment: datetime | None) -> str:
    """kintone DATETIME values are written in UTC: YYYY-MM-DDTHH:MM:SSZ."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarise(
    root: str, legs: Iterable[Mapping[str, Any]], voicemail: Sequence[str] | None = None
) -> CallSummary:
    """A call from its legs: the dialled (child) leg says number, result and duration.
    ``voicemail``: the lines of the voicemail the caller left (domain/missed.py), if any: a
    missed inbound call with one is ``留守電``."""
    legs = list(legs)
    children = sorted(
        (leg for leg in legs if leg["parent_call_sid"] == root), key=lambda leg: leg["call_sid"]
    )
    root_leg = next((leg for leg in legs if leg["call_sid"] == root), None)
    if root_leg is not None and root_leg.get("direction") == INBOUND:
        return _summarise_inbound(root, root_leg, children, legs, voicemail)
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


def caller_number(from_number: str | None, home_region: str = "JP") -> str | None:
    """The caller as the history shows it: E.164 when it is a number, "LINE" for a SIP caller,
    else what Twilio sent ("anonymous", …)."""
    if not from_number:
        return None
    if from_number.startswith("sip:"):
        return LINE_CALLER
    try:
        return parse_number(from_number, default_region=home_region).e164
    except InvalidNumberError:
        return from_number


def _summarise_inbound(
    root: str,
    root_leg: Mapping[str, Any],
    children: list[Mapping[str, Any]],
    legs: list[Mapping[str, Any]],
    voicemail: Sequence[str] | None = None,
) -> CallSummary:
    """A customer's call: who answered is the browser (client) leg that talked; a call no
    browser took but the forward did is answered too, by nobody in kintone; a call nobody took
    is missed (CONTRACT.md section 12), whatever its root leg's status: ``留守電`` when the
    caller left a voicemail, else ``不在着信``."""
    outcome, answering = inbound_outcome(children)
    missed = outcome is InboundOutcome.MISSED
    left = tuple(voicemail) if missed and voicemail is not None else None
    result = (MISSED if left is None else VOICEMAIL) if missed else ANSWERED
    charges = [leg["charge"] for leg in legs if leg["charge"] is not None]
    line_user_id = next((leg["line_user_id"] for leg in legs if leg.get("line_user_id")), None)
    return CallSummary(
        call_sid=root,
        started_at=root_leg["started_at"],
        number=LINE_CALLER if line_user_id else caller_number(root_leg["from_number"]),
        result=result,
        seconds=(answering["duration_s"] or 0) if answering is not None else 0,
        charge=sum(charges, Decimal(0)) if charges else None,
        user=(
            answering["user_identity"]
            if answering is not None and answering["leg"] == "browser"
            else None
        ),
        direction=INBOUND,
        caller=root_leg["from_number"],
        line_user_id=line_user_id,
        voicemail=left,
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
        fields.direction: {"value": DIRECTION_LABELS.get(summary.direction, "")},
    }


def call_log_record(
    summary: CallSummary, record_id: int | None, fields: HistoryFields
) -> dict[str, Any]:
    """The call-log app's record; ``record_id`` None: an inbound call that matched no customer."""
    cells = _cells(summary, fields)
    cells[fields.customer_record] = {"value": "" if record_id is None else str(record_id)}
    return cells


def file_attached(fields: HistoryFields, cells: Mapping[str, Any]) -> bool:
    """Whether a row or record, as kintone returned it, already holds the recording's file
    (only calltrail writes that field: a file there is the call's)."""
    cell = cells.get(fields.recording) if fields.recording is not None else None
    return isinstance(cell, Mapping) and bool(cell.get("value"))


def conversation_cells(
    fields: HistoryFields,
    present: frozenset[str],
    transcript: str | None,
    file_keys: Sequence[str] = (),
    current: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The conversation's cells of a call's row or record (CONTRACT.md section 11): the
    transcript unless ``current`` (the row as kintone returned it) already says the same, and
    the files whose temporary ``file_keys`` were just uploaded. A field the app does not have
    (not in ``present``) is left out."""
    cells: dict[str, Any] = {}
    code = fields.transcript
    if code is not None and code in present and transcript is not None:
        now = (current or {}).get(code)
        if current is None or not isinstance(now, Mapping) or now.get("value") != transcript:
            cells[code] = {"value": transcript}
    code = fields.recording
    if code is not None and code in present and file_keys:
        cells[code] = {"value": [{"fileKey": key} for key in file_keys]}
    return cells
