"""Benchmark: the gateway where Twilio waits, against a bare aiohttp app, with a real broker.

    .venv/bin/python bench/gateway.py [--seconds 10] [--connections 64] [--rounds 3]
        [--gateway-dir /path/to/other/checkout] [--profile] [--asyncio-debug]

One run starts the local Tansu broker, the gateway (``python -m services.cli gateway``, a
separate process configured through the environment, exactly as deployed) and a bare aiohttp app
(separate process, uvloop like the gateway) that reads the body and answers 204: the ceiling.
It then drives, closed loop with ``--connections`` connections:

- ``status``: signed status callbacks of 1,000 calls (4 each), so events spread over keys;
- ``status hot``: the four callbacks of one call only (one key, one partition);
- ``voice``: signed ``/twiml/voice`` requests of 1,000 calls (dial policy, ``dial`` event, TwiML);
- ``voice hot``: one call's ``/twiml/voice`` request only;
- ``transcription``: signed real-time transcription callbacks of 1,000 calls (started, six
  Japanese utterances on both tracks, stopped: a call's busiest callbacks, CONTRACT §11); a
  ``--gateway-dir`` checkout without ``/twilio/transcription`` is left out of this row;
- ``token``: ``/token`` for 1,000 identities (key, limits, JWT);
- ``bare``: the bare app;

and, open loop at ``--rate`` requests a second (500), ``status`` and ``voice`` again: requests
are sent on a fixed schedule whatever the answers do, and latency counts from the scheduled
time, so queueing is not hidden (wrk2's correction for coordinated omission).

A/B: ``--gateway-dir DIR`` also runs the gateway from another checkout (``base``) beside this
one's (``this``): both are measured in the same run, alternating (the order flips every round),
so "before" and "after" see the same machine. ``--rounds N`` repeats everything N times and
reports the median round of each row (runs on a shared 2-core machine vary by 5-10 %).

Finally each gateway is stopped with SIGTERM (it flushes) and an aiokafka consumer reads its
topic back: every ``status`` 204 must be there (a 204 means "stored"), and every ``dial`` event
of a ``voice`` answer too.

Load generators: ``wrk`` when it is installed (C, epoll; it cycles through pre-signed requests
from a generated Lua script), else Python aiohttp clients in several processes; the open-loop
runs use a Python generator (one process, uvloop). The table shows each process's CPU use
during the measurement, and what else the machine was doing ("other"), so a saturated
generator or a busy machine is visible. ``--profile`` records each gateway under load with
py-spy (``bench/results/profile-*.txt``, collapsed stacks); ``--asyncio-debug`` runs the
gateways with PYTHONASYNCIODEBUG=1 and counts the slow callbacks (> 100 ms) they logged.

``--scrape-every S`` GETs ``/metrics`` of the gateway ``this`` every S seconds while it is
measured, as Prometheus would; with ``--gateway-dir`` naming this same checkout, ``base`` is the
same code unscraped, so the A/B rows show what scraping costs.

Figures are printed as a table and written to bench/results/gateway.json.
Targets (issue 13): status >= 0.5 and voice >= 0.4 of the bare app's throughput; p99 < 50 ms
for both, hot runs included; p99 < 10 ms for both at 500 requests a second. Issue 19:
transcription >= 0.5 of the bare app, p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/gateway.py` puts bench/, not the root, on the path
    sys.path.insert(0, str(ROOT))

from services.devtools.dev import DEV_PLACEHOLDERS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
STATUS_PATH = "/twilio/status"
TRANSCRIPTION_PATH = "/twilio/transcription"
VOICE_PATH = "/twiml/voice"
TOKEN_PATH = "/token"  # noqa: S105 - a path, not a password
PUBLIC_BASE_URL = "https://calltrail.example.com"
AUTH_TOKEN = DEV_PLACEHOLDERS["TWILIO_AUTH_TOKEN"]
ACCOUNT_SID = DEV_PLACEHOLDERS["TWILIO_ACCOUNT_SID"]
APP_SID = DEV_PLACEHOLDERS["TWILIO_TWIML_APP_SID"]
TOKEN_KEY = DEV_PLACEHOLDERS["CALLTRAIL_TOKEN_KEY"]
TARGET_RATIO = {"status": 0.5, "voice": 0.4, "transcription": 0.5}
TARGET_P99_MS = 50.0
TARGET_OPEN_P99_MS = 10.0
OTHER_CPU_WARN = 25.0  # % of a core used by processes outside the benchmark
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The gateway refuses to start without its settings: the development placeholders will do.
GATEWAY_ENV = {
    **DEV_PLACEHOLDERS,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "KAFKA_IDEMPOTENCE": "false",  # Tansu refuses the idempotent producer
    "LOG_LEVEL": "WARNING",  # logging is not what is measured
    # /token is measured, not its rate limit (10 a minute per identity by default).
    "TOKEN_RATE_PER_IDENTITY": str(10**9),
    "TOKEN_RATE_PER_ADDRESS": str(10**9),
}


# --- the requests: realistic, distinct, signed ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    path: str  # path and query, as sent (a signature covers PUBLIC_BASE_URL + this)
    headers: dict[str, str]
    body: str


def _twilio_headers(signed: dict[str, str]) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed,
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
    }


def status_requests(calls: int) -> list[Request]:
    """``calls`` dialled legs, each with its four status callbacks (initiated … completed).

    Each leg is the child of a browser call (``ParentCallSid``), as the TwiML this gateway
    hands out produces; the callback URL carries the kintone context in its query string.
    """
    from services.devtools.call_flows import pstn_leg_forms
    from services.devtools.twilio_player import TwilioSigner, new_sid

    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    started = datetime.now(UTC)
    out: list[Request] = []
    for n in range(calls):
        parent, child = new_sid(), new_sid()
        path = f"{STATUS_PATH}?app_id={12 + n % 7}&record_id={1000 + n}&identity=user_{n % 50}"
        to = f"+8190{10_000_000 + n:08d}"
        forms = pstn_leg_forms(
            parent=parent,
            child=child,
            to=to,
            duration_s=30 + n % 300,
            at=started + timedelta(seconds=n),
            seconds_between=5,
        )
        for form in forms:
            headers, body = signer.request(path, form)
            out.append(Request(path, _twilio_headers(headers), body))
    return out


UTTERANCES = (
    "お世話になっております。カルトレイルの佐藤でございます。",
    "あ、お世話になっております。",
    "先日お送りしたお見積もりの件でお電話いたしました。",
    "ありがとうございます。いま社内で確認しているところです。",
    "納期なんですが、来月末で間に合いますか。",
    "はい、来月末でしたら問題ございません。",
)


def transcription_requests(calls: int) -> list[Request]:
    """``calls`` transcription sessions as Twilio posts them to the ``statusCallbackUrl`` of
    the TwiML's ``<Start><Transcription>`` (the kintone context in its query): started, six
    utterances on alternating tracks, stopped."""
    from services.devtools.twilio_player import TwilioSigner, new_sid, transcription_callback_form

    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    started = datetime.now(UTC)
    out: list[Request] = []
    for n in range(calls):
        call_sid, sid = new_sid(), new_sid("GT")
        path = (
            f"{TRANSCRIPTION_PATH}?app_id={12 + n % 7}&record_id={1000 + n}&identity=user_{n % 50}"
        )
        events = [
            ("transcription-started", None, None),
            *(
                ("transcription-content", ("inbound_track", "outbound_track")[i % 2], text)
                for i, text in enumerate(UTTERANCES)
            ),
            ("transcription-stopped", None, None),
        ]
        for sequence, (event, track, text) in enumerate(events, 1):
            form = transcription_callback_form(
                account_sid=ACCOUNT_SID,
                call_sid=call_sid,
                transcription_sid=sid,
                event=event,
                sequence=sequence,
                track=track,
                transcript=text,
                timestamp=started + timedelta(seconds=n + sequence * 4),
            )
            headers, body = signer.request(path, form)
            out.append(Request(path, _twilio_headers(headers), body))
    return out


def voice_requests(calls: int) -> list[Request]:
    """What Twilio posts to the TwiML App's voice URL when a browser places ``calls`` calls:
    domestic numbers as a salesperson types them, the kintone app and record as parameters."""
    from services.devtools.twilio_player import TwilioSigner, new_sid, voice_request_form

    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    out: list[Request] = []
    for n in range(calls):
        to = f"090-{1000 + n % 9000:04d}-{n % 10_000:04d}" if n % 2 else f"03{52_000_000 + n}"
        form = voice_request_form(
            account_sid=ACCOUNT_SID,
            call_sid=new_sid(),
            identity=f"kintone_{n % 50}",
            to=to,
            app_sid=APP_SID,
            AppId=str(12 + n % 7),
            RecordId=str(1000 + n),
        )
        headers, body = signer.request(VOICE_PATH, form)
        out.append(Request(VOICE_PATH, _twilio_headers(headers), body))
    return out


def token_requests(identities: int) -> list[Request]:
    """The plugin's token request through kintone's proxy (which adds the key)."""
    return [
        Request(
            TOKEN_PATH,
            {"Content-Type": "application/json", "X-Calltrail-Key": TOKEN_KEY},
            json.dumps({"identity": f"kintone_{n}"}),
        )
        for n in range(identities)
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # the URL wrk is given (each request carries its own path)
    expect: int  # the status code of a success
    requests: list[Request]
    kind: str  # what it is compared with: "status", "voice", "token", "transcription", "bare"


def scenarios(calls: int) -> list[Scenario]:
    status, voice = status_requests(calls), voice_requests(calls)
    return [
        Scenario("status", STATUS_PATH, 204, status, "status"),
        Scenario("status hot", STATUS_PATH, 204, status[:4], "status"),
        Scenario("voice", VOICE_PATH, 200, voice, "voice"),
        Scenario("voice hot", VOICE_PATH, 200, voice[:1], "voice"),
        Scenario("token", TOKEN_PATH, 200, token_requests(calls), "token"),
        Scenario(
            "transcription",
            TRANSCRIPTION_PATH,
            204,
            transcription_requests(calls),
            "transcription",
        ),
        Scenario("bare", STATUS_PATH, 204, status, "bare"),
        Scenario("bare twiml", VOICE_PATH, 200, voice, "bare"),
    ]


# --- results -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    duration_s: float
    statuses: dict[str, int]  # HTTP status -> count
    errors: dict[str, int]  # transport errors (connect, read, timeout, …)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    expect: str = "204"
    generator_cpu_s: float = 0.0
    sent: int = 0  # open loop: requests scheduled

    @property
    def ok(self) -> int:
        return self.statuses.get(self.expect, 0)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failures(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != self.expect) + sum(
            self.errors.values()
        )


@dataclass
class Measured:
    server: str  # "this", "base" (A/B) or "bare"
    scenario: str
    load: LoadResult
    warmup_ok: int
    cpu_percent: dict[str, float] = field(default_factory=dict)  # process -> % of one core
    open_loop: bool = False
    rss_mb: float = 0.0  # the server's resident memory after the run

    @property
    def row(self) -> str:
        return f"{self.scenario}{' @' if self.open_loop else ''}"


# --- wrk -----------------------------------------------------------------------------------

WRK_LUA = r"""-- generated by bench/gateway.py: cycles through pre-built requests
local DATA = {
%(data)s
}
local threads = {}

function setup(thread)
  thread:set("offset", #threads * 977)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  reqs = {}
  for k, d in ipairs(DATA) do
    reqs[k] = wrk.format("POST", d[1], d[2], d[3])
  end
  n = #reqs
  i = (offset or 0) %% n
end

function request()
  i = i %% n + 1
  return reqs[i]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for s, c in pairs(t:get("counts")) do agg[s] = (agg[s] or 0) + c end
  end
  local parts = {}
  for s, c in pairs(agg) do table.insert(parts, string.format('"%%d": %%d', s, c)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us": %%d, "requests": %%d, "statuses": {%%s}, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "p999_us": %%d, "max_us": %%d}\n',
    summary.duration, summary.requests, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def _lua_string(text: str) -> str:
    # Form bodies, JSON bodies and base64 signatures never contain "]==]".
    assert "]==]" not in text
    return f"[==[{text}]==]"


def write_wrk_script(requests: Sequence[Request], path: Path) -> None:
    def headers(h: dict[str, str]) -> str:
        return (
            "{" + ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in h.items()) + "}"
        )

    data = ",\n".join(
        "{" + ", ".join((_lua_string(r.path), headers(r.headers), _lua_string(r.body))) + "}"
        for r in requests
    )
    path.write_text(WRK_LUA % {"data": data})


class Generator:
    name = "?"

    def run(
        self, base: str, scenario: Scenario, seconds: float, on_start: Callable[[], None]
    ) -> LoadResult:
        """Load ``base`` (scheme, host, port) for ``seconds``; paths are the requests' own.
        Calls ``on_start`` when the load begins (process CPU is sampled from then on)."""
        raise NotImplementedError


class WrkGenerator(Generator):
    def __init__(self, binary: str, tmp: Path, connections: int, threads: int) -> None:
        self.binary = binary
        self.tmp = tmp
        self.connections = connections
        self.threads = threads
        self.name = f"wrk ({threads} thread{'s' if threads > 1 else ''}, {connections} conns)"
        self._scripts: dict[str, Path] = {}

    def _script(self, scenario: Scenario) -> Path:
        script = self._scripts.get(scenario.name)
        if script is None:
            script = self.tmp / f"{scenario.name.replace(' ', '-')}.lua"
            write_wrk_script(scenario.requests, script)
            self._scripts[scenario.name] = script
        return script

    def run(
        self, base: str, scenario: Scenario, seconds: float, on_start: Callable[[], None]
    ) -> LoadResult:
        script = self._script(scenario)
        cpu_before = _children_cpu_s()
        proc = spawn(
            [
                self.binary,
                f"-t{self.threads}",
                f"-c{self.connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                base + scenario.path,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        on_start()
        out, _ = proc.communicate(timeout=seconds + 60)
        text = out.decode(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("WRKJSON ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
        doc = json.loads(line.removeprefix("WRKJSON "))
        return LoadResult(
            duration_s=doc["duration_us"] / 1e6,
            statuses={str(k): int(v) for k, v in doc["statuses"].items()},
            errors={k: int(v) for k, v in doc["errors"].items() if v},
            p50_ms=doc["p50_us"] / 1000,
            p90_ms=doc["p90_us"] / 1000,
            p99_ms=doc["p99_us"] / 1000,
            p999_ms=doc["p999_us"] / 1000,
            max_ms=doc["max_us"] / 1000,
            expect=str(scenario.expect),
            generator_cpu_s=_children_cpu_s() - cpu_before,
        )


# --- the Python generators: closed loop (fallback for wrk) and open loop -------------------


def _write_spec(scenario: Scenario, tmp: Path) -> Path:
    spec = tmp / f"{scenario.name.replace(' ', '-')}.json"
    if not spec.exists():
        spec.write_text(json.dumps([asdict(r) for r in scenario.requests]))
    return spec


def _summarise(docs: list[dict[str, Any]], expect: int) -> LoadResult:
    latencies = sorted(x for d in docs for x in d["latencies_ms"])
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for d in docs:
        for k, v in d["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in d["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return LoadResult(
        duration_s=max(d["duration_s"] for d in docs),
        statuses=statuses,
        errors=errors,
        p50_ms=_percentile(latencies, 50),
        p90_ms=_percentile(latencies, 90),
        p99_ms=_percentile(latencies, 99),
        p999_ms=_percentile(latencies, 99.9),
        max_ms=latencies[-1] if latencies else 0.0,
        expect=str(expect),
        generator_cpu_s=sum(d["cpu_s"] for d in docs),
        sent=sum(d.get("sent", 0) for d in docs),
    )


class PythonGenerator(Generator):
    """aiohttp clients (uvloop) in ``processes`` processes sharing ``connections``."""

    def __init__(self, tmp: Path, connections: int, processes: int) -> None:
        self.tmp = tmp
        self.connections = connections
        self.processes = max(1, min(processes, connections))
        self.name = f"python aiohttp ({self.processes} processes, {connections} conns)"

    def run(
        self, base: str, scenario: Scenario, seconds: float, on_start: Callable[[], None]
    ) -> LoadResult:
        spec = _write_spec(scenario, self.tmp)
        start_at = time.time() + 1.5  # every worker imported and connected by then
        shares = [
            self.connections // self.processes + (1 if i < self.connections % self.processes else 0)
            for i in range(self.processes)
        ]
        outs = [self.tmp / f"worker-{i}.json" for i in range(self.processes)]
        procs = [
            spawn(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "_client",
                    base,
                    str(spec),
                    str(out),
                    str(share),
                    str(start_at),
                    str(seconds),
                    str(i * 997),
                ],
            )
            for i, (share, out) in enumerate(zip(shares, outs, strict=True))
        ]
        time.sleep(max(0.0, start_at - time.time()))
        on_start()
        for proc in procs:
            proc.wait(timeout=seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load worker failed ({proc.returncode})")
        return _summarise([json.loads(out.read_text()) for out in outs], scenario.expect)


class OpenLoopGenerator(Generator):
    """One process (uvloop, aiohttp) sending at a fixed ``rate`` whatever the answers do;
    a request's latency counts from when it was due, so a stall shows in full."""

    def __init__(self, tmp: Path, rate: float) -> None:
        self.tmp = tmp
        self.rate = rate
        self.name = f"python open loop ({rate:.0f} req/s)"

    def run(
        self, base: str, scenario: Scenario, seconds: float, on_start: Callable[[], None]
    ) -> LoadResult:
        spec = _write_spec(scenario, self.tmp)
        out = self.tmp / "open-loop.json"
        start_at = time.time() + 1.5
        proc = spawn(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "_open",
                base,
                str(spec),
                str(out),
                str(self.rate),
                str(start_at),
                str(seconds),
            ]
        )
        time.sleep(max(0.0, start_at - time.time()))
        on_start()
        proc.wait(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"open-loop generator failed ({proc.returncode})")
        return _summarise([json.loads(out.read_text())], scenario.expect)


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _prepared(base: str, spec: str) -> list[tuple[str, bytes, dict[str, str]]]:
    requests = [Request(**r) for r in json.loads(Path(spec).read_text())]
    return [(base + r.path, r.body.encode(), r.headers) for r in requests]


async def _post(
    session: Any,
    target: str,
    body: bytes,
    headers: dict[str, str],
    errors: dict[str, int],
    pause_after_refusal: float = 0.0,
) -> str | None:
    """One request, its answer read: the status, or None with the failure counted in
    ``errors`` (by kind: "timeout" or the aiohttp error's class). After a connection error
    (not a timeout) it waits ``pause_after_refusal``, so a closed loop does not spin."""
    import aiohttp

    try:
        async with session.post(target, data=body, headers=headers) as response:
            await response.read()
            return str(response.status)
    except TimeoutError:
        errors["timeout"] = errors.get("timeout", 0) + 1
    except aiohttp.ClientError as exc:
        kind = type(exc).__name__
        errors[kind] = errors.get(kind, 0) + 1
        if pause_after_refusal:
            await asyncio.sleep(pause_after_refusal)
    return None


async def _client_worker(
    base: str,
    spec: str,
    connections: int,
    start_at: float,
    seconds: float,
    offset: int,
) -> dict[str, Any]:
    import aiohttp

    prepared = _prepared(base, spec)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    latencies: list[float] = []
    cursor = offset
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started, cpu_started = time.perf_counter(), time.process_time()
        deadline = started + seconds
        ended = started

        async def one_connection() -> None:
            nonlocal cursor, ended
            while time.perf_counter() < deadline:
                target, body, headers = prepared[cursor % len(prepared)]
                cursor += 1
                t0 = time.perf_counter()
                status = await _post(session, target, body, headers, errors, 0.01)
                if status is None:
                    continue
                t1 = time.perf_counter()
                ended = max(ended, t1)
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(round((t1 - t0) * 1000, 3))

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    return {
        "duration_s": ended - started,
        "cpu_s": time.process_time() - cpu_started,
        "statuses": statuses,
        "errors": errors,
        "latencies_ms": latencies,
    }


async def _open_loop_worker(
    base: str, spec: str, rate: float, start_at: float, seconds: float
) -> dict[str, Any]:
    import aiohttp

    prepared = _prepared(base, spec)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=1024, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(due: float, target: str, body: bytes, headers: dict[str, str]) -> None:
            status = await _post(session, target, body, headers, errors)
            if status is None:
                return
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(round((time.perf_counter() - due) * 1000, 3))

        # Open the connections the rate needs before the clock starts.
        warm = [
            asyncio.create_task(one(time.perf_counter(), *prepared[i % len(prepared)]))
            for i in range(min(32, len(prepared)))
        ]
        await asyncio.gather(*warm)
        statuses.clear()
        latencies.clear()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started, cpu_started = time.perf_counter(), time.process_time()
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target, body, headers = prepared[i % len(prepared)]
            tasks.append(asyncio.create_task(one(due, target, body, headers)))
        await asyncio.gather(*tasks)
    return {
        "duration_s": seconds,
        "cpu_s": time.process_time() - cpu_started,
        "statuses": statuses,
        "errors": errors,
        "latencies_ms": latencies,
        "sent": total,
    }


def client_main(argv: Sequence[str]) -> None:
    base, spec, out, connections, start_at, seconds, offset = argv
    _use_uvloop()
    doc = asyncio.run(
        _client_worker(base, spec, int(connections), float(start_at), float(seconds), int(offset))
    )
    Path(out).write_text(json.dumps(doc))


def open_loop_main(argv: Sequence[str]) -> None:
    base, spec, out, rate, start_at, seconds = argv
    _use_uvloop()
    doc = asyncio.run(_open_loop_worker(base, spec, float(rate), float(start_at), float(seconds)))
    Path(out).write_text(json.dumps(doc))


# --- the bare app: the ceiling -------------------------------------------------------------


def bare_main(argv: Sequence[str]) -> None:
    """aiohttp + uvloop answering 204 to POST /twilio/status, with no work (the body is read,
    as any handler must): what the gateway could reach at best on this machine. It also
    answers POST /twiml/voice with a fixed TwiML of the gateway's size ("bare twiml")."""
    from aiohttp import web

    (port,) = argv

    async def status(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    # A TwiML answer the size of the gateway's: what answering with a body costs by itself.
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial answerOnBridge="true" '
        'callerId="+815012345678"><Number statusCallback="https://calltrail.example.com'
        '/twilio/status?app_id=12&amp;record_id=1000&amp;identity=kintone_0" '
        'statusCallbackEvent="initiated ringing answered completed" '
        'statusCallbackMethod="POST">+819010000000</Number></Dial></Response>'
    )

    async def voice(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=twiml, content_type="text/xml")

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    _use_uvloop()
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post(STATUS_PATH, status)
    app.router.add_post(VOICE_PATH, voice)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(port), access_log=None, print=None)


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --- processes -----------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, **kwargs)
    _children.append(proc)
    return proc


def stop_children() -> None:
    """SIGTERM every child still running (the gateway then flushes and exits), then kill."""
    alive = [p for p in _children if p.poll() is None]
    for proc in alive:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 25
    for proc in alive:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _children.clear()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy (all cores, idle and iowait out), and the part
    of it in interrupts (mostly the kernel's loopback TCP work for the measured traffic)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, (irq + softirq) / CLK_TCK


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(
    what: str, check: Any, proc: subprocess.Popen[bytes], timeout_s: float = 30.0
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            result = check()
            if result:
                return result
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout_s}s")


def readyz(base: str) -> dict[str, Any]:
    _status, body = http_get(f"{base}/readyz")
    return json.loads(body)


def published_counts(base: str) -> dict[str, float]:
    _status, body = http_get(f"{base}/metrics")
    out = {}
    for m in re.finditer(
        rb'^calltrail_events_published_total\{outcome="([a-z]+)"\} ([0-9.e+]+)$', body, re.M
    ):
        out[m.group(1).decode()] = float(m.group(2))
    groups = re.search(rb"^calltrail_publish_groups_total ([0-9.e+]+)$", body, re.M)
    if groups:
        out["groups"] = float(groups.group(1))
    return out


def free_port() -> int:
    from services.devtools.broker import free_port as _free_port

    return _free_port()


# --- one measurement -----------------------------------------------------------------------


@dataclass
class Server:
    name: str  # "this", "base", "bare"
    base: str  # scheme, host, port
    pid: int
    topic: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None


def measure(
    server: Server,
    scenario: Scenario,
    generator: Generator,
    warmup_s: float,
    seconds: float,
    broker_pid: int,
    profile: Path | None = None,
    open_loop: bool = False,
    scrape_every_s: float | None = None,
) -> Measured:
    label = f"{scenario.name}{' @' + generator.name if open_loop else ''} on {server.name}"
    warmup_ok = 0
    if warmup_s > 0:
        print(f"  {label}: warming up {warmup_s:.0f}s …", flush=True)
        warmup_ok = generator.run(server.base, scenario, warmup_s, lambda: None).ok
    print(f"  {label}: measuring {seconds:.0f}s …", flush=True)
    watched = {"server": server.pid, "broker": broker_pid}
    before: dict[str, float] = {}
    spy: list[subprocess.Popen[bytes]] = []

    def started() -> None:
        before.update({proc: process_cpu_s(pid) for proc, pid in watched.items()})
        before["machine"], before["irq"] = machine_busy_s()
        before["t0"] = time.monotonic()
        if profile is not None:
            spy.append(py_spy(server.pid, seconds, profile))

    with scraping(server.base, scrape_every_s):
        load = generator.run(server.base, scenario, seconds, started)
    wall = time.monotonic() - before["t0"]
    for proc in spy:
        proc.wait(timeout=30)
    cpu = {proc: 100 * (process_cpu_s(pid) - before[proc]) / wall for proc, pid in watched.items()}
    cpu["generator"] = 100 * load.generator_cpu_s / wall
    machine, irq = machine_busy_s()
    cpu["irq"] = 100 * (irq - before["irq"]) / wall
    # Everything else: other processes on the machine (and this script, which only waits).
    cpu["other"] = max(0.0, 100 * (machine - before["machine"]) / wall - sum(cpu.values()))
    return Measured(
        server=server.name,
        scenario=scenario.name,
        load=load,
        warmup_ok=warmup_ok,
        cpu_percent=cpu,
        open_loop=open_loop,
        rss_mb=process_rss_mb(server.pid),
    )


def process_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return spawn(
        [
            binary,
            "record",
            "--nonblocking",
            "-p",
            str(pid),
            "-d",
            str(max(1, round(seconds) - 1)),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# The frames every sample of a running gateway has: not where the time goes.
_STARTUP_FRAMES = re.compile(
    r"^(run_app|serve|_run_code|main|<module>|_gateway|run|_run_module_as_main|_run_app"
    r"|Thread\.\w+|_worker) "
)


def _frame_name(frame: str) -> str:
    return re.sub(r" \(.*?(site-packages/|/)([^/]+/[^/]+\.py)(:\d+)?\)$", r" (\2)", frame)


def top_frames(raw: Path, n: int = 12) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """Inclusive and self share of samples per function of a py-spy collapsed-stack file."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = [_frame_name(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples

    def ranked(counts: dict[str, int]) -> list[tuple[float, str]]:
        kept = [(c, f) for f, c in counts.items() if not _STARTUP_FRAMES.match(f)]
        return [(100 * c / total, f) for c, f in sorted(kept, reverse=True)[:n]]

    return (ranked(inclusive), ranked(own)) if total else ([], [])


# --- the loss check ------------------------------------------------------------------------


async def count_topic(bootstrap: str, topic: str, expected: int, timeout_s: float) -> dict:
    from aiokafka import AIOKafkaConsumer

    from services.common.events import EventDecodeError, decode_event

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    count = undecodable = 0
    kinds: dict[str, int] = {}
    sids: set[str] = set()
    try:
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_progress < 10:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            got = 0
            for messages in batches.values():
                for message in messages:
                    got += 1
                    try:
                        event = decode_event(message.value)
                    except EventDecodeError:
                        undecodable += 1
                    else:
                        kinds[event.kind.value] = kinds.get(event.kind.value, 0) + 1
                        # A transcript has no call status (null): its SequenceId tells it apart.
                        what = event.status.value if event.status else event.sequence
                        sids.add(f"{event.kind.value}/{event.call_sid}/{what}")
            count += got
            if got:
                last_progress = time.monotonic()
            elif count >= expected:
                break  # everything expected arrived, and one more poll brought nothing new
    finally:
        await consumer.stop()
    return {
        "events": count,
        "by_kind": kinds,
        "undecodable": undecodable,
        "distinct_events": len(sids),
    }


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: the ``finally`` blocks stop every child."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C must stop.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


# --- the run -------------------------------------------------------------------------------


def build_generator(args: argparse.Namespace, tmp: Path) -> Generator:
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and not wrk:
        raise SystemExit("bench: --generator wrk, but wrk is not installed (apt-get install wrk)")
    if wrk and args.generator in ("auto", "wrk"):
        return WrkGenerator(wrk, tmp, args.connections, args.wrk_threads)
    return PythonGenerator(tmp, args.connections, args.client_processes)


def start_gateway(
    name: str, code_dir: Path, broker_bootstrap: str, tmp: Path, asyncio_debug: bool
) -> Server:
    port = free_port()
    topic = f"bench.{name}.{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        **GATEWAY_ENV,
        "KAFKA_BOOTSTRAP": broker_bootstrap,
        "KAFKA_TOPIC": topic,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_SPOOL_PATH": str(tmp / f"spool-{name}.sqlite3"),
        # The checkout's own code first, whatever the virtualenv installed in editable mode.
        "PYTHONPATH": str(code_dir),
    }
    if asyncio_debug:
        env["PYTHONASYNCIODEBUG"] = "1"
    log_path = tmp / f"gateway-{name}.log"
    with log_path.open("wb") as log_file:
        proc = spawn(
            [sys.executable, "-m", "services.cli", "gateway"],
            env=env,
            cwd=code_dir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Server(name, f"http://127.0.0.1:{port}", proc.pid, topic, proc, log_path)


def answers(server: Server, scenario: Scenario) -> bool:
    """Whether the server has the scenario's route: an older checkout (A/B) may not. Only POST
    is routed, so a GET of a route there is 405, of one missing 404."""
    return http_get(server.base + scenario.path)[0] != 404


def stop_gateway(server: Server) -> None:
    """SIGTERM, as Kubernetes does: the gateway finishes in-flight requests and flushes."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=60)


@contextlib.contextmanager
def scraping(base: str, every_s: float | None) -> Iterator[None]:
    """GET ``/metrics`` every ``every_s`` seconds meanwhile (None: not at all)."""
    if every_s is None:
        yield
        return
    done = threading.Event()

    def scrape() -> None:
        while not done.wait(every_s):
            with contextlib.suppress(OSError):
                http_get(f"{base}/metrics")

    thread = threading.Thread(target=scrape, name="scrape", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run(args: argparse.Namespace) -> int:
    from services.devtools.broker import LocalBroker

    with tempfile.TemporaryDirectory(prefix="calltrail-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"bench: signing requests for {args.calls} calls …")
        all_scenarios = {s.name: s for s in scenarios(args.calls)}
        wanted = [all_scenarios[name] for name in args.scenarios]
        generator = build_generator(args, tmp)
        open_loop = OpenLoopGenerator(tmp, args.rate)
        print(f"bench: load generator: {generator.name}; open loop: {open_loop.name}")

        broker = LocalBroker(log_path=tmp / "broker.log")
        gateways: list[Server] = []
        results: list[Measured] = []
        losses: dict[str, dict[str, Any]] = {}
        logs: dict[str, list[str]] = {}
        RESULTS.mkdir(parents=True, exist_ok=True)
        try:
            broker.start()
            broker_pid = broker._process.pid if broker._process else 0
            code = [("this", ROOT)] + ([("base", args.gateway_dir)] if args.gateway_dir else [])
            for name, code_dir in code:
                print(f"bench: gateway {name!r} from {code_dir}")
                gateways.append(
                    start_gateway(name, code_dir, broker.bootstrap, tmp, args.asyncio_debug)
                )
            bare_port = free_port()
            bare_proc = spawn(
                [sys.executable, str(Path(__file__).resolve()), "_bare", str(bare_port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            bare = Server("bare", f"http://127.0.0.1:{bare_port}", bare_proc.pid, proc=bare_proc)
            for gw in gateways:
                assert gw.proc is not None
                wait_until(
                    f"gateway {gw.name} /readyz broker",
                    lambda gw=gw: readyz(gw.base)["broker"],
                    gw.proc,
                )
            wait_until("bare app", lambda: http_get(f"{bare.base}/healthz")[0] == 200, bare_proc)
            print(f"bench: broker {broker.bootstrap}; {', '.join(g.base for g in gateways)} ready")

            for n in range(args.rounds):
                print(f"bench: round {n + 1}/{args.rounds}", flush=True)
                # A/B fairness: the order of the gateways flips every round.
                order = gateways if n % 2 == 0 else list(reversed(gateways))
                for scenario in wanted:
                    servers = [bare] if scenario.kind == "bare" else order
                    servers = [s for s in servers if answers(s, scenario)]
                    for server in servers:
                        profile = None
                        if args.profile and n == 0 and server is not bare:
                            slug = scenario.name.replace(" ", "-")
                            profile = RESULTS / f"profile-{server.name}-{slug}.txt"
                        results.append(
                            measure(
                                server,
                                scenario,
                                generator,
                                args.warmup,
                                args.seconds,
                                broker_pid,
                                profile,
                                scrape_every_s=scraped(server, args),
                            )
                        )
                for name in ("status", "voice"):
                    if name not in args.scenarios:
                        continue
                    for server in order:
                        results.append(
                            measure(
                                server,
                                all_scenarios[name],
                                open_loop,
                                0,
                                args.open_seconds,
                                broker_pid,
                                open_loop=True,
                                scrape_every_s=scraped(server, args),
                            )
                        )

            # Loss check: every 204 must be on the topic (spooled events drained first), and
            # every dial event of a TwiML answer once the gateway has stopped (SIGTERM flushes).
            for gw in gateways:
                mine = [m for m in results if m.server == gw.name]
                status_204 = sum(
                    m.warmup_ok + m.load.ok for m in mine if m.scenario.startswith("status")
                )
                voice_200 = sum(
                    m.warmup_ok + m.load.ok for m in mine if m.scenario.startswith("voice")
                )
                transcription_204 = sum(
                    m.warmup_ok + m.load.ok for m in mine if m.scenario.startswith("transcription")
                )
                with contextlib.suppress(RuntimeError):
                    assert gw.proc is not None
                    wait_until(
                        "spool drained", lambda gw=gw: readyz(gw.base)["spool_depth"] == 0, gw.proc
                    )
                published = published_counts(gw.base)
                stop_gateway(gw)
                expected = status_204 + voice_200 + transcription_204
                print(f"bench: reading {gw.topic} back ({expected} events expected) …", flush=True)
                stats = asyncio.run(count_topic(broker.bootstrap, gw.topic, expected, 120))
                kinds = stats["by_kind"]
                losses[gw.name] = {
                    "status_204s": status_204,
                    "voice_200s": voice_200,
                    "transcription_204s": transcription_204,
                    **stats,
                    "published_metric": published,
                    "exit_code": gw.proc.returncode if gw.proc else None,
                    "ok": kinds.get("status", 0) >= status_204
                    and kinds.get("dial", 0) >= voice_200
                    and kinds.get("transcript", 0) >= transcription_204
                    and not stats["undecodable"],
                }
        finally:
            stop_children()
            broker.stop()
            for gw in gateways:
                if gw.log is not None and gw.log.exists():
                    logs[gw.name] = gw.log.read_text(errors="replace").splitlines()

    report(args, generator, results, losses, logs)
    return 0 if losses and all(v["ok"] for v in losses.values()) else 1


def scraped(server: Server, args: argparse.Namespace) -> float | None:
    """How often ``server`` is scraped while measured: only ``this`` is."""
    return args.scrape_every if server.name == "this" else None


def median_round(results: list[Measured]) -> Measured:
    """The round with the median throughput (the figures of one real run, not a blend); for
    an open-loop row, whose rate is fixed, the round with the median p99 (until 2026-11-30 it
    was the middle one of rounds whose throughputs all tie)."""
    if results and results[0].open_loop:
        return sorted(results, key=lambda m: m.load.p99_ms)[len(results) // 2]
    return sorted(results, key=lambda m: m.load.rps)[len(results) // 2]


def cpu_per_request_us(m: Measured) -> float:
    """The server's CPU time per answered request: what a request costs, whatever the rate."""
    if not m.load.rps:
        return 0.0
    return m.cpu_percent.get("server", 0.0) / 100 / m.load.rps * 1e6


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def report(
    args: argparse.Namespace,
    generator: Generator,
    results: list[Measured],
    losses: dict[str, dict[str, Any]],
    logs: dict[str, list[str]],
) -> None:
    rows: dict[tuple[str, str], list[Measured]] = {}
    for m in results:
        rows.setdefault((m.row, m.server), []).append(m)
    chosen = {key: median_round(ms) for key, ms in rows.items()}
    bare = chosen.get(("bare", "bare"))
    bare_rps = bare.load.rps if bare else 0.0

    print()
    print(
        f"gateway benchmark: {args.seconds:.0f}s per run after {args.warmup:.0f}s warm-up, "
        f"{args.connections} connections, {generator.name}; open loop (@): "
        f"{args.rate:.0f} req/s for {args.open_seconds:.0f}s; median of {args.rounds} round(s)"
        + (f"; 'this' scraped every {args.scrape_every:g}s" if args.scrape_every else "")
    )
    print(
        f"  {'run':<11} {'server':<6} {'req/s':>8} {'of bare':>7} {'p50':>7} {'p99':>7} "
        f"{'p99.9':>7} {'max':>7} {'ok':>8} {'errors':>6} {'us/req':>6}   CPU (% of one core)"
    )
    for (row, server), m in chosen.items():
        of_bare = f"{m.load.rps / bare_rps:.2f}" if bare_rps and not m.open_loop else ""
        print(
            f"  {row:<11} {server:<6} {m.load.rps:>8.0f} {of_bare:>7} {_ms(m.load.p50_ms):>7} "
            f"{_ms(m.load.p99_ms):>7} {_ms(m.load.p999_ms):>7} {_ms(m.load.max_ms):>7} "
            f"{m.load.ok:>8} {m.load.failures:>6} {cpu_per_request_us(m):>6.0f}   "
            + "  ".join(f"{k} {v:.0f}%" for k, v in m.cpu_percent.items())
        )
    print(
        "  (latencies in ms; @ = open loop, latency from the scheduled send time; us/req: the\n"
        "   server's CPU microseconds per answered request, the figure least disturbed by a busy\n"
        "   machine)"
    )
    if args.rounds > 1:
        for (row, server), ms in rows.items():
            rates = ", ".join(f"{m.load.rps:.0f}" for m in ms)
            p99s = ", ".join(_ms(m.load.p99_ms) for m in ms)
            rss = ", ".join(f"{m.rss_mb:.0f}" for m in ms)
            print(f"  {row} on {server}: req/s by round {rates}; p99 {p99s}; RSS MB {rss}")
    for m in chosen.values():
        if m.load.failures:
            print(f"  {m.row} on {m.server}: statuses {m.load.statuses}, transport {m.load.errors}")
    others = [m.cpu_percent["other"] for m in results]
    print(
        f"  other load on the machine during the runs: {min(others):.0f}-{max(others):.0f}% "
        f"of a core (median {sorted(others)[len(others) // 2]:.0f}%)"
    )
    if max(others) > OTHER_CPU_WARN:
        print(
            "  warning: other work on the machine took more than "
            f"{OTHER_CPU_WARN:.0f}% of a core: absolute figures are disturbed; compare A/B rows"
        )
    gen_cpu = max(m.cpu_percent["generator"] for m in results)
    if gen_cpu > 85:
        print(f"  warning: a generator used {gen_cpu:.0f}% of a core: it may be the bottleneck")

    targets: dict[str, dict[str, Any]] = {}
    for server in ("this", "base"):
        if not any(s == server for _, s in chosen):
            continue
        checks: dict[str, Any] = {}
        for kind, minimum in TARGET_RATIO.items():
            m = chosen.get((kind, server))
            if m and bare_rps:
                checks[f"{kind} >= {minimum} of bare"] = round(m.load.rps / bare_rps, 3) >= minimum
        for row in ("status", "status hot", "voice", "voice hot", "transcription"):
            m = chosen.get((row, server))
            if m:
                checks[f"{row} p99 < {TARGET_P99_MS:.0f} ms"] = m.load.p99_ms < TARGET_P99_MS
        for row in ("status @", "voice @"):
            m = chosen.get((row, server))
            if m:
                checks[f"{row}{args.rate:.0f}/s p99 < {TARGET_OPEN_P99_MS:.0f} ms"] = (
                    m.load.p99_ms < TARGET_OPEN_P99_MS
                )
        targets[server] = checks
        print(
            f"  targets, {server}: "
            + "; ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in checks.items())
        )
    for name, loss in losses.items():
        print(
            f"  loss check, {name} (aiokafka consumer after SIGTERM, exit {loss['exit_code']}): "
            f"{loss['by_kind'].get('status', 0)} status events for {loss['status_204s']} 204s, "
            f"{loss['by_kind'].get('dial', 0)} dial events for {loss['voice_200s']} TwiML "
            f"answers, {loss['by_kind'].get('transcript', 0)} transcript events for "
            f"{loss['transcription_204s']} 204s, warm-ups included: "
            + ("OK, nothing lost" if loss["ok"] else "FAILED: events missing")
        )
        print(
            f"    {loss['distinct_events']} distinct events, {loss['undecodable']} undecodable, "
            f"gateway metric published={loss['published_metric']}"
        )
    for name, lines in logs.items():
        slow = [ln for ln in lines if "Executing" in ln and "took" in ln]
        if args.asyncio_debug:
            print(f"  {name}: {len(slow)} slow callback(s) (> 100 ms) logged by asyncio debug")
            for line in slow[:5]:
                print(f"    {line[:240]}")
        noisy = [ln for ln in lines if ln.strip() and ln not in slow]
        if noisy:
            print(
                f"  {name} logged {len(noisy)} line(s) at WARNING or above; last: {noisy[-1][:300]}"
            )
    profiles = sorted(RESULTS.glob("profile-*.txt")) if args.profile else []
    for raw in profiles:
        inclusive, own = top_frames(raw)
        print(f"  profile {raw.name} (py-spy, share of samples; inclusive | self):")
        for (share, frame), (own_share, own_frame) in zip(inclusive, own, strict=False):
            print(f"    {share:5.1f}% {frame[:70]:<70} | {own_share:5.1f}% {own_frame[:70]}")

    doc = {
        "benchmark": (
            "gateway: /twilio/status, /twiml/voice, /token, /twilio/transcription against a bare"
            " app"
        ),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "bench/gateway.py " + " ".join(sys.argv[1:]),
        "generator": generator.name,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "open_loop_rate": args.rate,
        "calls": args.calls,
        "rounds": args.rounds,
        "gateways": {
            "this": str(ROOT),
            **({"base": str(args.gateway_dir)} if args.gateway_dir else {}),
        },
        "cpus": os.cpu_count(),
        "results": [
            {
                "run": m.row,
                "server": m.server,
                "rps": round(m.load.rps, 1),
                "of_bare": round(m.load.rps / bare_rps, 3) if bare_rps else None,
                "p50_ms": round(m.load.p50_ms, 3),
                "p90_ms": round(m.load.p90_ms, 3),
                "p99_ms": round(m.load.p99_ms, 3),
                "p999_ms": round(m.load.p999_ms, 3),
                "max_ms": round(m.load.max_ms, 3),
                "ok": m.load.ok,
                "errors": m.load.failures,
                "statuses": m.load.statuses,
                "transport_errors": m.load.errors,
                "duration_s": round(m.load.duration_s, 3),
                "cpu_percent": {k: round(v, 1) for k, v in m.cpu_percent.items()},
                "server_cpu_us_per_request": round(cpu_per_request_us(m), 1),
                "server_rss_mb": round(m.rss_mb, 1),
                "rps_by_round": [round(r.load.rps, 1) for r in rows[(m.row, m.server)]],
                "p99_by_round": [round(r.load.p99_ms, 2) for r in rows[(m.row, m.server)]],
            }
            for m in chosen.values()
        ],
        "targets": targets,
        "loss_check": losses,
    }
    (RESULTS / "gateway.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"  figures written to {(RESULTS / 'gateway.json').relative_to(ROOT)}")


SCENARIO_NAMES = (
    "status",
    "status hot",
    "voice",
    "voice hot",
    "token",
    "transcription",
    "bare",
    "bare twiml",
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_bare"]:
        bare_main(argv[1:])
        return 0
    if argv[:1] == ["_client"]:
        client_main(argv[1:])
        return 0
    if argv[:1] == ["_open"]:
        open_loop_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument(
        "--calls", type=int, default=1000, help="distinct calls (4 signed callbacks each)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIO_NAMES),
        help=f"comma-separated subset of: {', '.join(SCENARIO_NAMES)}",
    )
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests a second")
    parser.add_argument("--open-seconds", type=float, default=10.0, help="open-loop seconds")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk when installed, else Python aiohttp clients",
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat every run N times; report the median"
    )
    parser.add_argument(
        "--gateway-dir",
        type=Path,
        default=None,
        help="A/B: also run the gateway from this checkout ('base') beside this one ('this')",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each gateway run of the first round"
    )
    parser.add_argument(
        "--asyncio-debug", action="store_true", help="PYTHONASYNCIODEBUG=1: log slow callbacks"
    )
    parser.add_argument("--client-processes", type=int, default=2, help="Python generator only")
    parser.add_argument(
        "--scrape-every",
        type=float,
        default=None,
        help="GET /metrics of gateway 'this' every S seconds while it is measured",
    )
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(args.scenarios) - set(SCENARIO_NAMES):
        parser.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    if not 1 <= args.connections <= 10_000 or not 1 <= args.seconds <= 3600 or args.calls < 4:
        parser.error("--connections 1..10000, --seconds 1..3600, --calls >= 4")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if not 1 <= args.rate <= 20_000:
        parser.error("--rate must be between 1 and 20000")
    if args.gateway_dir is not None:
        args.gateway_dir = args.gateway_dir.resolve()
        if not (args.gateway_dir / "services" / "cli.py").is_file():
            parser.error(f"--gateway-dir {args.gateway_dir}: no services/cli.py there")
    if args.wrk_threads < 1 or args.wrk_threads > args.connections:
        parser.error("--wrk-threads must be between 1 and --connections")
    if args.profile and not (
        shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()
    ):
        parser.error("--profile needs py-spy (pip install py-spy)")
    try:
        with cleanup_on_signals():
            return run(args)
    except KeyboardInterrupt:
        print("\nbench: interrupted; children stopped", file=sys.stderr)
        return 130
    finally:
        stop_children()


if __name__ == "__main__":
    sys.exit(main())
