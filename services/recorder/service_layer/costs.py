"""``calltrail costs --month YYYY-MM``: the month's charges, from the same tables and view the
dashboards read: the legs, then the calls' recordings and transcription (a line each), number
rental, the total."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.recorder.adapters.repository import make_engine
from services.recorder.settings import DatabaseSettings

MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
USAGE = """
SELECT leg, destination_type, currency, count(*) AS legs,
       coalesce(sum(billable_minutes), 0) AS minutes, sum(charge) AS charge,
       count(*) FILTER (WHERE charge IS NULL) AS unrated,
       coalesce(direction, 'outbound') AS direction
FROM calls
WHERE billing_month = $1 AND billable_minutes IS NOT NULL
GROUP BY leg, destination_type, currency, coalesce(direction, 'outbound')
ORDER BY direction DESC, leg, destination_type
"""
# Recordings and transcriptions, priced (done) in the month: a line each (CONTRACT.md s. 11).
CONVERSATION = """
SELECT item, currency, count(*), coalesce(sum(billable_minutes), 0), sum(charge),
       count(*) FILTER (WHERE charge IS NULL)
FROM (
    SELECT 'recording' AS item, currency, billable_minutes, charge FROM recordings
    WHERE billing_month = $1 AND billable_minutes IS NOT NULL
    UNION ALL
    SELECT 'transcription', currency, billable_minutes, charge FROM transcriptions
    WHERE billing_month = $1 AND billable_minutes IS NOT NULL
) priced
GROUP BY item, currency
ORDER BY item
"""
TOTALS = """
SELECT usage_charge, rental_charge, total, currency, unrated_legs
FROM monthly_charges WHERE month = $1
"""
NUMBERS = """
SELECT e164 FROM numbers
WHERE held_from < ($1::date + interval '1 month') AND coalesce(held_until, $1) >= $1
ORDER BY e164
"""


@dataclass(frozen=True, slots=True)
class UsageLine:
    leg: str
    destination_type: str
    legs: int
    billable_minutes: int
    charge: Decimal | None  # None when every leg of the line is unrated
    unrated_legs: int
    direction: str = "outbound"  # of the calls the legs belong to: outbound or inbound


@dataclass(frozen=True, slots=True)
class ConversationLine:
    item: str  # recording | transcription
    count: int  # recordings, or transcriptions
    billable_minutes: int  # a transcription's: the call's started minutes, per track
    charge: Decimal | None  # None when every one of the line is unrated
    unrated: int


@dataclass(slots=True)
class MonthCosts:
    month: str
    currency: str | None = None
    usage: list[UsageLine] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    usage_charge: Decimal = Decimal(0)
    rental_charge: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    unrated_legs: int = 0
    conversation: list[ConversationLine] = field(default_factory=list)

    @property
    def unrated_conversation(self) -> int:
        return sum(line.unrated for line in self.conversation)


def parse_month(text: str) -> date:
    try:
        if MONTH.fullmatch(text) is None:
            raise ValueError(text)
        return date(int(text[:4]), int(text[5:]), 1)
    except ValueError:
        raise ValueError(f"--month must look like 2026-11, not {text!r}") from None


async def month_costs(engine: AsyncEngine, month: date) -> MonthCosts:
    costs = MonthCosts(month=month.strftime("%Y-%m"))
    async with engine.connect() as conn:
        for row in await conn.exec_driver_sql(USAGE, (month,)):
            leg, destination, currency, legs, minutes, charge, unrated, direction = tuple(row)
            costs.currency = costs.currency or currency
            costs.usage.append(
                UsageLine(leg, destination, legs, minutes, charge, unrated, direction)
            )
        for row in await conn.exec_driver_sql(CONVERSATION, (month,)):
            item, currency, count, minutes, charge, unrated = tuple(row)
            costs.currency = costs.currency or currency
            costs.conversation.append(ConversationLine(item, count, minutes, charge, unrated))
        costs.numbers = [row[0] for row in await conn.exec_driver_sql(NUMBERS, (month,))]
        totals = (await conn.exec_driver_sql(TOTALS, (month,))).first()
    if totals is not None:
        (costs.usage_charge, costs.rental_charge, costs.total, currency, costs.unrated_legs) = (
            tuple(totals)
        )
        costs.currency = costs.currency or currency
    return costs


async def costs_report(settings: DatabaseSettings, month: date) -> MonthCosts:
    """``calltrail costs``: the month's costs from the database ``settings`` name."""
    engine = make_engine(settings.database_url)
    try:
        return await month_costs(engine, month)
    finally:
        await engine.dispose()


def money(value: Decimal | None) -> str:
    return "unrated" if value is None else f"{value:,.2f}"


def render(costs: MonthCosts, fmt: str) -> str:
    if fmt == "json":
        doc = {**asdict(costs), "unrated_conversation": costs.unrated_conversation}
        return orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2).decode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
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
        )
        for line in costs.usage:
            writer.writerow(
                [
                    costs.month,
                    "usage",
                    line.leg,
                    line.destination_type,
                    line.legs,
                    line.billable_minutes,
                    "" if line.charge is None else line.charge,
                    costs.currency,
                    line.direction,
                ]
            )
        for item in costs.conversation:
            writer.writerow(
                [
                    costs.month,
                    item.item,
                    "",
                    "",
                    item.count,
                    item.billable_minutes,
                    "" if item.charge is None else item.charge,
                    costs.currency,
                    "",
                ]
            )
        for number in costs.numbers:
            writer.writerow(
                [costs.month, "number_rental", "", number, "", "", "", costs.currency, ""]
            )
        writer.writerow(
            [costs.month, "rental_total", "", "", "", "", costs.rental_charge, costs.currency, ""]
        )
        writer.writerow([costs.month, "total", "", "", "", "", costs.total, costs.currency, ""])
        return out.getvalue()
    currency = costs.currency or ""
    table = Table(title=f"calltrail costs {costs.month} ({currency})")
    for name in ("leg", "destination", "legs", "minutes", "charge"):
        table.add_column(name, justify="right" if name in ("legs", "minutes", "charge") else "left")
    for line in costs.usage:
        table.add_row(
            line.leg if line.direction != "inbound" else f"{line.leg} (inbound)",
            line.destination_type,
            str(line.legs),
            str(line.billable_minutes),
            money(line.charge),
        )
    for item in costs.conversation:
        table.add_row(
            item.item, "", str(item.count), str(item.billable_minutes), money(item.charge)
        )
    table.add_section()
    table.add_row("usage", "", "", "", money(costs.usage_charge))
    table.add_row(
        "number rental", ", ".join(costs.numbers) or "-", "", "", money(costs.rental_charge)
    )
    table.add_row("total", "", "", "", money(costs.total))
    console = Console(record=True, width=100)
    with console.capture() as capture:
        console.print(table)
        if costs.unrated_legs:
            console.print(
                f"[bold yellow]{costs.unrated_legs} ended legs have no rate in the tariff[/] and "
                "are not in the total (charge null): add their destination to the tariff file, "
                f"then `calltrail rerate --month {costs.month}`."
            )
        if costs.unrated_conversation:
            console.print(
                f"[bold yellow]{costs.unrated_conversation} recordings or transcriptions have "
                "no rate in the tariff[/] and are not in the total (charge null): add "
                "`recording` and `transcription` to its per_minute table, then "
                f"`calltrail rerate --month {costs.month}`."
            )
    return capture.get()
