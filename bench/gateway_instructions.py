"""Benchmark: CPU instructions per request, the gateway against a bare aiohttp app, counted by
valgrind: the same figure whatever else the machine is doing.

    .venv/bin/python bench/gateway_instructions.py [--requests 1000] [--gateway-dir DIR]

``bench/gateway.py`` is the benchmark the targets are judged by, but on a shared 2-core machine
its figures move by a third from one hour to the next, bare app included. This one counts the
instructions the server executes (``valgrind --tool=callgrind``), which repeat to within a
percent or two, so a change to the hot paths can be judged on its own.

Each figure comes from running the server in-process under valgrind twice, with N and 3N
requests, and dividing the difference by 2N: start-up (imports, building the app, loading the
requests) cancels out. The requests are ``bench/gateway.py``'s (signed, 1,000 distinct calls),
fed over 64 in-memory connections into aiohttp's own protocol objects: no sockets, and no
broker. The gateway's publisher is replaced by one that answers every queued request at the next
turn of the loop, together, as the real one does once the broker acknowledged the group; what
the broker round trips cost is ``bench/gateway.py``'s to measure (``us/req``, events a group).

Each server is set up as ``bench/gateway.py`` runs it: the gateway's app with the garbage
collector tuned as ``services.gateway.app.run()`` tunes it, the bare app as aiohttp leaves it.
(Before 2026-11-30 the gateway's rows ran with the collector untuned, which counted about
18,000 instructions a callback that the deployed gateway does not spend.)

Rows: ``bare`` (the bare app of ``bench/gateway.py``: read the body, answer 204), ``status``
(``/twilio/status``), ``voice`` (``/twiml/voice``), ``transcription``
(``/twilio/transcription``, left out for a checkout without it), for this checkout and, with
``--gateway-dir``, another one (``base``); ``of bare`` is bare's instructions over the row's,
the throughput ratio the server would reach if instructions were time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 64
TARGETS = {
    "bare": "/twilio/status",
    "status": "/twilio/status",
    "voice": "/twiml/voice",
    "transcription": "/twilio/transcription",
}


# --- inside valgrind: one server, N requests --------------------------------------------------


class _Transport(asyncio.Transport):
    """Keeps nothing: counts a response as done when its last bytes are written."""

    def __init__(self, answered: Any) -> None:
        super().__init__()
        self._answered = answered
        self._closing = False

    def write(self, data: Any) -> None:
        data = bytes(data)
        # A 204 is written in one go; a TwiML answer ends with its closing tag.
        if data.startswith((b"HTTP/1.1 204", b"HTTP/1.1 4", b"HTTP/1.1 5")) or data.endswith(
            b"</Response>"
        ):
            self._answered()

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _app(target: str) -> Any:
    from aiohttp import web

    if target == "bare":

        async def status(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=204)

        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(TARGETS["bare"], status)
        return web.AppRunner(app, access_log=None)

    import logging

    from services.common.logging import configure_logging
    from services.common.observability import ACCESS_LOG_CLASS
    from services.gateway import app as gateway_app
    from services.gateway.app import init_app
    from services.gateway.bootstrap import bootstrap
    from services.gateway.settings import GatewaySettings

    class GroupAnswered:
        """Every request queued during a turn of the loop is answered at the next one."""

        broker_ok = True
        spool_depth = 0

        def __init__(self) -> None:
            self._queue: list[Any] = []

        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def ready(self) -> bool:
            return True

        def publish(self, event: Any) -> Any:
            waiter = asyncio.get_running_loop().create_future()
            self._enqueue((event.key(), event.encode(), waiter))
            return waiter

        def publish_soon(self, event: Any) -> None:
            self._enqueue((event.key(), event.encode(), None))

        def _enqueue(self, item: Any) -> None:
            if not self._queue:
                asyncio.get_running_loop().call_soon(self._answer)
            self._queue.append(item)

        def _answer(self) -> None:
            group, self._queue = self._queue, []
            for _key, _value, waiter in group:
                if waiter is not None:
                    waiter.set_result("broker")

    configure_logging("WARNING")
    settings = GatewaySettings()
    app = init_app(settings, bootstrap(settings, publisher=lambda _metrics: GroupAnswered()))
    # As services.gateway.app.run() serves it (and bench/gateway.py measures it): without this
    # the young generation's collections, 18,000 instructions a callback, are counted.
    # (A checkout from before 2026-11-30 names it _tune_gc.)
    (vars(gateway_app).get("tune_gc") or vars(gateway_app)["_tune_gc"])()
    return web.AppRunner(
        app, access_log_class=app[ACCESS_LOG_CLASS], access_log=logging.getLogger("calltrail.http")
    )


async def _drive(target: str, count: int, requests: list[bytes]) -> None:
    runner = _app(target)
    await runner.setup()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    state = {"sent": 0, "answered": 0}
    server = runner.server
    assert server is not None

    def connection() -> None:
        protocol = server()

        def answered() -> None:
            state["answered"] += 1
            if state["sent"] < count:
                state["sent"] += 1
                loop.call_soon(protocol.data_received, requests[state["sent"] % len(requests)])
            elif state["answered"] == count and not done.done():
                done.set_result(None)

        protocol.connection_made(_Transport(answered))
        state["sent"] += 1
        protocol.data_received(requests[state["sent"] % len(requests)])

    for _ in range(min(CONNECTIONS, count)):
        connection()
    await done
    await runner.cleanup()


def drive_main(argv: list[str]) -> None:
    target, count, spec = argv
    # latin-1: bytes to text and back unchanged.
    requests = [r.encode("latin-1") for r in json.loads(Path(spec).read_text())[TARGETS[target]]]
    import uvloop

    uvloop.run(_drive(target, int(count), requests))


# --- outside: requests, valgrind, the table ---------------------------------------------------


def _raw_requests(calls: int) -> dict[str, list[bytes]]:
    sys.path.insert(0, str(ROOT / "bench"))
    import gateway as wall_clock  # bench/gateway.py: the same signed requests

    out: dict[str, list[bytes]] = {}
    for path, requests in (
        (TARGETS["status"], wall_clock.status_requests(calls)),
        (TARGETS["voice"], wall_clock.voice_requests(calls)),
        (TARGETS["transcription"], wall_clock.transcription_requests(calls)),
    ):
        raw = []
        for request in requests:
            body = request.body.encode()
            head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
            raw.append(
                f"POST {request.path} HTTP/1.1\r\nHost: calltrail.example.com\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        out[path] = raw
    return out


def _routes(code_dir: Path, path: str) -> bool:
    """Whether that checkout's gateway has the route (an older one has no transcription)."""
    routes = code_dir / "services" / "gateway" / "entrypoints" / "routes.py"
    return f'"{path}"' in routes.read_text()


def _instructions(code_dir: Path, target: str, count: int, spec: Path, env: dict[str, str]) -> int:
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "_drive",
            target,
            str(count),
            str(spec),
        ],
        # One hash seed for every run: str hashes (dict and set layouts) then repeat, and so
        # does the count (with random seeds, runs of the same code differ by about 1 %).
        env={**env, "PYTHONPATH": str(code_dir), "PYTHONHASHSEED": "0"},
        cwd=code_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : ([\d,]+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind {target} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str]) -> int:
    if argv[:1] == ["_drive"]:
        drive_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="N: runs of N and 3N")
    parser.add_argument("--gateway-dir", type=Path, default=None, help="also measure this checkout")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("needs valgrind (apt-get install valgrind)")
    if args.requests < 100:
        parser.error("--requests must be at least 100")
    sys.path.insert(0, str(ROOT))
    from services.devtools.dev import DEV_PLACEHOLDERS

    checkouts = {"this": ROOT}
    if args.gateway_dir is not None:
        checkouts["base"] = args.gateway_dir.resolve()
    env = {
        **os.environ,
        **DEV_PLACEHOLDERS,
        "PUBLIC_BASE_URL": "https://calltrail.example.com",
        "KAFKA_BOOTSTRAP": "127.0.0.1:9",  # never reached: the publisher is replaced
        "LOG_LEVEL": "WARNING",
    }
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="calltrail-instr-") as tmp:
        spec = Path(tmp) / "requests.json"
        raw = _raw_requests(250)
        spec.write_text(json.dumps({p: [r.decode("latin-1") for r in rs] for p, rs in raw.items()}))
        env["GATEWAY_SPOOL_PATH"] = str(Path(tmp) / "spool.sqlite3")
        n = args.requests
        runs = [
            (name, code_dir, target)
            for name, code_dir in checkouts.items()
            for target in TARGETS
            if (target != "bare" or name == "this") and _routes(code_dir, TARGETS[target])
        ]
        print(f"  {len(runs)} rows, each valgrind with {n} and {3 * n} requests …", flush=True)
        # Instructions do not depend on what else runs: use every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = list(
                pool.map(
                    lambda run: [
                        _instructions(run[1], run[2], count, spec, env) for count in (n, 3 * n)
                    ],
                    runs,
                )
            )
        for (name, _code_dir, target), (low, high) in zip(runs, counts, strict=True):
            results.append({"row": target, "server": name, "instructions": (high - low) / (2 * n)})
    bare = next(r["instructions"] for r in results if r["row"] == "bare")
    print(f"\n  {'row':8} {'server':6} {'instructions/request':>21} {'of bare':>8}")
    for r in results:
        r["of_bare"] = round(bare / r["instructions"], 3)
        print(f"  {r['row']:8} {r['server']:6} {r['instructions']:>21,.0f} {r['of_bare']:>8.3f}")
    out = ROOT / "bench" / "results" / "gateway_instructions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"requests": n, "results": results}, indent=2) + "\n")
    print(f"  figures written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
