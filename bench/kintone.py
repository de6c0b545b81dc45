"""Benchmark: kintone write-back of 10,000 completed calls, through a kintone stand-in that
answers every request after 50 ms, in both modes.

    .venv/bin/python bench/kintone.py [--calls 10000] [--records 2000] [--latency 0.05]

For each mode the calls are recorded (which writes their outbox jobs, as the recorder does),
then the write-back worker drains the outbox with the default client settings (10 concurrent
requests). The stand-in runs as its own process, so its work does not slow the worker's loop.
Requests are counted by the client (every attempt). Subtable mode is measured twice: calls
spread over ``--records`` customer records (several calls share a record), and one call per
record (the worst case).

Inbound calls (issue 11) are measured the same way, ``--inbound-calls`` of them (default 2,000)
from callers who each have a customer record (phone numbers written in several forms), the
customer app holding ``--records`` customers: every call needs its one customer lookup (a
records query), then its write.

Missed calls (issue 20) with ``MISSED_CALL_NOTIFY`` set, ``--missed-calls`` of them (default
500) from callers with a customer record each: every call's lookup, its row, and one comment on
each matched record. Measured twice: clean, and with ``--lost-answers`` comment posts (default
a tenth) stored by kintone but answered 500, whose retries read the record's comments first.
Target (issue): the comment path adds at most 2 requests per missed call and record.

Figures are printed and written to bench/results/kintone.json.
Targets (issue): subtable <= 2 requests per call (fewer when calls share a record); app mode
<= 1 request per 100 calls; app-mode drain < 60 s. Inbound: at most one lookup per call, and
write requests per call no more than outbound (<= 2 in all in subtable mode; <= 1 write per
100 calls in app mode, besides the lookups).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from services.common.logging import configure_logging  # noqa: E402
from services.devtools.broker import free_port  # noqa: E402
from services.devtools.call_flows import answered_call  # noqa: E402
from services.devtools.kintone_standin import (  # noqa: E402
    KintoneDomain,
    add_call_log_app,
    add_customer_app,
    init_app,
)
from services.devtools.postgres import LocalPostgres  # noqa: E402
from services.recorder.adapters.kintone import KintoneClient  # noqa: E402
from services.recorder.adapters.migrations import upgrade  # noqa: E402
from services.recorder.adapters.outbox import KintoneOutbox  # noqa: E402
from services.recorder.adapters.repository import CallRepository, make_engine  # noqa: E402
from services.recorder.domain.batch import ReceivedEvent  # noqa: E402
from services.recorder.domain.outbox import OutboxState  # noqa: E402
from services.recorder.domain.tariff import parse_tariffs  # noqa: E402
from services.recorder.service_layer.recording import CallRecorder  # noqa: E402
from services.recorder.service_layer.writeback import WritebackWorker  # noqa: E402
from services.recorder.settings import DEFAULT_TARIFF, KintoneSettings  # noqa: E402
from tests.inbound_calls import inbound_call  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "kintone.json"
CUSTOMERS, CALL_LOG = 10, 20
TOKENS = "bench-customers,bench-call-log"


def customer_number(i: int) -> str:
    """Customer ``i``'s mobile number, E.164: distinct for i < 10,000, groups varying."""
    return f"+8190{2000 + (i * 7) % 7919:04d}{i % 10_000:04d}"


def written_form(e164: str, i: int) -> str:
    """How customer ``i``'s number is written on their record: the forms vary."""
    national = "0" + e164[3:]
    forms = (
        f"{national[:3]}-{national[3:7]}-{national[7:]}",
        national,
        e164,
        f"+81 {national[1:3]} {national[3:7]} {national[7:]}",
    )
    return forms[i % len(forms)]


NOTIFY = "bench-sato"  # the user missed calls are told to
COMMENT = "/record/comment.json"


def serve_standin(port: int, records: int, latency: float, lost: int = 0) -> None:
    """The stand-in process: a customers app with ``records`` records (each with its phone
    number, in varying forms), and a call-log app; the first ``lost`` comment posts are
    stored and answered 500."""
    domain = KintoneDomain(latency_s=latency)
    domain.add_entity(NOTIFY)
    domain.fail_next(*[500] * lost, after_apply=True, path=COMMENT)
    add_customer_app(domain, CUSTOMERS, "bench-customers")
    for i in range(records):
        domain.add_record(
            CUSTOMERS,
            {
                "顧客名": {"value": f"顧客{i + 1}"},
                "電話番号": {"value": written_form(customer_number(i), i)},
            },
        )
    add_call_log_app(domain, CALL_LOG, "bench-call-log")
    web.run_app(init_app(domain), host="127.0.0.1", port=port, print=None, access_log=None)


def start_standin(
    records: int, latency: float, lost: int = 0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    standin = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--records", str(records)]  # noqa: RUF005
        + ["--latency", str(latency), "--lost-answers", str(lost)]
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/", timeout=1)  # noqa: S310 - local
        except urllib.error.HTTPError:
            return standin, base  # it answers (404): up
        except OSError:
            time.sleep(0.1)
    standin.kill()
    raise RuntimeError("kintone stand-in did not start")


def run_mode(
    database_url: str,
    mode: str,
    calls: int,
    records: int,
    latency: float,
    *,
    inbound: bool = False,
    missed: bool = False,
    lost: int = 0,
) -> dict[str, float]:
    standin, base = start_standin(records, latency, lost)
    try:
        result = asyncio.run(
            drain_mode(
                database_url, base, mode, calls, records, inbound=inbound or missed, missed=missed
            )
        )
        return result | {"lost_answers": lost}
    finally:
        standin.terminate()
        standin.wait(timeout=10)


async def drain_mode(
    database_url: str,
    base: str,
    mode: str,
    calls: int,
    records: int,
    *,
    inbound: bool = False,
    missed: bool = False,
) -> dict[str, float]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("TRUNCATE calls, call_events, kintone_outbox")
        recorder = CallRecorder(
            CallRepository(engine),
            parse_tariffs(DEFAULT_TARIFF.read_text()),
            ZoneInfo("Asia/Tokyo"),
            writeback_delay_s=0,
            customer_app=CUSTOMERS,
        )
        at = datetime.now(UTC)
        if inbound:
            events = [
                event
                for i in range(calls)
                for event in inbound_call(
                    caller=customer_number(i % records),
                    talk_s=30 + i % 300,
                    at=at,
                    outcome="missed" if missed else None,
                ).events
            ]
        else:
            events = [
                event
                for i in range(calls)
                for event in answered_call(
                    app_id=str(CUSTOMERS),
                    record_id=str(i % records + 1),
                    duration_s=30 + i % 300,
                    at=at,
                )
            ]
        for start in range(0, len(events), 6000):
            batch = events[start : start + 6000]
            await recorder.record_events([ReceivedEvent(e, e.encode().decode()) for e in batch])
        settings = KintoneSettings(
            kintone_writeback=mode,
            kintone_base_url=base,
            kintone_api_token=TOKENS,
            kintone_call_log_app=CALL_LOG,
            kintone_customer_app=CUSTOMERS,
            missed_call_notify=NOTIFY if missed else "",
        )
        counted = 0
        # Requests by what they are: lookups (GET records), comment posts and comment reads.
        by_api = {
            ("GET", "records"): 0,
            ("POST", "record/comment"): 0,
            ("GET", "record/comments"): 0,
        }

        def count(_app: int, _outcome: str) -> None:
            nonlocal counted
            counted += 1

        async with KintoneClient(base, settings.kintone_tokens, on_request=count) as client:
            request = client._request

            async def counted_by_api(method: str, api: str, *args: Any, **kwargs: Any) -> Any:
                if (method, api) in by_api:
                    by_api[(method, api)] += 1
                return await request(method, api, *args, **kwargs)

            client._request = counted_by_api  # type: ignore[method-assign]
            outbox = KintoneOutbox(engine)
            worker = WritebackWorker(outbox, client, settings)
            started = time.perf_counter()
            while await worker.run_once():
                pass
            # Jobs whose comment answer was lost retry after a backoff: make them due now.
            while (await outbox.status()).counts[OutboxState.PENDING]:
                async with engine.begin() as conn:
                    await conn.exec_driver_sql("UPDATE kintone_outbox SET available_at = now()")
                await worker.run_once()
            elapsed = time.perf_counter() - started
        lookups = by_api[("GET", "records")]
        posts, reads = by_api[("POST", "record/comment")], by_api[("GET", "record/comments")]
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT state, count(*) FROM kintone_outbox GROUP BY state"
            )
            states = {state: n for state, n in map(tuple, rows)}
            unmatched = (
                await conn.exec_driver_sql(
                    "SELECT count(*) FROM kintone_outbox WHERE matched_record_ids = '{}'"
                )
            ).scalar()
            matched = (
                await conn.exec_driver_sql(
                    "SELECT coalesce(sum(cardinality(matched_record_ids)), 0) FROM kintone_outbox"
                )
            ).scalar()
    finally:
        await engine.dispose()
    return {
        "mode": f"{mode}-missed" if missed else f"{mode}-in" if inbound else mode,
        "calls": calls,
        "records": records,
        "requests": counted,
        "requests_per_call": counted / calls,
        "lookups_per_call": lookups / calls,
        "writes_per_call": (counted - lookups) / calls,
        "seconds": elapsed,
        "done": states.get("done", 0),
        "not_done": calls - states.get("done", 0),
        "unmatched": int(unmatched or 0),
        "comment_posts": posts,
        "comment_reads": reads,
        "comment_requests_per_call_record": (posts + reads) / max(int(matched or 0), 1),
    }


def measure(args: argparse.Namespace) -> list[dict[str, float]]:
    name = f"calltrail_bench_{uuid.uuid4().hex[:8]}"
    with LocalPostgres() as postgres:
        database_url = postgres.create_database(name)
        try:
            upgrade(database_url)
            inbound = args.inbound_calls
            outbound = (
                []
                if args.inbound_only
                else [
                    run_mode(database_url, "subtable", args.calls, args.records, args.latency),
                    run_mode(database_url, "subtable", args.calls, args.calls, args.latency),
                    run_mode(database_url, "app", args.calls, args.records, args.latency),
                ]
            )
            inbound_runs = [
                run_mode(
                    database_url, "subtable", inbound, args.records, args.latency, inbound=True
                ),
                run_mode(database_url, "app", inbound, args.records, args.latency, inbound=True),
            ]
            missed = args.missed_calls
            lost = missed // 10 if args.lost_answers is None else args.lost_answers
            missed_runs = [
                run_mode(database_url, mode, missed, args.records, args.latency, missed=True)
                for mode in ("subtable", "app")
            ] + [
                run_mode(
                    database_url,
                    "subtable",
                    missed,
                    args.records,
                    args.latency,
                    missed=True,
                    lost=lost,
                )
            ]
            return outbound + inbound_runs + missed_runs
        finally:
            postgres.drop_database(name)


def _lost(result: dict[str, float]) -> str:
    return f" ({result['lost_answers']:.0f} answers lost)" if result["lost_answers"] else ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--inbound-calls", type=int, default=2_000)
    parser.add_argument("--inbound-only", action="store_true", help="skip the outbound runs")
    parser.add_argument("--missed-calls", type=int, default=500)
    parser.add_argument("--lost-answers", type=int, help="default: a tenth of --missed-calls")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # As in production (JSON lines), but quiet: one line per call written would be 10,000.
    configure_logging("WARNING")
    if args.serve:
        serve_standin(args.serve, args.records, args.latency, args.lost_answers or 0)
        return 0
    results = measure(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "latency_s": args.latency,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"\nkintone write-back, stand-in latency {args.latency * 1000:.0f} ms, 10 in flight")
    header = ("mode", "calls", "records", "requests", "req/call", "lookup/c", "write/c")
    print("{:<16}{:>8}{:>9}{:>10}{:>10}{:>10}{:>10}{:>9}{:>8}".format(*header, "drain s", "done"))
    for r in results:
        print(
            f"{r['mode']:<16}{r['calls']:>8,}{r['records']:>9,}{r['requests']:>10,}"
            f"{r['requests_per_call']:>10.3f}{r['lookups_per_call']:>10.3f}"
            f"{r['writes_per_call']:>10.4f}{r['seconds']:>9.1f}{r['done']:>8,}"
        )
    *_, sub_in, app_in, sub_missed, app_missed, lossy = results
    print(
        "missed calls, comment requests per call and record (posts, reads): "
        + "; ".join(
            f"{r['mode']}{_lost(r)}"
            f" {r['comment_requests_per_call_record']:.3f}"
            f" ({r['comment_posts']:,}, {r['comment_reads']:,})"
            for r in (sub_missed, app_missed, lossy)
        )
        + "; <= 2: "
        + ("ok" if lossy["comment_requests_per_call_record"] <= 2 else "MISSED")
    )
    print(
        f"inbound: unmatched {sub_in['unmatched']} and {app_in['unmatched']} (expected 0); "
        f"subtable <= 2 req/call: "
        f"{'ok' if sub_in['requests_per_call'] <= 2 else 'MISSED'}; <= 1 lookup/call: "
        f"{'ok' if max(sub_in['lookups_per_call'], app_in['lookups_per_call']) <= 1 else 'MISSED'}"
        f"; app <= 0.01 writes/call: {'ok' if app_in['writes_per_call'] <= 0.01 else 'MISSED'}"
    )
    if args.inbound_only:
        print(f"written to {RESULTS.relative_to(ROOT)}")
        return 0
    shared, single, app = results[:3]
    print(
        f"targets: subtable <= 2 req/call: {'ok' if single['requests_per_call'] <= 2 else 'MISSED'}"
        f" (shared records {shared['requests_per_call']:.2f}); app <= 0.01 req/call: "
        f"{'ok' if app['requests_per_call'] <= 0.01 else 'MISSED'}; app drain < 60 s: "
        f"{'ok' if app['seconds'] < 60 else 'MISSED'}\nwritten to {RESULTS.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
