"""``calltrail costs``: rendering a month's costs (json, csv, table) and reading ``--month``."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal

import pytest

from services.recorder.service_layer.costs import (
    ConversationLine,
    MonthCosts,
    UsageLine,
    parse_month,
    render,
)
from tests.factories import CALLER_ID


def _costs(unrated_legs: int = 1) -> MonthCosts:
    return MonthCosts(
        month="2026-11",
        currency="JPY",
        usage=[
            UsageLine("browser", "client", 3, 5, Decimal("1.25"), 0),
            UsageLine("pstn", "mobile", 2, 75, Decimal("1215.0"), 0),
            UsageLine("pstn", "landline", 1, 2, Decimal("10.8"), 0),
            UsageLine("pstn", "ip_phone", 1, 2, None, unrated_legs),
        ],
        numbers=[CALLER_ID],
        usage_charge=Decimal("1227.05"),
        rental_charge=Decimal("108"),
        total=Decimal("1335.05"),
        unrated_legs=unrated_legs,
    )


# --- json ------------------------------------------------------------------------------------


def test_json_is_parseable_with_decimals_as_exact_strings() -> None:
    doc = json.loads(render(_costs(), "json"))
    assert doc["month"] == "2026-11"
    assert doc["currency"] == "JPY"
    assert doc["usage_charge"] == "1227.05"
    assert doc["rental_charge"] == "108"
    assert doc["total"] == "1335.05"
    assert doc["unrated_legs"] == 1
    assert doc["numbers"] == [CALLER_ID]
    assert doc["usage"][0] == {
        "leg": "browser",
        "destination_type": "client",
        "legs": 3,
        "billable_minutes": 5,
        "charge": "1.25",
        "unrated_legs": 0,
        "direction": "outbound",
    }
    assert doc["usage"][3]["charge"] is None  # unrated, not "0"
    assert Decimal(doc["total"]) == Decimal("1335.05")


def test_json_of_an_empty_month() -> None:
    doc = json.loads(render(MonthCosts(month="2026-12"), "json"))
    assert doc == {
        "month": "2026-12",
        "currency": None,
        "usage": [],
        "numbers": [],
        "usage_charge": "0",
        "rental_charge": "0",
        "total": "0",
        "unrated_legs": 0,
        "conversation": [],
        "unrated_conversation": 0,
    }


# --- csv -------------------------------------------------------------------------------------


def _csv(costs: MonthCosts) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render(costs, "csv"))))


def test_csv_is_parseable_with_usage_rental_and_total_rows() -> None:
    rows = _csv(_costs())
    assert list(rows[0]) == [
        "month",
        "item",
        "leg",
        "destination_type",
        "legs",
        "billable_minutes",
        "charge",
        "currency",
        "direction",
    ]
    assert {row["month"] for row in rows} == {"2026-11"}
    assert {row["currency"] for row in rows} == {"JPY"}
    usage = [row for row in rows if row["item"] == "usage"]
    assert [(r["leg"], r["destination_type"], r["charge"]) for r in usage] == [
        ("browser", "client", "1.25"),
        ("pstn", "mobile", "1215.0"),
        ("pstn", "landline", "10.8"),
        ("pstn", "ip_phone", ""),  # unrated: empty, not 0
    ]
    assert usage[1]["legs"] == "2"
    assert usage[1]["billable_minutes"] == "75"
    rental = [row for row in rows if row["item"] == "number_rental"]
    assert [row["destination_type"] for row in rental] == [CALLER_ID]
    (rental_total,) = [row for row in rows if row["item"] == "rental_total"]
    assert rental_total["charge"] == "108"
    assert rows[-1]["item"] == "total"
    assert rows[-1]["charge"] == "1335.05"


def test_csv_of_an_empty_month_still_has_its_totals() -> None:
    rows = _csv(MonthCosts(month="2026-12"))
    assert [row["item"] for row in rows] == ["rental_total", "total"]
    assert rows[-1]["charge"] == "0"


# --- table -----------------------------------------------------------------------------------


def test_the_table_shows_lines_and_total() -> None:
    text = render(_costs(), "table")
    assert "2026-11" in text
    assert "JPY" in text
    assert "total" in text
    assert "1,335.05" in text
    assert "1,215.00" in text
    assert "108.00" in text
    assert CALLER_ID in text
    assert "unrated" in text  # the ip_phone line's charge


def test_the_table_warns_about_unrated_legs() -> None:
    text = " ".join(render(_costs(unrated_legs=1), "table").split())
    assert "1 ended legs have no rate in the tariff" in text
    assert "calltrail rerate --month 2026-11" in text


def test_the_table_does_not_warn_without_unrated_legs() -> None:
    costs = _costs(unrated_legs=0)
    costs.usage.pop()
    text = render(costs, "table")
    assert "no rate" not in text
    assert "unrated" not in text
    assert "1,335.05" in text


def test_the_table_of_an_empty_month() -> None:
    text = render(MonthCosts(month="2026-12"), "table")
    assert "2026-12" in text
    assert "0.00" in text
    assert "total" in text


# --- --month ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "month"),
    [("2026-11", date(2026, 11, 1)), ("2027-01", date(2027, 1, 1)), ("1999-12", date(1999, 12, 1))],
)
def test_parse_month(text: str, month: date) -> None:
    assert parse_month(text) == month


@pytest.mark.parametrize(
    "text",
    ["2026-13", "2026-00", "26-1x", "26-11", "", "2026", "2026-11-01", "2026-1", "2026/11",
     " 2026-11", "２０２６-11", "0000-01"],
)  # fmt: skip
def test_parse_month_rejects_anything_but_yyyy_mm(text: str) -> None:
    with pytest.raises(ValueError, match="--month must look like 2026-11") as caught:
        parse_month(text)
    assert repr(text) in str(caught.value)


def test_inbound_legs_are_shown_apart_from_outbound_ones() -> None:
    costs = _costs()
    costs.usage.append(UsageLine("pstn", "mobile", 4, 9, None, 4, "inbound"))
    text = render(costs, "table")
    assert "pstn (inbound)" in text
    rows = _csv(costs)
    assert [r["direction"] for r in rows if r["item"] == "usage"][-1] == "inbound"


# --- recordings and transcription (CONTRACT.md section 11) -----------------------------------


def _with_conversation(unrated: bool = False) -> MonthCosts:
    costs = _costs(unrated_legs=0)
    costs.usage.pop()
    costs.conversation = [
        ConversationLine("recording", 3, 7, None if unrated else Decimal("2.1"), 3 * unrated),
        ConversationLine("transcription", 2, 10, Decimal("25.0"), 0),
    ]
    return costs


def test_json_has_a_line_each_for_recordings_and_transcription() -> None:
    doc = json.loads(render(_with_conversation(unrated=True), "json"))
    assert doc["conversation"] == [
        {"item": "recording", "count": 3, "billable_minutes": 7, "charge": None, "unrated": 3},
        {
            "item": "transcription",
            "count": 2,
            "billable_minutes": 10,
            "charge": "25.0",
            "unrated": 0,
        },
    ]
    assert doc["unrated_conversation"] == 3


def test_csv_has_a_row_each_for_recordings_and_transcription() -> None:
    rows = _csv(_with_conversation())
    lines = [r for r in rows if r["item"] in ("recording", "transcription")]
    assert [(r["item"], r["legs"], r["billable_minutes"], r["charge"]) for r in lines] == [
        ("recording", "3", "7", "2.1"),
        ("transcription", "2", "10", "25.0"),
    ]
    assert [r["item"] for r in rows][-2:] == ["rental_total", "total"]


def test_the_table_shows_them_and_warns_when_they_have_no_rate() -> None:
    text = " ".join(render(_with_conversation(unrated=True), "table").split())
    assert "recording" in text
    assert "transcription" in text
    assert "25.00" in text
    assert "3 recordings or transcriptions have no rate in the tariff" in text
    assert "calltrail rerate --month 2026-11" in text
    assert "no rate" not in render(_with_conversation(), "table")
