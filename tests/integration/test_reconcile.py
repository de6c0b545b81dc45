"""``calltrail reconcile`` against real PostgreSQL and the Twilio REST stand-in."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.devtools.twilio_rest_standin import TwilioStandin
from services.recorder.adapters.repository import make_engine
from services.recorder.service_layer.reconcile import reconcile_month
from services.recorder.settings import DatabaseSettings
from tests.integration.twilio_support import (
    Lines,
    cli_env,
    lines,
    rest_for,
    run_cli,
    serve_standin,
    settings_for,
)

TOKYO = ZoneInfo("Asia/Tokyo")
NOVEMBER = date(2026, 11, 1)
INSERT = """
INSERT INTO calls (call_sid, leg, destination_type, status, status_sequence, direction,
                   started_at, duration_s, billable_minutes, charge, currency, billing_month)
VALUES ($1, $2, $3, 'completed', 3, $4, $5, 60, 1, $6, 'JPY', $7)
"""


def sid(n: int) -> str:
    return f"CA{n:032x}"


# (call_sid, leg, destination, direction, started (Tokyo), our charge, Twilio price, unit)
LEGS: list[tuple[str, str, str, str, datetime, str | None, str | None, str]] = [
    (sid(1), "pstn", "mobile", "outbound", datetime(2026, 11, 3, 10, tzinfo=TOKYO), "16.45",
     "-16.45", "JPY"),
    (sid(2), "pstn", "landline", "outbound", datetime(2026, 11, 4, 10, tzinfo=TOKYO), "5.4",
     "-5.40000", "JPY"),
    (sid(3), "pstn", "landline", "outbound", datetime(2026, 11, 5, 10, tzinfo=TOKYO), "10.8",
     "-11.00", "JPY"),
    (sid(4), "pstn", "ip_phone", "outbound", datetime(2026, 11, 6, 10, tzinfo=TOKYO), None,
     "-3.00", "JPY"),
    (sid(5), "browser", "client", "outbound", datetime(2026, 11, 7, 10, tzinfo=TOKYO), "0.25",
     None, "JPY"),
    (sid(6), "browser", "client", "outbound", datetime(2026, 11, 8, 10, tzinfo=TOKYO), "0.25",
     "-0.00250", "USD"),
    # 00:30 in Tokyo on the 1st is still October in UTC: Twilio must be asked for that day too.
    (sid(7), "pstn", "mobile", "inbound", datetime(2026, 11, 1, 0, 30, tzinfo=TOKYO), "16.2",
     "-16.2", "JPY"),
]  # fmt: skip
NOT_AT_TWILIO = sid(8)  # ours, unknown to Twilio
DECEMBER = sid(9)  # ours, but another month


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandin]:
    async for server in serve_standin():
        yield server


async def _seed(database_url: str, standin: TwilioStandin) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            rows = [
                (s, leg, dest, direction, started, charge)
                for s, leg, dest, direction, started, charge, _, _ in LEGS
            ]
            rows.append(
                (NOT_AT_TWILIO, "sip", "unknown", "inbound", datetime(2026, 11, 9, tzinfo=TOKYO),
                 None)
            )  # fmt: skip
            rows.append(
                (DECEMBER, "pstn", "mobile", "outbound", datetime(2026, 12, 1, 1, tzinfo=TOKYO),
                 "16.2")
            )  # fmt: skip
            for s, leg, dest, direction, started, charge in rows:
                month = date(started.year, started.month, 1)
                amount = Decimal(charge) if charge is not None else None
                await conn.exec_driver_sql(
                    INSERT, (s, leg, dest, direction, started, amount, month)
                )
    finally:
        await engine.dispose()
    for s, leg, _, _, started, _, price, unit in LEGS:
        category = "calls-client" if leg == "browser" else "calls-outbound"
        standin.account.add_call(s, started, price=price, price_unit=unit, category=category)
    standin.account.add_call(
        DECEMBER, datetime(2026, 12, 1, 1, tzinfo=TOKYO), price="-16.2", price_unit="JPY"
    )
    # Someone else's call in the window: not ours, not looked at.
    standin.account.add_call(sid(10), datetime(2026, 11, 10, tzinfo=UTC), price="-99")


async def _stored(
    database_url: str, table: str = "calls", key: str = "call_sid"
) -> dict[str, tuple[Decimal | None, str | None]]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                f"SELECT {key}, twilio_price, twilio_price_unit FROM {table}"  # noqa: S608
            )
            return {sid: (price, unit) for sid, price, unit in (tuple(row) for row in rows)}
    finally:
        await engine.dispose()


async def reconcile(
    database_url: str, standin: TwilioStandin, fmt: str = "json"
) -> tuple[int, Lines]:
    """``reconcile_month`` against the stand-in: its exit code and what it printed."""
    twilio = settings_for(standin)
    printed = lines()
    code = await reconcile_month(
        DatabaseSettings(database_url=database_url),
        twilio,
        NOVEMBER,
        fmt,
        rest=rest_for(twilio),
        out=printed.write_out,
        err=printed.write_err,
    )
    return code, printed


async def test_reconcile_compares_stores_and_reports(
    database_url: str, standin: TwilioStandin
) -> None:
    await _seed(database_url, standin)
    code, printed = await reconcile(database_url, standin)
    assert code == 0, printed.err
    doc = json.loads("".join(printed.out))
    assert doc["month"] == "2026-11"
    assert doc["currency"] == "JPY"
    assert doc["legs_compared"] == 5  # 1, 2, 3, 4, 7
    assert doc["legs_differing"] == [
        {"call_sid": sid(3), "ours": "10.8", "twilio": "11.00", "unit": "JPY"},
        {"call_sid": sid(4), "ours": None, "twilio": "3.00", "unit": "JPY"},
    ]
    assert doc["legs_unpriced"] == 2  # 5 (not priced yet), 8 (unknown to Twilio)
    assert doc["legs_other_currency"] == 1  # 6
    assert Decimal(doc["total_ours"]) == Decimal("16.45") + Decimal("5.4") + Decimal(
        "10.8"
    ) + Decimal("16.2")
    assert Decimal(doc["total_twilio"]) == Decimal("16.45") + Decimal("5.4") + Decimal(
        "11"
    ) + Decimal("3") + Decimal("16.2")
    usage = {line["category"]: line for line in doc["usage"]}
    assert usage["calls-outbound"]["ours_legs"] == 4
    assert usage["calls-inbound"]["ours_legs"] == 1
    assert usage["calls-client"]["twilio_count"] is not None
    assert usage["phonenumbers-local"]["ours_charge"] is not None

    stored = await _stored(database_url)
    assert stored[sid(1)] == (Decimal("16.45"), "JPY")
    assert stored[sid(3)] == (Decimal("11.00"), "JPY")
    assert stored[sid(6)] == (Decimal("0.00250"), "USD")
    assert stored[sid(5)] == (None, None)
    assert stored[NOT_AT_TWILIO] == (None, None)
    assert stored[DECEMBER] == (None, None)  # another month: not touched
    # One request per page: a handful of calls is one page.
    assert standin.account.count("GET", "Calls.json") == 1


async def test_reconcile_cli_formats(database_url: str, standin: TwilioStandin) -> None:
    await _seed(database_url, standin)
    env = {**cli_env(standin), "DATABASE_URL": database_url}
    ran = await run_cli("reconcile", "--month", "2026-11", "--format", "csv", env=env)
    assert ran.code == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(ran.stdout)))
    differing = [r["name"] for r in rows if r["item"] == "leg_differing"]
    assert differing == [sid(3), sid(4)]
    ran = await run_cli("reconcile", "--month", "2026-11", env=env)
    assert ran.code == 0, ran.stderr
    assert "calltrail reconcile 2026-11 (JPY)" in ran.stdout
    assert sid(3) in ran.stdout
    ran = await run_cli("reconcile", "--month", "2026-13", env=env)
    assert ran.code == 2
    assert "--month" in ran.stderr
    ran = await run_cli(
        "reconcile", "--month", "2026-11", env={**env, "TWILIO_API_SECRET": "wrong-secret"}
    )
    assert ran.code == 2
    assert "authentication failed" in ran.stderr


async def test_many_legs_are_read_a_page_at_a_time(
    database_url: str, standin: TwilioStandin
) -> None:
    count = 2500
    start = datetime(2026, 11, 2, tzinfo=TOKYO)
    sids = [f"CA{i:032x}" for i in range(100, 100 + count)]
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                """
                INSERT INTO calls (call_sid, leg, destination_type, status, status_sequence,
                                   started_at, billable_minutes, charge, currency, billing_month)
                SELECT s, 'pstn', 'mobile', 'completed', 3, $2, 1, 16.2, 'JPY', $3
                FROM unnest($1::text[]) AS s
                """,
                (sids, start, NOVEMBER),
            )
    finally:
        await engine.dispose()
    for s in sids:
        standin.account.add_call(s, start, price="-16.2", price_unit="JPY")
    # The first page fails once, the second twice: retried, not skipped.
    standin.account.fail_next(502, method="GET", path="Calls.json?")
    standin.account.fail_next(502, method="GET", path="PageToken=PT1000", times=2)
    code, printed = await reconcile(database_url, standin)
    assert code == 0, printed.err
    doc = json.loads("".join(printed.out))
    assert doc["legs_compared"] == count
    assert doc["legs_differing"] == []
    assert Decimal(doc["total_twilio"]) == Decimal("16.2") * count
    pages = [r for r in standin.account.requests if r.path == "Calls.json"]
    assert [r.status for r in pages] == [502, 200, 502, 502, 200, 200]


async def test_twilio_unreachable_is_one_line(database_url: str, standin: TwilioStandin) -> None:
    standin.account.fail_next(method="GET", path="Calls.json", drop=True, times=10)
    code, printed = await reconcile(database_url, standin, "table")
    assert code == 1
    (line,) = printed.err
    assert line.startswith("calltrail reconcile: ")
    assert printed.out == []


# --- recordings (CONTRACT.md section 11) -----------------------------------------------------

INSERT_RECORDING = """
INSERT INTO recordings (recording_sid, call_sid, status, duration_s, started_at,
                        billable_minutes, charge, currency, billing_month)
VALUES ($1, $2, 'completed', 61, $3, 2, $4, 'JPY', $5)
"""


def rsid(n: int) -> str:
    return f"RE{n:032x}"


# (recording_sid, its call, created (Tokyo), our charge, Twilio price, unit; None: not at Twilio)
RECORDINGS: list[tuple[str, str, datetime, str | None, str | None, str | None]] = [
    (rsid(1), sid(1), datetime(2026, 11, 3, 10, tzinfo=TOKYO), "0.75", "-0.7500", "JPY"),
    (rsid(2), sid(2), datetime(2026, 11, 4, 10, tzinfo=TOKYO), "0.75", "-0.80", "JPY"),
    (rsid(3), sid(3), datetime(2026, 11, 5, 10, tzinfo=TOKYO), None, "-0.75", "JPY"),
    (rsid(4), sid(4), datetime(2026, 11, 6, 10, tzinfo=TOKYO), "0.75", None, "JPY"),
    (rsid(5), sid(5), datetime(2026, 11, 7, 10, tzinfo=TOKYO), "0.75", "-0.005", "USD"),
    (rsid(6), NOT_AT_TWILIO, datetime(2026, 11, 9, tzinfo=TOKYO), "0.75", None, None),
    # A recording of the month's last hours created past midnight UTC on the 1st (09:00 in
    # Tokyo): Twilio is asked with a day's margin past the calls' window.
    (rsid(7), sid(7), datetime(2026, 12, 1, 9, 20, tzinfo=TOKYO), "0.75", "-0.75", "JPY"),
]  # fmt: skip


async def _seed_recordings(database_url: str, standin: TwilioStandin) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            for recording_sid, call_sid, created, charge, _, _ in RECORDINGS:
                amount = Decimal(charge) if charge is not None else None
                await conn.exec_driver_sql(
                    INSERT_RECORDING, (recording_sid, call_sid, created, amount, NOVEMBER)
                )
            # Another month's recording: not compared, not touched.
            await conn.exec_driver_sql(
                INSERT_RECORDING,
                (rsid(9), DECEMBER, datetime(2026, 12, 1, 1, tzinfo=TOKYO), Decimal("0.75"),
                 date(2026, 12, 1)),
            )  # fmt: skip
    finally:
        await engine.dispose()
    for recording_sid, call_sid, created, _, price, unit in RECORDINGS:
        if unit is not None:
            standin.account.add_recording(
                recording_sid, call_sid, created, price=price, price_unit=unit
            )
    standin.account.add_recording(
        rsid(9), DECEMBER, datetime(2026, 12, 1, 1, tzinfo=TOKYO), price="-9", price_unit="JPY"
    )
    # Deleted from Twilio after kintone took it: still listed, with its price.
    standin.account.recordings[rsid(1)].deleted = True


async def test_recordings_are_compared_like_legs(database_url: str, standin: TwilioStandin) -> None:
    await _seed(database_url, standin)
    await _seed_recordings(database_url, standin)
    code, printed = await reconcile(database_url, standin)
    assert code == 0, printed.err
    doc = json.loads("".join(printed.out))
    assert doc["legs_compared"] == 5  # the legs' report is as before
    assert doc["recordings_compared"] == 4  # 1, 2, 3, 7
    assert doc["recordings_differing"] == [
        {"recording_sid": rsid(2), "call_sid": sid(2), "ours": "0.75", "twilio": "0.80",
         "unit": "JPY"},
        {"recording_sid": rsid(3), "call_sid": sid(3), "ours": None, "twilio": "0.75",
         "unit": "JPY"},
    ]  # fmt: skip
    assert doc["recordings_unpriced"] == 2  # 4 (not priced yet), 6 (unknown to Twilio)
    assert doc["recordings_other_currency"] == 1  # 5
    assert Decimal(doc["recordings_total_ours"]) == Decimal("0.75") * 3
    assert Decimal(doc["recordings_total_twilio"]) == Decimal("0.75") * 3 + Decimal("0.80")

    stored = await _stored(database_url, "recordings", "recording_sid")
    assert stored[rsid(1)] == (Decimal("0.7500"), "JPY")
    assert stored[rsid(2)] == (Decimal("0.80"), "JPY")
    assert stored[rsid(5)] == (Decimal("0.005"), "USD")
    assert stored[rsid(4)] == stored[rsid(6)] == (None, None)
    assert stored[rsid(9)] == (None, None)  # another month: not touched
    # One request per page, for the calls and for the recordings.
    assert standin.account.count("GET", "Recordings.json") == 1
    assert standin.account.count("GET", "Calls.json") == 1

    env = {**cli_env(standin), "DATABASE_URL": database_url}
    ran = await run_cli("reconcile", "--month", "2026-11", "--format", "csv", env=env)
    assert ran.code == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(ran.stdout)))
    assert [r["name"] for r in rows if r["item"] == "recording_differing"] == [rsid(2), rsid(3)]
    ran = await run_cli("reconcile", "--month", "2026-11", env=env)
    assert ran.code == 0, ran.stderr
    assert "recordings compared" in ran.stdout
    assert rsid(2) in ran.stdout


async def test_a_month_without_recordings_asks_twilio_for_none(
    database_url: str, standin: TwilioStandin
) -> None:
    await _seed(database_url, standin)
    code, printed = await reconcile(database_url, standin)
    assert code == 0, printed.err
    doc = json.loads("".join(printed.out))
    assert (doc["recordings_compared"], doc["recordings_differing"]) == (0, [])
    assert doc["recordings_total_ours"] == doc["recordings_total_twilio"] == "0"
    assert standin.account.count("GET", "Recordings.json") == 0
