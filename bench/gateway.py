"""Benchmark: POST /twilio/status on the real gateway (real broker) against a bare aiohttp app.

    .venv/bin/python bench/gateway.py [--seconds 20] [--connections 64]

One run starts the local Tansu broker and the gateway (``python -m services.cli gateway``, a
separate process configured through the environment, exactly as deployed), waits for /readyz to
report the broker, then drives correctly signed Twilio status callbacks at it. The same load is
then driven at a bare aiohttp app (separate process, uvloop like the gateway) that answers 204
and does nothing else: the ceiling. Finally an aiokafka consumer checks that the topic holds at
least as many events as the gateway answered 204 (a 204 means "stored": nothing may be lost).

Load generator: ``wrk`` when it is installed (C, epoll; it cycles through pre-signed requests
from a generated Lua script), else Python aiohttp clients in several processes. The table shows
each process's CPU use during the measurement, so a saturated generator is visible.

``--rounds N`` alternates gateway and bare runs N times and reports the median round (runs on a
shared 2-core machine vary by about 5-10 %); ``--gateway-dir DIR`` runs the gateway from another
checkout, to A/B a change; ``--generator python`` forces the fallback generator.

Figures are printed as a table and written to bench/results/gateway.json.
Targets (issue): gateway >= 50 % of the bare app's throughput, gateway p99 < 50 ms.
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

RESULTS = ROOT / "bench" / "results" / "gateway.json"
STATUS_PATH = "/twilio/status"
PUBLIC_BASE_URL = "https://calltrail.example.com"
AUTH_TOKEN = DEV_PLACEHOLDERS["TWILIO_AUTH_TOKEN"]
ACCOUNT_SID = DEV_PLACEHOLDERS["TWILIO_ACCOUNT_SID"]
CALLER_ID = DEV_PLACEHOLDERS["TWILIO_CALLER_ID"]
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
OTHER_CPU_WARN = 25.0  # % of a core used by processes outside the benchmark
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The gateway refuses to start without its settings: the development placeholders will do.
GATEWAY_ENV = {
    **DEV_PLACEHOLDERS,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "KAFKA_IDEMPOTENCE": "false",  # Tansu refuses the idempotent producer
    "LOG_LEVEL": "WARNING",  # logging is not what is measured
}


# --- the requests: realistic, distinct, signed ---------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedRequest:
    path: str  # path and query, as sent (the signature covers PUBLIC_BASE_URL + this)
    signature: str
    idempotency_token: str
    body: str


def signed_requests(calls: int) -> list[SignedRequest]:
    """``calls`` dialled legs, each with its four status callbacks (initiated … completed).

    Each leg is the child of a browser call (``ParentCallSid``), as the TwiML this gateway
    hands out produces; the callback URL carries the kintone context in its query string.
    """
    from services.devtools.call_flows import pstn_leg_forms
    from services.devtools.twilio_player import TwilioSigner, new_sid

    signer = TwilioSigner(AUTH_TOKEN, PUBLIC_BASE_URL)
    started = datetime.now(UTC)
    out: list[SignedRequest] = []
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
            out.append(
                SignedRequest(
                    path=path,
                    signature=headers["X-Twilio-Signature"],
                    idempotency_token=headers["I-Twilio-Idempotency-Token"],
                    body=body,
                )
            )
    return out


def request_headers(req: SignedRequest) -> dict[str, str]:
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": req.signature,
        "I-Twilio-Idempotency-Token": req.idempotency_token,
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
    }


# --- results -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    duration_s: float
    statuses: dict[str, int]  # HTTP status -> count
    errors: dict[str, int]  # transport errors (connect, read, timeout, …)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.statuses.get("204", 0)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failures(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "204") + sum(self.errors.values())


@dataclass
class Measured:
    name: str
    load: LoadResult
    warmup_ok: int
    cpu_percent: dict[str, float] = field(default_factory=dict)  # process -> % of one core


# --- wrk -----------------------------------------------------------------------------------

WRK_LUA = r"""-- generated by bench/gateway.py: cycles through pre-signed Twilio status callbacks
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
    reqs[k] = wrk.format("POST", d[1], {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = d[2],
      ["I-Twilio-Idempotency-Token"] = d[3],
      ["User-Agent"] = "TwilioProxy/1.1",
      ["Accept"] = "*/*",
    }, d[4])
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
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\n',
    summary.duration, summary.requests, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    # Form bodies and base64 signatures never contain "]==]".
    assert "]==]" not in text
    return f"[==[{text}]==]"


def write_wrk_script(requests: Sequence[SignedRequest], path: Path) -> None:
    data = ",\n".join(
        "{"
        + ", ".join(_lua_string(v) for v in (r.path, r.signature, r.idempotency_token, r.body))
        + "}"
        for r in requests
    )
    path.write_text(WRK_LUA % {"data": data})


class Generator:
    name = "?"

    def run(self, base: str, seconds: float, on_start: Callable[[], None]) -> LoadResult:
        """Load ``base`` (scheme, host, port) for ``seconds``; paths are the requests' own.
        Calls ``on_start`` when the load begins (process CPU is sampled from then on)."""
        raise NotImplementedError


class WrkGenerator(Generator):
    def __init__(self, binary: str, script: Path, connections: int, threads: int) -> None:
        self.binary = binary
        self.script = script
        self.connections = connections
        self.threads = threads
        self.name = f"wrk ({threads} thread{'s' if threads > 1 else ''}, {connections} conns)"

    def run(self, base: str, seconds: float, on_start: Callable[[], None]) -> LoadResult:
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
                str(self.script),
                base + STATUS_PATH,
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
            max_ms=doc["max_us"] / 1000,
            generator_cpu_s=_children_cpu_s() - cpu_before,
        )


# --- the Python fallback generator ---------------------------------------------------------


class PythonGenerator(Generator):
    """aiohttp clients (uvloop) in ``processes`` processes sharing ``connections``."""

    def __init__(self, spec: Path, connections: int, processes: int) -> None:
        self.spec = spec
        self.connections = connections
        self.processes = max(1, min(processes, connections))
        self.name = f"python aiohttp ({self.processes} processes, {connections} conns)"

    def run(self, base: str, seconds: float, on_start: Callable[[], None]) -> LoadResult:
        start_at = time.time() + 1.5  # every worker imported and connected by then
        shares = [
            self.connections // self.processes + (1 if i < self.connections % self.processes else 0)
            for i in range(self.processes)
        ]
        procs = [
            spawn(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "_client",
                    base,
                    str(self.spec),
                    str(self.spec.with_name(f"worker-{i}.json")),
                    str(share),
                    str(start_at),
                    str(seconds),
                    str(i * 997),
                ],
            )
            for i, share in enumerate(shares)
        ]
        time.sleep(max(0.0, start_at - time.time()))
        on_start()
        docs = []
        for i, proc in enumerate(procs):
            proc.wait(timeout=seconds + 60)
            if proc.returncode != 0:
                raise RuntimeError(f"load worker failed ({proc.returncode})")
            docs.append(json.loads(self.spec.with_name(f"worker-{i}.json").read_text()))
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
            max_ms=latencies[-1] if latencies else 0.0,
            generator_cpu_s=sum(d["cpu_s"] for d in docs),
        )


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def _client_worker(
    base: str,
    requests: list[SignedRequest],
    connections: int,
    start_at: float,
    seconds: float,
    offset: int,
) -> dict[str, Any]:
    import aiohttp

    prepared = [(base + r.path, r.body.encode(), request_headers(r)) for r in requests]
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
                try:
                    async with session.post(target, data=body, headers=headers) as response:
                        await response.read()
                        status = str(response.status)
                except TimeoutError:
                    errors["timeout"] = errors.get("timeout", 0) + 1
                    continue
                except aiohttp.ClientError as exc:
                    kind = type(exc).__name__
                    errors[kind] = errors.get(kind, 0) + 1
                    await asyncio.sleep(0.01)
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


def client_main(argv: Sequence[str]) -> None:
    base, spec, out, connections, start_at, seconds, offset = argv
    _use_uvloop()
    requests = [SignedRequest(**r) for r in json.loads(Path(spec).read_text())]
    doc = asyncio.run(
        _client_worker(
            base, requests, int(connections), float(start_at), float(seconds), int(offset)
        )
    )
    Path(out).write_text(json.dumps(doc))


# --- the bare app: the ceiling -------------------------------------------------------------


def bare_main(argv: Sequence[str]) -> None:
    """aiohttp + uvloop answering 204 to POST /twilio/status, with no work (the body is read,
    as any handler must): what the gateway could reach at best on this machine."""
    from aiohttp import web

    (port,) = argv

    async def status(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    _use_uvloop()
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post(STATUS_PATH, status)
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
    return out


def free_port() -> int:
    from services.devtools.broker import free_port as _free_port

    return _free_port()


# --- one measurement -----------------------------------------------------------------------


def measure(
    name: str,
    generator: Generator,
    base: str,
    warmup_s: float,
    seconds: float,
    watched: dict[str, int],
) -> Measured:
    warmup_ok = 0
    if warmup_s > 0:
        print(f"  {name}: warming up {warmup_s:.0f}s …", flush=True)
        warm = generator.run(base, warmup_s, lambda: None)
        warmup_ok = warm.ok
    print(f"  {name}: measuring {seconds:.0f}s …", flush=True)
    before: dict[str, float] = {}

    def started() -> None:
        before.update({proc: process_cpu_s(pid) for proc, pid in watched.items()})
        before["machine"], before["irq"] = machine_busy_s()
        before["t0"] = time.monotonic()

    load = generator.run(base, seconds, started)
    wall = time.monotonic() - before["t0"]
    cpu = {proc: 100 * (process_cpu_s(pid) - before[proc]) / wall for proc, pid in watched.items()}
    cpu["generator"] = 100 * load.generator_cpu_s / wall
    machine, irq = machine_busy_s()
    cpu["irq"] = 100 * (irq - before["irq"]) / wall
    # Everything else: other processes on the machine (and this script, which only waits).
    cpu["other"] = max(0.0, 100 * (machine - before["machine"]) / wall - sum(cpu.values()))
    return Measured(name=name, load=load, warmup_ok=warmup_ok, cpu_percent=cpu)


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
                        sids.add(f"{event.call_sid}/{event.status.value}")
            count += got
            if got:
                last_progress = time.monotonic()
            elif count >= expected:
                break  # everything expected arrived, and one more poll brought nothing new
    finally:
        await consumer.stop()
    return {"events": count, "undecodable": undecodable, "distinct_callbacks": len(sids)}


# --- the run -------------------------------------------------------------------------------


def build_generator(
    args: argparse.Namespace, requests: list[SignedRequest], tmp: Path
) -> Generator:
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and not wrk:
        raise SystemExit("bench: --generator wrk, but wrk is not installed (apt-get install wrk)")
    if wrk and args.generator in ("auto", "wrk"):
        script = tmp / "status.lua"
        write_wrk_script(requests, script)
        return WrkGenerator(wrk, script, args.connections, args.wrk_threads)
    spec = tmp / "requests.json"
    spec.write_text(json.dumps([asdict(r) for r in requests]))
    return PythonGenerator(spec, args.connections, args.client_processes)


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


def run(args: argparse.Namespace) -> int:
    from services.devtools.broker import LocalBroker

    with tempfile.TemporaryDirectory(prefix="calltrail-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"bench: signing {args.calls * 4} status callbacks ({args.calls} calls) …")
        requests = signed_requests(args.calls)
        generator = build_generator(args, requests, tmp)
        print(f"bench: load generator: {generator.name}")
        if args.gateway_dir:
            print(f"bench: gateway code from {args.gateway_dir}")

        broker = LocalBroker(log_path=tmp / "broker.log")
        gateway_log = tmp / "gateway.log"
        try:
            broker.start()
            topic = f"bench.{uuid.uuid4().hex[:12]}"
            gw_port, bare_port = free_port(), free_port()
            env = {
                **os.environ,
                **GATEWAY_ENV,
                "KAFKA_BOOTSTRAP": broker.bootstrap,
                "KAFKA_TOPIC": topic,
                "GATEWAY_HOST": "127.0.0.1",
                "GATEWAY_PORT": str(gw_port),
                "GATEWAY_SPOOL_PATH": str(tmp / "spool.sqlite3"),
            }
            with gateway_log.open("wb") as log_file:
                gateway = spawn(
                    [sys.executable, "-m", "services.cli", "gateway"],
                    env=env,
                    cwd=args.gateway_dir or ROOT,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            bare = spawn(
                [sys.executable, str(Path(__file__).resolve()), "_bare", str(bare_port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            gw_base, bare_base = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{bare_port}"
            wait_until("gateway /readyz broker", lambda: readyz(gw_base)["broker"], gateway)
            wait_until("bare app", lambda: http_get(f"{bare_base}/healthz")[0] == 200, bare)
            print(f"bench: broker {broker.bootstrap}, topic {topic}, gateway {gw_base} ready")

            broker_pid = broker._process.pid if broker._process else 0
            rounds: dict[str, list[Measured]] = {"gateway": [], "bare": []}
            for n in range(args.rounds):
                if args.rounds > 1:
                    print(f"bench: round {n + 1}/{args.rounds}", flush=True)
                for name, base, pid in (
                    ("gateway", gw_base, gateway.pid),
                    ("bare", bare_base, bare.pid),
                ):
                    watched = {"server": pid, "broker": broker_pid}
                    rounds[name].append(
                        measure(name, generator, base, args.warmup, args.seconds, watched)
                    )
            gw, bare_result = median_round(rounds["gateway"]), median_round(rounds["bare"])

            # Loss check: every 204 must be on the topic (spooled events are drained first).
            total_204 = sum(m.warmup_ok + m.load.ok for m in rounds["gateway"])
            with contextlib.suppress(RuntimeError):
                wait_until("spool drained", lambda: readyz(gw_base)["spool_depth"] == 0, gateway)
            published = published_counts(gw_base)
            print(f"bench: reading topic {topic} back ({total_204} events expected) …", flush=True)
            topic_stats = asyncio.run(count_topic(broker.bootstrap, topic, total_204, 120))
            loss = {
                "gateway_204s": total_204,
                **topic_stats,
                "published_metric": published,
                "ok": topic_stats["events"] >= total_204 and not topic_stats["undecodable"],
            }
        finally:
            stop_children()
            broker.stop()
            warnings = gateway_log.read_text(errors="replace").splitlines()

    report(args, generator, gw, bare_result, rounds, loss, warnings)
    return 0 if loss["ok"] else 1


def median_round(results: list[Measured]) -> Measured:
    """The round with the median throughput (the figures of one real run, not a blend)."""
    return sorted(results, key=lambda m: m.load.rps)[len(results) // 2]


def report(
    args: argparse.Namespace,
    generator: Generator,
    gw: Measured,
    bare: Measured,
    rounds: dict[str, list[Measured]],
    loss: dict[str, Any],
    gateway_log: list[str],
) -> None:
    ratio = gw.load.rps / bare.load.rps if bare.load.rps else 0.0

    def row(m: Measured) -> str:
        other = m.load.failures
        return (
            f"  {m.name:<8} {m.load.rps:>10.0f} {m.load.p50_ms:>9.2f} {m.load.p99_ms:>9.2f} "
            f"{m.load.max_ms:>9.1f} {m.load.ok:>9} {other:>7}   "
            + "  ".join(f"{k} {v:.0f}%" for k, v in m.cpu_percent.items())
        )

    print()
    print(
        f"POST {STATUS_PATH}: {args.seconds:.0f}s, {args.connections} connections, "
        f"generator: {generator.name}"
    )
    print(
        f"  {'':<8} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'204s':>9} "
        f"{'errors':>7}   CPU (% of one core)"
    )
    print(row(gw))
    print(row(bare))
    if args.rounds > 1:
        for name, results in rounds.items():
            rates = ", ".join(f"{m.load.rps:.0f}" for m in results)
            print(f"  {name} req/s by round: {rates} (the table shows the median round)")
    for m in (gw, bare):
        if m.load.failures:
            print(f"  {m.name} non-204: statuses {m.load.statuses}, transport {m.load.errors}")
    gen_cpu = max(gw.cpu_percent["generator"], bare.cpu_percent["generator"])
    if gen_cpu > 85:
        print(f"  warning: the generator used {gen_cpu:.0f}% of a core: it may be the bottleneck")
    other_cpu = max(gw.cpu_percent["other"], bare.cpu_percent["other"])
    if other_cpu > OTHER_CPU_WARN:
        print(
            f"  warning: {other_cpu:.0f}% of a core went to other work on the machine "
            "(another job running?): the figures may be disturbed"
        )
    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = gw.load.p99_ms < TARGET_P99_MS
    print(
        f"  ratio gateway/bare: {ratio:.2f}   (target >= {TARGET_RATIO:.2f}: "
        f"{'met' if ratio_ok else 'MISSED'})"
    )
    print(
        f"  gateway p99: {gw.load.p99_ms:.2f} ms   (target < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99_ok else 'MISSED'})"
    )
    extra = loss["events"] - loss["gateway_204s"]
    print(
        f"  loss check (aiokafka consumer): {loss['events']} events on the topic for "
        f"{loss['gateway_204s']} 204s, warm-up included: "
        + ("OK, nothing lost" if loss["ok"] else "FAILED: events missing")
    )
    print(
        f"    {loss['distinct_callbacks']} distinct callbacks, {loss['undecodable']} undecodable, "
        f"gateway metric published={loss['published_metric']}"
        + (
            f"; {extra} more events than 204s: requests still in flight when the generator "
            "stopped (stored, answer never read)"
            if extra > 0
            else ""
        )
    )
    noisy = [line for line in gateway_log if line.strip()]
    if noisy:
        print(f"  gateway logged {len(noisy)} line(s) at WARNING or above; last: {noisy[-1][:300]}")

    doc = {
        "benchmark": "gateway POST /twilio/status",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "bench/gateway.py " + " ".join(sys.argv[1:]),
        "generator": generator.name,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "distinct_requests": args.calls * 4,
        "rounds": args.rounds,
        "gateway_dir": str(args.gateway_dir or ROOT),
        "cpus": os.cpu_count(),
        "results": {
            m.name: {
                "rps": round(m.load.rps, 1),
                "p50_ms": round(m.load.p50_ms, 3),
                "p90_ms": round(m.load.p90_ms, 3),
                "p99_ms": round(m.load.p99_ms, 3),
                "max_ms": round(m.load.max_ms, 3),
                "ok_204": m.load.ok,
                "errors": m.load.failures,
                "statuses": m.load.statuses,
                "transport_errors": m.load.errors,
                "duration_s": round(m.load.duration_s, 3),
                "cpu_percent": {k: round(v, 1) for k, v in m.cpu_percent.items()},
                "rps_by_round": [round(r.load.rps, 1) for r in rounds[m.name]],
            }
            for m in (gw, bare)
        },
        "ratio": round(ratio, 3),
        "targets": {
            "ratio_min": TARGET_RATIO,
            "ratio_met": ratio_ok,
            "p99_max_ms": TARGET_P99_MS,
            "p99_met": p99_ok,
        },
        "loss_check": loss,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"  figures written to {RESULTS.relative_to(ROOT)}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_bare"]:
        bare_main(argv[1:])
        return 0
    if argv[:1] == ["_client"]:
        client_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per target")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per target")
    parser.add_argument(
        "--calls", type=int, default=1000, help="distinct calls (4 signed callbacks each)"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk when installed, else Python aiohttp clients",
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate gateway/bare runs; report the median"
    )
    parser.add_argument(
        "--gateway-dir",
        type=Path,
        default=None,
        help="run the gateway from another checkout (A/B a change); default: this one",
    )
    parser.add_argument("--client-processes", type=int, default=2, help="Python generator only")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 10_000 or not 1 <= args.seconds <= 3600 or args.calls < 1:
        parser.error("--connections 1..10000, --seconds 1..3600, --calls >= 1")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be between 1 and 20")
    if args.gateway_dir is not None:
        args.gateway_dir = args.gateway_dir.resolve()
        if not (args.gateway_dir / "services" / "cli.py").is_file():
            parser.error(f"--gateway-dir {args.gateway_dir}: no services/cli.py there")
    if args.wrk_threads < 1 or args.wrk_threads > args.connections:
        parser.error("--wrk-threads must be between 1 and --connections")
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
