"""Benchmark: the recorder draining events into PostgreSQL, against a bare COPY; and the
end-to-end lag from a callback accepted by the gateway to its row being visible.

    .venv/bin/python bench/recorder.py [--events 200000] [--lag-rate 1000] [--lag-seconds 20]
                                       [--transcripts]

``--transcripts``: the realistic mix of issue 19, a transcript event (one utterance of the call's
transcription) for every status event, in the drain (half its events are utterances) and in the
lag (every other callback is a ``/twilio/transcription`` one). The COPY ceiling stays the
status events' (its tables are the legs'); compare the drain with and without the mix.

1. Drain. Loads ``--events`` events (realistic calls: a dial event, the PSTN leg's callbacks
   and the browser leg's completion; all distinct) into the real broker, then starts
   the recorder as a process (``calltrail recorder``, as deployed) and times it from its first
   recorded event to the last, from its own metrics. The ceiling, in the same run: a bare
   ``COPY`` of exactly the rows the recorder ends up with (every event into a table shaped like
   ``call_events``, every leg, priced, into one shaped like ``calls``), in one transaction.
2. Lag. Gateway and recorder as processes; signed status callbacks at ``--lag-rate`` per second;
   for each, the time from the gateway's 204 to the moment a poller (every 10 ms) first sees its
   row in ``call_events``.

Figures are printed and written to bench/results/recorder.json.
Targets (issue): >= 20,000 events/s, >= 25 % of the COPY rate, lag p99 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from services.common.database import asyncpg_dsn  # noqa: E402
from services.common.events import CallEvent  # noqa: E402
from services.devtools.broker import LocalBroker, free_port  # noqa: E402
from services.devtools.call_flows import answered_call  # noqa: E402
from services.devtools.dev import DEV_PLACEHOLDERS  # noqa: E402
from services.devtools.postgres import LocalPostgres  # noqa: E402
from services.devtools.twilio_player import (  # noqa: E402
    TwilioSigner,
    new_sid,
    status_callback_form,
    transcription_callback_form,
)
from services.recorder.adapters.migrations import upgrade  # noqa: E402
from services.recorder.domain.batch import event_key  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "recorder.json"
PUBLIC_BASE_URL = "https://calltrail.example.com"
# The gateway refuses to start without its settings: the development placeholders will do.
GATEWAY_ENV = {**DEV_PLACEHOLDERS, "PUBLIC_BASE_URL": PUBLIC_BASE_URL}
AUTH_TOKEN = DEV_PLACEHOLDERS["TWILIO_AUTH_TOKEN"]
ACCOUNT_SID = DEV_PLACEHOLDERS["TWILIO_ACCOUNT_SID"]
TARGET_RATE = 20_000
TARGET_RATIO = 0.25
TARGET_LAG_P99_S = 1.0


UTTERANCES = ("お電話ありがとうございます。", "先週の見積もりの件です。", "承知しました。")


def make_events(count: int, transcripts: bool = False) -> list[CallEvent]:
    at = datetime.now(UTC)
    events: list[CallEvent] = []
    while len(events) < count:
        # Six distinct events a call, no repeats: the recorder and the COPY ceiling store
        # exactly the same rows. With the mix, each is followed by one utterance of the call.
        call = answered_call(duration_s=95, at=at)
        if not transcripts:
            events.extend(call)
            continue
        root = call[0].root_call_sid
        for sequence, event in enumerate(call, start=1):
            events.append(event)
            events.append(utterance_event(root, sequence, at))
    return events[:count]


def utterance_event(root: str, sequence: int, at: datetime) -> CallEvent:
    """One ``transcription-content`` callback of the call's transcription, as the gateway
    turns it into an event."""
    from services.gateway.domain.callbacks import transcript_event

    return transcript_event(utterance_form(root, sequence, at), {"direction": "outbound"}, at)


def utterance_form(root: str, sequence: int, at: datetime | None = None) -> dict[str, str]:
    return transcription_callback_form(
        account_sid=ACCOUNT_SID,
        call_sid=root,
        transcription_sid="GT" + root[2:],
        event="transcription-content",
        sequence=sequence,
        track="inbound_track" if sequence % 2 else "outbound_track",
        transcript=UTTERANCES[sequence % len(UTTERANCES)],
        timestamp=at,
    )


async def load_topic(bootstrap: str, topic: str, events: list[CallEvent]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=20,
        max_batch_size=1 << 20,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for event in events:
            pending.append(await producer.send(topic, event.encode(), key=event.key()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def spawn(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", service],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def service_env(broker: LocalBroker, topic: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))}
    env.update(
        KAFKA_BOOTSTRAP=broker.bootstrap,
        KAFKA_IDEMPOTENCE="false",
        KAFKA_TOPIC=topic,
        DATABASE_URL=database_url,
        RECORDER_GROUP=f"{topic}.recorder",
        RECORDER_HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def drain(
    broker: LocalBroker, database_url: str, count: int, workdir: Path, transcripts: bool = False
) -> dict[str, float]:
    topic = f"bench.{uuid.uuid4().hex[:8]}"
    events = make_events(count, transcripts)
    load_s = asyncio.run(load_topic(broker.bootstrap, topic, events))
    print(f"loaded {count:,} events into the broker in {load_s:.1f} s")
    port = free_port()
    recorder = spawn(
        "recorder",
        service_env(broker, topic, database_url, RECORDER_PORT=str(port)),
        workdir / "drain-recorder.log",
    )
    metrics = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        name = "calltrail_recorder_events_total"
        seen = 0.0
        first = None
        deadline = time.monotonic() + 600
        while seen < count and time.monotonic() < deadline:
            seen = metric(metrics, name)
            if seen and first is None:
                first = (time.perf_counter(), seen)
                cpu_start = (
                    cpu_seconds(recorder.pid),
                    postgres_cpu_seconds(),
                    cpu_seconds(os.getpid()),
                )
            time.sleep(0.05)
        finished = time.perf_counter()
        cpu_end = (cpu_seconds(recorder.pid), postgres_cpu_seconds(), cpu_seconds(os.getpid()))
        if first is None or seen < count:
            raise RuntimeError(f"recorded {seen:,.0f} of {count:,} events")
        elapsed = finished - first[0]
        rate = (seen - first[1]) / elapsed
        batch_write_s = metric(metrics, "calltrail_recorder_db_write_seconds_sum")
    finally:
        stop(recorder)
    recorder_cpu, postgres_cpu, bench_cpu = (
        end - start for start, end in zip(cpu_start, cpu_end, strict=True)
    )
    return {
        "events": count,
        "seconds": elapsed,
        "events_per_s": rate,
        "db_write_s": batch_write_s,
        "cpu_percent": {
            "recorder": 100 * recorder_cpu / elapsed,
            "postgres": 100 * postgres_cpu / elapsed,
            "bench": 100 * bench_cpu / elapsed,
        },
    }


async def copy_ceiling(database_url: str, count: int) -> dict[str, float]:
    """COPY the rows the recorder ends up with (every event in ``call_events``, every leg with
    its charge in ``calls``) into empty tables of the same shape, in one transaction."""
    from zoneinfo import ZoneInfo

    from services.recorder.adapters.repository import ALL_COLUMNS, leg_row
    from services.recorder.domain.batch import ReceivedEvent, fold_events, price_leg
    from services.recorder.domain.tariff import parse_tariffs
    from services.recorder.settings import DEFAULT_TARIFF

    events = make_events(count)
    now = datetime.now(UTC)
    event_rows = [
        (
            event_key(e),
            e.call_sid,
            e.root_call_sid,
            e.kind.value,
            e.status.value,
            e.sequence,
            e.received_at,
            e.encode().decode(),
            now,
        )
        for e in events
    ]
    # The legs exactly as the recorder computes them: the same domain code, no database.
    tariffs, zone = parse_tariffs(DEFAULT_TARIFF.read_text()), ZoneInfo("Asia/Tokyo")
    _unique, partial = fold_events([ReceivedEvent(e, "") for e in events])
    leg_rows = [(*leg_row(price_leg(leg, tariffs, zone)), now, now) for leg in partial.values()]
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("CREATE TABLE bench_events (LIKE call_events INCLUDING ALL)")
        await connection.execute("CREATE TABLE bench_calls (LIKE calls INCLUDING ALL)")
        started = time.perf_counter()
        async with connection.transaction():
            await connection.copy_records_to_table(
                "bench_events",
                records=event_rows,
                columns=[
                    "event_key",
                    "call_sid",
                    "root_call_sid",
                    "kind",
                    "status",
                    "sequence",
                    "received_at",
                    "payload",
                    "recorded_at",
                ],
            )
            await connection.copy_records_to_table(
                "bench_calls",
                records=leg_rows,
                columns=[*ALL_COLUMNS, "created_at", "updated_at"],
            )
        elapsed = time.perf_counter() - started
    finally:
        await connection.close()
    return {
        "events": count,
        "legs": len(leg_rows),
        "seconds": elapsed,
        "events_per_s": count / elapsed,
    }


async def lag(
    broker: LocalBroker,
    database_url: str,
    rate: int,
    seconds: int,
    workdir: Path,
    transcripts: bool = False,
) -> dict[str, float]:
    import aiohttp

    topic = f"bench.{uuid.uuid4().hex[:8]}"
    gateway_port, recorder_port = free_port(), free_port()
    env = service_env(
        broker,
        topic,
        database_url,
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(gateway_port),
        RECORDER_PORT=str(recorder_port),
        GATEWAY_SPOOL_PATH=str(workdir / "spool.sqlite3"),
        **GATEWAY_ENV,
    )
    gateway = spawn("gateway", env, workdir / "lag-gateway.log")
    recorder = spawn("recorder", env, workdir / "lag-recorder.log")
    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    accepted: dict[str, float] = {}
    visible: dict[str, float] = {}
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/readyz")
        wait_http(f"http://127.0.0.1:{recorder_port}/readyz")
        base = f"http://127.0.0.1:{gateway_port}"
        connection = await asyncpg.connect(asyncpg_dsn(database_url))
        stop_polling = asyncio.Event()

        async def poll() -> None:
            since = datetime.now(UTC) - timedelta(seconds=5)
            while not stop_polling.is_set():
                rows = await connection.fetch(
                    "SELECT event_key, recorded_at FROM call_events WHERE recorded_at > $1", since
                )
                now = time.perf_counter()
                for key, recorded_at in rows:
                    visible.setdefault(key, now)
                    since = max(since, recorded_at - timedelta(seconds=2))
                await asyncio.sleep(0.01)

        async def send(session: aiohttp.ClientSession, index: int) -> None:
            if transcripts and index % 2:  # every other callback: an utterance
                root = new_sid()
                form = utterance_form(root, 1)
                headers, body = signer.request("/twilio/transcription", form)
                url = base + "/twilio/transcription"
                async with session.post(url, data=body, headers=headers) as r:
                    if r.status == 204:
                        key = f"{root}:transcript:{form['TranscriptionSid']}:"
                        accepted[key + "transcription-content:1"] = time.perf_counter()
                return
            sid = new_sid()
            form = status_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=sid,
                status="ringing",
                sequence=1,
                from_="client:u_1",
                to="+819012345678",
                direction="inbound",
            )
            headers, body = signer.request("/twilio/status", form)
            async with session.post(base + "/twilio/status", data=body, headers=headers) as r:
                if r.status == 204:
                    accepted[f"{sid}:status:ringing:1"] = time.perf_counter()

        poller = asyncio.create_task(poll())
        async with aiohttp.ClientSession() as session:
            # Warm the consumer group's join before measuring.
            await send(session, -1)
            await asyncio.sleep(5)
            accepted.clear()
            tasks = []
            started = time.perf_counter()
            for index in range(rate * seconds):
                target = started + index / rate
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(session, index)))
            await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not set(accepted) <= set(visible):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop_polling.set()
        await poller
        await connection.close()
    finally:
        stop(gateway)
        stop(recorder)
    lags = sorted(visible[k] - t for k, t in accepted.items() if k in visible)
    missing = len(set(accepted) - set(visible))

    def pct(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else float("nan")

    return {
        "rate_per_s": rate,
        "sent": rate * seconds,
        "accepted": len(accepted),
        "missing": missing,
        "p50_s": pct(0.50),
        "p99_s": pct(0.99),
        "max_s": lags[-1] if lags else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--lag-rate", type=int, default=1000)
    parser.add_argument("--lag-seconds", type=int, default=20)
    parser.add_argument(
        "--transcripts", action="store_true", help="a transcript event for every status event"
    )
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"calltrail-bench-{uuid.uuid4().hex[:6]}"  # noqa: S108
    workdir.mkdir(parents=True)
    name = f"calltrail_bench_{uuid.uuid4().hex[:8]}"
    with LocalBroker() as broker, LocalPostgres() as postgres:
        database_url = postgres.create_database(name)
        try:
            upgrade(database_url)
            drained = drain(broker, database_url, args.events, workdir, args.transcripts)
            ceiling = asyncio.run(copy_ceiling(database_url, args.events))
            lagged = asyncio.run(
                lag(
                    broker,
                    database_url,
                    args.lag_rate,
                    args.lag_seconds,
                    workdir,
                    args.transcripts,
                )
            )
        finally:
            postgres.drop_database(name)
    ratio = drained["events_per_s"] / ceiling["events_per_s"]
    result = {
        "benchmark": "recorder drain and end-to-end lag",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "bench/recorder.py " + " ".join(sys.argv[1:]),
        "mix": "a transcript event for every status event" if args.transcripts else "status",
        "cpus": os.cpu_count(),
        "postgres": "embedded" if postgres.embedded else "machine",
        "drain": drained,
        "copy_ceiling": ceiling,
        "ratio": ratio,
        "lag": lagged,
        "targets": {
            "events_per_s": TARGET_RATE,
            "ratio": TARGET_RATIO,
            "lag_p99_s": TARGET_LAG_P99_S,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str))
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    print(
        f"\nrecorder drain   {drained['events_per_s']:>10,.0f} events/s  "
        f"({args.events:,} events in {drained['seconds']:.1f} s)   target {TARGET_RATE:,}: "
        f"{ok(drained['events_per_s'] >= TARGET_RATE)}\n"
        "                 CPU during the drain: "
        + ", ".join(f"{k} {v:.0f}%" for k, v in drained["cpu_percent"].items())
        + "\n"
        f"bare COPY        {ceiling['events_per_s']:>10,.0f} events/s\n"
        f"ratio            {ratio:>10.1%}   target {TARGET_RATIO:.0%}: "
        f"{ok(ratio >= TARGET_RATIO)}\n"
        f"lag at {lagged['rate_per_s']}/s   p50 {lagged['p50_s'] * 1000:.0f} ms, p99 "
        f"{lagged['p99_s'] * 1000:.0f} ms, max {lagged['max_s'] * 1000:.0f} ms, "
        f"{lagged['accepted']:,} accepted, {lagged['missing']} missing   "
        f"target p99 < {TARGET_LAG_P99_S:.0f} s: {ok(lagged['p99_s'] < TARGET_LAG_P99_S)}\n"
        f"written to {RESULTS.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
