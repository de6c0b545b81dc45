"""Benchmark: ``calltrail reconcile`` of a month with 10,000 legs, against the Twilio REST
stand-in (real HTTP on 127.0.0.1) and a real PostgreSQL.

    .venv/bin/python bench/reconcile.py [--legs 10000] [--outside 500]

The month's legs are written to ``calls`` (priced, as the recorder leaves them); the stand-in
holds a Twilio call for each (a few priced differently, a few not priced yet) plus ``--outside``
calls of the neighbouring days that the UTC window also returns. The reconcile use case then
runs as the command does (twilio-python in a worker thread, pages of 1000). The stand-in
counts the Calls list requests.

Figures are printed and written to bench/results/reconcile.json.
Targets (issue): at most 15 Calls API requests and under 30 s for 10,000 legs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.devtools.postgres import LocalPostgres  # noqa: E402
from services.devtools.twilio_rest_standin import TwilioStandin, seeded_account  # noqa: E402
from services.recorder.adapters.migrations import upgrade  # noqa: E402
from services.recorder.adapters.repository import make_engine  # noqa: E402
from services.recorder.adapters.twilio_rest import TwilioRest  # noqa: E402
from services.recorder.service_layer.reconcile import run_reconcile  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reconcile.json"
TOKYO = ZoneInfo("Asia/Tokyo")
MONTH = date(2026, 11, 1)
INSERT = """
INSERT INTO calls (call_sid, leg, destination_type, status, status_sequence, direction,
                   started_at, duration_s, billable_minutes, charge, currency, billing_month)
SELECT s, 'pstn', 'mobile', 'completed', 3, 'outbound', t, 60, 1, 16.2, 'JPY', $3
FROM unnest($1::text[], $2::timestamptz[]) AS v(s, t)
"""


async def bench(url: str, legs: int, outside: int) -> dict[str, object]:
    account = seeded_account()
    start = datetime(2026, 11, 1, tzinfo=TOKYO)
    span = timedelta(days=30).total_seconds()
    sids = [f"CA{i:032x}" for i in range(legs)]
    times = [start + timedelta(seconds=span * i / legs) for i in range(legs)]
    for i, (sid, moment) in enumerate(zip(sids, times, strict=True)):
        price = None if i % 500 == 0 else ("-16.3" if i % 100 == 1 else "-16.20000")
        account.add_call(sid, moment, price=price, price_unit="JPY")
    for i in range(outside):  # the UTC days around the month: returned, not ours
        before = i % 2 == 0
        moment = (
            start - timedelta(hours=1 + i % 8)
            if before
            else start + timedelta(days=30, hours=9 + i % 14)
        )
        account.add_call(f"CB{i:032x}", moment.astimezone(UTC), price="-1")

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(INSERT, (sids, times, MONTH))
        async with TwilioStandin(account) as standin:
            rest = TwilioRest(
                account.account_sid, account.api_key, account.api_secret, base_url=standin.base_url
            )
            began = time.perf_counter()
            report = await run_reconcile(engine, rest, MONTH, TOKYO)
            elapsed = time.perf_counter() - began
    finally:
        await engine.dispose()
    calls_requests = account.count("GET", "Calls.json")
    return {
        "legs": legs,
        "calls_in_window_not_ours": outside,
        "calls_api_requests": calls_requests,
        "all_requests": len(account.requests),
        "seconds": round(elapsed, 2),
        "legs_compared": report.legs_compared,
        "legs_differing": len(report.legs_differing),
        "legs_unpriced": report.legs_unpriced,
        "total_twilio": str(report.total_twilio),
        "targets_met": calls_requests <= 15 and elapsed < 30,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=10_000)
    parser.add_argument("--outside", type=int, default=500)
    args = parser.parse_args()
    with LocalPostgres() as postgres:
        name = f"calltrail_bench_{uuid.uuid4().hex[:8]}"
        url = postgres.create_database(name)
        try:
            upgrade(url)
            figures = asyncio.run(bench(url, args.legs, args.outside))
        finally:
            postgres.drop_database(name)
    for key, value in figures.items():
        print(f"{key:>26}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    assert Decimal(str(figures["total_twilio"])) > 0


if __name__ == "__main__":
    main()
