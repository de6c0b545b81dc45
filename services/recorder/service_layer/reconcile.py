"""``calltrail reconcile --month YYYY-MM``: each leg's computed charge against what Twilio billed,
and each recording's (CONTRACT.md section 11) against the ``price`` of Twilio's Recordings.

Our legs of the month (``billing_month``, in ``BILLING_TZ``) come from PostgreSQL; Twilio's
prices from its Calls list over the UTC days that cover the month, one request per page of
1000 (never one per leg); the month's Usage Records go next to calltrail's own categories.
What Twilio billed is stored in ``calls.twilio_price`` / ``twilio_price_unit`` (positive, in
Twilio's unit). The month's recordings, when it has any, are compared the same way with the
Recordings list (by ``DateCreated`` over the same days and one more, deleted ones included),
their prices stored in ``recordings.twilio_price``. The report renders as a table, JSON or
CSV, as ``calltrail costs`` does.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.recorder.adapters.repository import make_engine
from services.recorder.adapters.twilio_rest import TwilioError, TwilioRest
from services.recorder.domain.reconcile import (
    NUMBERS,
    OurLeg,
    OurRecording,
    OurUsage,
    Reconciliation,
    add_recordings,
    reconcile,
    side_by_side,
    stored_prices,
    stored_recording_prices,
    usage_category,
    usage_window,
)
from services.recorder.domain.reconcile import month_window as calls_window
from services.recorder.service_layer.costs import money, month_costs
from services.recorder.service_layer.provisioning import explain
from services.recorder.settings import DatabaseSettings, TwilioApiSettings

Write = Callable[[str], None]

LEGS = """
SELECT call_sid, charge, currency FROM calls WHERE billing_month = $1 ORDER BY call_sid
"""
USAGE = """
SELECT leg, billed_as, count(*), coalesce(sum(billable_minutes), 0), sum(charge)
FROM (
    -- Twilio bills a leg it dialled (a forward of an inbound call too) as outbound: only the
    -- root leg of an inbound call is an inbound leg to Twilio.
    SELECT leg, billable_minutes, charge,
           CASE WHEN parent_call_sid IS NULL AND direction = 'inbound'
                THEN 'inbound' ELSE 'outbound' END AS billed_as
    FROM calls WHERE billing_month = $1
) legs GROUP BY leg, billed_as
"""
RECORDINGS = """
SELECT recording_sid, call_sid, charge, currency FROM recordings
WHERE billing_month = $1 ORDER BY recording_sid
"""
TARIFF_CURRENCY = """
SELECT currency FROM tariffs WHERE effective_from <= $1 ORDER BY effective_from DESC LIMIT 1
"""
STORE = """
UPDATE calls AS c SET twilio_price = v.price, twilio_price_unit = v.unit, updated_at = now()
FROM unnest($1::text[], $2::numeric[], $3::text[]) AS v(call_sid, price, unit)
WHERE c.call_sid = v.call_sid
  AND (c.twilio_price IS DISTINCT FROM v.price OR c.twilio_price_unit IS DISTINCT FROM v.unit)
"""
STORE_RECORDINGS = """
UPDATE recordings AS r
SET twilio_price = v.price, twilio_price_unit = v.unit, updated_at = now()
FROM unnest($1::text[], $2::numeric[], $3::text[]) AS v(recording_sid, price, unit)
WHERE r.recording_sid = v.recording_sid
  AND (r.twilio_price IS DISTINCT FROM v.price OR r.twilio_price_unit IS DISTINCT FROM v.unit)
"""
# A recording is created during its call: one that started late on the month's last day may
# be created the next (UTC) day. Calls are shorter than this.
RECORDING_LAG = timedelta(days=1)
SHOWN_DIFFERENCES = 50  # the table lists this many differing legs; json and csv list all


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_reconcile(
    engine: AsyncEngine, rest: TwilioRest, month: date, zone: ZoneInfo
) -> Reconciliation:
    async with engine.connect() as conn:
        # tuple(row): SQLAlchemy types a raw row as a 1-tuple
        ours = [OurLeg(*tuple(row)) for row in await conn.exec_driver_sql(LEGS, (month,))]
        our_recordings = [
            OurRecording(*tuple(row)) for row in await conn.exec_driver_sql(RECORDINGS, (month,))
        ]
        by_category: dict[str, list[int | Decimal | None]] = {}
        for row in await conn.exec_driver_sql(USAGE, (month,)):
            leg, direction, legs, minutes, charge = tuple(row)
            line = by_category.setdefault(usage_category(leg, direction), [0, 0, None])
            line[0] = int(line[0] or 0) + legs
            line[1] = int(line[1] or 0) + minutes
            if charge is not None:
                line[2] = Decimal(line[2] or 0) + charge
        tariff_currency = (await conn.exec_driver_sql(TARIFF_CURRENCY, (month,))).scalar()
    costs = await month_costs(engine, month)

    after, before = calls_window(month, zone)
    calls = {call.sid: call for call in await rest.calls_started(after, before)}
    recordings = (
        {r.sid: r for r in await rest.recordings_created(after, before + RECORDING_LAG)}
        if our_recordings
        else {}
    )
    usage_records = await rest.usage_records(*usage_window(month))

    currencies = Counter(leg.currency for leg in ours if leg.currency)
    currency = currencies.most_common(1)[0][0] if currencies else tariff_currency
    report = reconcile(month.strftime("%Y-%m"), currency, ours, calls)
    add_recordings(report, our_recordings, recordings)

    async with engine.begin() as conn:
        for statement, prices in (
            (STORE, stored_prices(ours, calls)),
            (STORE_RECORDINGS, stored_recording_prices(our_recordings, recordings)),
        ):
            await conn.exec_driver_sql(
                statement,
                (
                    [p.call_sid for p in prices],
                    [p.price for p in prices],
                    [p.unit for p in prices],
                ),
            )
    our_usage = [
        OurUsage(category, int(legs or 0), int(minutes or 0), Decimal(charge) if charge else None)
        for category, (legs, minutes, charge) in by_category.items()
    ]
    our_usage.append(OurUsage(NUMBERS, len(costs.numbers), 0, costs.rental_charge))
    report.usage = side_by_side(our_usage, usage_records)
    return report


async def reconcile_month(
    database: DatabaseSettings,
    twilio: TwilioApiSettings,
    month: date,
    fmt: str,
    *,
    rest: TwilioRest | None = None,
    out: Write = _stdout,
    err: Write = _stderr,
) -> int:
    """The command: 0 reported, 1 Twilio failed, 2 authentication failed."""
    rest = rest or TwilioRest.from_settings(twilio)
    engine = make_engine(database.database_url)
    try:
        report = await run_reconcile(engine, rest, month, database.zone)
    except TwilioError as exc:
        err(f"calltrail reconcile: reading Twilio's calls and usage: {explain(exc)}")
        return 2 if exc.auth_failed else 1
    finally:
        await engine.dispose()
    out(render(report, fmt))
    return 0


def _amount(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def render(report: Reconciliation, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return _csv(report)
    return _table(report)


def _csv(report: Reconciliation) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["month", "item", "name", "legs", "ours", "twilio", "unit"])
    month, currency = report.month, report.currency or ""
    writer.writerow([month, "legs_compared", "", report.legs_compared, "", "", currency])
    writer.writerow([month, "legs_unpriced", "", report.legs_unpriced, "", "", ""])
    writer.writerow([month, "legs_other_currency", "", report.legs_other_currency, "", "", ""])
    for d in report.legs_differing:
        writer.writerow([month, "leg_differing", d.call_sid, 1, _amount(d.ours), d.twilio, d.unit])
    writer.writerow(
        [month, "total", "", report.legs_compared, report.total_ours, report.total_twilio, currency]
    )
    writer.writerow(
        [month, "recordings_compared", "", report.recordings_compared, "", "", currency]
    )
    writer.writerow([month, "recordings_unpriced", "", report.recordings_unpriced, "", "", ""])
    writer.writerow(
        [month, "recordings_other_currency", "", report.recordings_other_currency, "", "", ""]
    )
    for r in report.recordings_differing:
        writer.writerow(
            [month, "recording_differing", r.recording_sid, 1, _amount(r.ours), r.twilio, r.unit]
        )
    writer.writerow(
        [
            month,
            "recordings_total",
            "",
            report.recordings_compared,
            report.recordings_total_ours,
            report.recordings_total_twilio,
            currency,
        ]
    )
    for line in report.usage:
        writer.writerow(
            [
                month,
                "usage",
                line.category,
                line.ours.legs if line.ours else "",
                _amount(line.ours.charge) if line.ours else "",
                _amount(abs(line.twilio.price)) if line.twilio and line.twilio.price else "",
                (line.twilio.price_unit or "") if line.twilio else "",
            ]
        )
    return out.getvalue()


def _table(report: Reconciliation) -> str:
    currency = report.currency or ""
    summary = Table(title=f"calltrail reconcile {report.month} ({currency})")
    summary.add_column("legs")
    summary.add_column("count", justify="right")
    summary.add_column("ours", justify="right")
    summary.add_column("Twilio", justify="right")
    summary.add_row(
        "compared",
        str(report.legs_compared),
        money(report.total_ours),
        money(report.total_twilio),
    )
    summary.add_row("differing", str(len(report.legs_differing)), "", "")
    summary.add_row("not priced by Twilio yet", str(report.legs_unpriced), "", "")
    summary.add_row("priced in another currency", str(report.legs_other_currency), "", "")
    summary.add_section()
    summary.add_row(
        "recordings compared",
        str(report.recordings_compared),
        money(report.recordings_total_ours),
        money(report.recordings_total_twilio),
    )
    summary.add_row("recordings differing", str(len(report.recordings_differing)), "", "")
    summary.add_row("recordings not priced by Twilio yet", str(report.recordings_unpriced), "", "")
    summary.add_row(
        "recordings priced in another currency", str(report.recordings_other_currency), "", ""
    )

    differing = Table(title="legs whose charge differs from Twilio's price")
    for name in ("call_sid", "ours", "Twilio", "unit"):
        differing.add_column(name, justify="left" if name == "call_sid" else "right")
    for d in report.legs_differing[:SHOWN_DIFFERENCES]:
        differing.add_row(d.call_sid, money(d.ours), money(d.twilio), d.unit)

    recordings = Table(title="recordings whose charge differs from Twilio's price")
    for name in ("recording_sid", "call_sid", "ours", "Twilio", "unit"):
        recordings.add_column(name, justify="left" if name.endswith("sid") else "right")
    for r in report.recordings_differing[:SHOWN_DIFFERENCES]:
        recordings.add_row(r.recording_sid, r.call_sid, money(r.ours), money(r.twilio), r.unit)

    usage = Table(title="usage: calltrail's legs and rental against Twilio's Usage Records")
    for name in ("category", "legs", "minutes", "ours", "Twilio count", "usage", "Twilio price"):
        usage.add_column(name, justify="left" if name == "category" else "right")
    for line in report.usage:
        record = line.twilio
        usage.add_row(
            line.category,
            str(line.ours.legs) if line.ours else "-",
            str(line.ours.minutes) if line.ours else "-",
            money(line.ours.charge) if line.ours else "-",
            _amount(record.count) if record else "-",
            f"{_amount(record.usage)} {record.usage_unit}" if record else "-",
            f"{money(abs(record.price)) if record.price is not None else '-'} "
            f"{record.price_unit or ''}"
            if record
            else "-",
        )
    console = Console(record=True, width=110)
    with console.capture() as capture:
        console.print(summary)
        if report.legs_differing:
            console.print(differing)
            hidden = len(report.legs_differing) - SHOWN_DIFFERENCES
            if hidden > 0:
                console.print(f"… and {hidden} more (--format csv or json lists them all)")
        if report.recordings_differing:
            console.print(recordings)
            hidden = len(report.recordings_differing) - SHOWN_DIFFERENCES
            if hidden > 0:
                console.print(f"… and {hidden} more (--format csv or json lists them all)")
        console.print(usage)
        console.print(
            "Usage Records count GMT days; the month above is in BILLING_TZ, so the two can "
            "differ by the calls of the zone's offset at either end."
        )
    return capture.get()
