"""``calltrail dev``: the whole system on one machine with embedded defaults.

Real settings from the environment win; whatever is missing gets an obvious development
placeholder, so ``make run`` works on a fresh machine. With placeholders the gateway is fully
functional locally (``calltrail simulate`` signs with the same placeholder auth token), but
its tokens are of course not accepted by the real Twilio.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from services.devtools.broker import LocalBroker, bootstrap_reachable, free_port, port_open
from services.devtools.call_flows import DEV_CUSTOMERS
from services.devtools.kintone_standin import DEV_CUSTOMER_APP, DEV_MISSED_CALL_NOTIFY, DEV_TOKEN
from services.devtools.postgres import LocalPostgres
from services.devtools.twilio_rest_standin import (
    DEV_ACCOUNT_SID,
    DEV_API_KEY,
    DEV_API_SECRET,
    try_it_line,
)

DEFAULT_LOCAL_BROKER_PORT = 19092
DEV_DATABASE = "calltrail"
TWILIO_STANDIN = "services.devtools.twilio_rest_standin"
KINTONE_STANDIN = "services.devtools.kintone_standin"

# Placeholders only, never real credentials: the account and API key are the Twilio REST
# stand-in's dev account, so that the recorder (which fetches recordings with the API key, and
# checks the SIDs' form) works against that stand-in too.
DEV_PLACEHOLDERS: Mapping[str, str] = {
    "TWILIO_ACCOUNT_SID": DEV_ACCOUNT_SID,
    "TWILIO_AUTH_TOKEN": "dev-auth-token-placeholder-not-a-secret",
    "TWILIO_API_KEY": DEV_API_KEY,
    "TWILIO_API_SECRET": DEV_API_SECRET,
    "TWILIO_TWIML_APP_SID": "AP" + "x" * 32,
    "TWILIO_CALLER_ID": "+815012345678",
    "CALLTRAIL_TOKEN_KEY": "dev-token-key-placeholder",
    "KINTONE_BASE_URL": "https://example.cybozu.com",
}
# A ring group and a forward number, so that `calltrail simulate`'s inbound calls ring, are
# answered, forwarded and missed locally (no real browser or phone is ever reached).
DEV_INBOUND: Mapping[str, str] = {
    "RING_IDENTITIES": "kintone_1,kintone_2,kintone_3",
    "INBOUND_FORWARD_TO": "+81312345678",
}
# The conversation (CONTRACT.md section 11) on, so that `calltrail simulate` plays recordings and
# transcripts; a setting of one's own (e.g. RECORDING=off) wins.
DEV_CONVERSATION: Mapping[str, str] = {"RECORDING": "dual", "TRANSCRIPTION": "on"}
# Voicemail (CONTRACT.md section 12) on, so that `calltrail simulate`'s missed callers leave
# messages (or say nothing) after the forward rings out; VOICEMAIL=off of one's own wins.
DEV_VOICEMAIL: Mapping[str, str] = {"VOICEMAIL": "on"}


OWN_KINTONE_SETTINGS_WIN = frozenset({"KINTONE_WRITEBACK_DELAY_S", "MISSED_CALL_NOTIFY"})


def dev_kintone_env(base_url: str) -> dict[str, str]:
    """The recorder's write-back to the dev kintone stand-in at ``base_url``: subtable mode into
    its customer app, missed calls told to its seeded users (CONTRACT.md sections 6, 9, 12).
    A short delay, so a simulated call shows up in seconds rather than the default 10."""
    return {
        "KINTONE_WRITEBACK": "subtable",
        "KINTONE_BASE_URL": base_url,
        "KINTONE_API_TOKEN": DEV_TOKEN,
        "KINTONE_CUSTOMER_APP": str(DEV_CUSTOMER_APP),
        "KINTONE_WRITEBACK_DELAY_S": "2",
        "MISSED_CALL_NOTIFY": DEV_MISSED_CALL_NOTIFY,
    }


def wants_kintone_standin(environ: Mapping[str, str]) -> bool:
    """The stand-in, unless the user set up kintone write-back or a real kintone themselves."""
    base_url = environ.get("KINTONE_BASE_URL")
    real_base_url = bool(base_url) and base_url != DEV_PLACEHOLDERS["KINTONE_BASE_URL"]
    return not environ.get("KINTONE_WRITEBACK") and not real_base_url


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} process exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not healthy after {timeout_s}s")


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """A server without a health URL (the kintone stand-in answers nothing unauthenticated)."""
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if process.poll() is not None:
            raise RuntimeError(f"port {port}'s process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port} after {timeout_s}s")
        time.sleep(0.1)


def _kintone_banner(base_url: str, notify: str, database_env: str) -> str:
    """How to look at what the write-back did: only the stand-in's placeholder token."""
    return (
        f"  kintone stand-in    {base_url}  (app {DEV_CUSTOMER_APP}, subtable mode; records"
        f" 1-{len(DEV_CUSTOMERS)} have phone numbers,\n"
        f"                      missed calls commented to {notify or 'nobody'})\n"
        "  see what the write-back did:\n"
        f"    {database_env}.venv/bin/calltrail kintone status\n"
        f"    curl -fsS -H 'X-Cybozu-API-Token: {DEV_TOKEN}' \\\n"
        f"      '{base_url}/k/v1/record/comments.json?app={DEV_CUSTOMER_APP}&record=1'\n"
        f"    curl -fsS -H 'X-Cybozu-API-Token: {DEV_TOKEN}' \\\n"
        f"      '{base_url}/k/v1/record.json?app={DEV_CUSTOMER_APP}&id=1'\n"
    )


def _database(env: dict[str, str]) -> tuple[str, LocalPostgres | None, str]:
    """DATABASE_URL if it answers; else the machine's server, or a throwaway embedded one."""
    wanted = env.get("DATABASE_URL")
    if wanted and LocalPostgres(wanted).start().admin_url == wanted:
        return wanted, None, "from DATABASE_URL"
    postgres = LocalPostgres().start()
    url = postgres.create_database(DEV_DATABASE, exist_ok=True)
    note = "embedded, deleted on exit" if postgres.embedded else "this machine's server"
    return url, postgres, note


def _port(env: dict[str, str], name: str, default: int, requested: int | None) -> int:
    port = requested or int(env.get(name, default))
    if port_open("127.0.0.1", port):
        if requested:
            raise SystemExit(f"calltrail dev: port {port} is taken")
        port = free_port()
    env[name] = str(port)
    return port


def run_dev(gateway_port: int | None = None) -> int:
    from services.recorder.adapters.migrations import upgrade

    env = dict(os.environ)
    kintone_port = free_port() if wants_kintone_standin(env) else None
    if kintone_port is not None:
        # Also the gateway's CORS origin (KINTONE_BASE_URL): the stand-in's, as the dev domain.
        # The stand-in's address, token and app are forced (nothing else would answer); a
        # delay or MISSED_CALL_NOTIFY of one's own wins, as RECORDING and VOICEMAIL do.
        for name, value in dev_kintone_env(f"http://127.0.0.1:{kintone_port}").items():
            if name in OWN_KINTONE_SETTINGS_WIN:
                env.setdefault(name, value)
            else:
                env[name] = value
    placeholders = [name for name in DEV_PLACEHOLDERS if not env.get(name)]
    for name in placeholders:
        env[name] = DEV_PLACEHOLDERS[name]
    if not (env.get("RING_IDENTITIES") or env.get("SIP_RING_IDENTITIES")):
        env["RING_IDENTITIES"] = DEV_INBOUND["RING_IDENTITIES"]
    env.setdefault("INBOUND_FORWARD_TO", DEV_INBOUND["INBOUND_FORWARD_TO"])
    for name, value in {**DEV_CONVERSATION, **DEV_VOICEMAIL}.items():
        env.setdefault(name, value)
    port = _port(env, "GATEWAY_PORT", 8080, gateway_port)
    recorder_port = _port(env, "RECORDER_PORT", 8081, None)
    twilio_port = free_port()  # the Twilio REST stand-in, to try `calltrail twilio provision`
    twilio_api = f"http://127.0.0.1:{twilio_port}"
    if "TWILIO_API_KEY" in placeholders:  # the stand-in's account: its REST API is the stand-in
        env.setdefault("TWILIO_API_BASE_URL", twilio_api)
    # simulate makes its recordings in the stand-in when the recorder fetches them from there.
    simulate_recordings = (
        f" --twilio-api {twilio_api}" if env.get("TWILIO_API_BASE_URL") == twilio_api else ""
    )
    env.setdefault("GATEWAY_HOST", "127.0.0.1")
    env.setdefault("RECORDER_HOST", "127.0.0.1")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    Path("var/dev").mkdir(parents=True, exist_ok=True)
    env.setdefault("GATEWAY_SPOOL_PATH", str(Path("var/dev/gateway-spool.sqlite3").resolve()))

    broker: LocalBroker | None = None
    postgres: LocalPostgres | None = None
    children: list[subprocess.Popen[bytes]] = []
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        if env.get("KAFKA_BOOTSTRAP") and bootstrap_reachable(env["KAFKA_BOOTSTRAP"]):
            broker_note = f"{env['KAFKA_BOOTSTRAP']} (from KAFKA_BOOTSTRAP)"
        else:
            local_port = DEFAULT_LOCAL_BROKER_PORT
            if port_open("127.0.0.1", local_port):
                local_port = 0
            broker = LocalBroker(
                port=local_port or None, log_path=Path("var/dev/broker.log")
            ).start()
            env["KAFKA_BOOTSTRAP"] = broker.bootstrap
            env["KAFKA_IDEMPOTENCE"] = "false"  # Tansu refuses the idempotent producer
            broker_note = f"{broker.bootstrap} (local Tansu, in memory)"

        env["DATABASE_URL"], postgres, database_note = _database(env)
        upgrade(env["DATABASE_URL"])

        # Each child in a session of its own: Ctrl-C reaches calltrail dev alone, which stops
        # the services (SIGTERM, graceful) before the broker and the database they still use.
        commands = [
            ["-m", "services.cli", "gateway"],
            ["-m", "services.cli", "recorder"],
            ["-m", TWILIO_STANDIN, "--port", str(twilio_port)],
        ]
        if kintone_port is not None:
            commands.append(["-m", KINTONE_STANDIN, "--port", str(kintone_port)])
        for command in commands:
            children.append(
                subprocess.Popen([sys.executable, *command], env=env, start_new_session=True)  # noqa: S603
            )
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", children[0])
        _wait_healthy(f"http://127.0.0.1:{recorder_port}/healthz", children[1])
        if kintone_port is not None:
            _wait_listening(kintone_port, children[3])
        base = env["PUBLIC_BASE_URL"]
        month = time.strftime("%Y-%m")
        database = make_url(env["DATABASE_URL"]).render_as_string(hide_password=True)
        # Never print a password: with one, the user already has DATABASE_URL set themselves.
        costs_env = "" if make_url(env["DATABASE_URL"]).password else f"DATABASE_URL='{database}' "
        print(
            "\ncalltrail dev is running (Ctrl-C stops everything)\n"
            f"  broker              {broker_note}\n"
            f"  database            {database} ({database_note}), migrated\n"
            f"  gateway             http://127.0.0.1:{port}  (health /healthz, metrics /metrics)\n"
            f"  recorder            http://127.0.0.1:{recorder_port}  (/healthz /readyz /metrics)\n"
            f"  kintone plugin      token URL      {base}/token\n"
            f"  Twilio TwiML App    voice URL      {base}/twiml/voice\n"
            f"  Twilio number       voice URL      {base}/twiml/incoming\n"
            f"  Twilio SIP domain   voice URL      {base}/twiml/sip\n"
            f"  Twilio callbacks    status URL     {base}/twilio/status\n"
            f"  Twilio callbacks    recording      {base}/twilio/recording"
            f" (RECORDING={env['RECORDING']})\n"
            f"  Twilio callbacks    transcription  {base}/twilio/transcription"
            f" (TRANSCRIPTION={env['TRANSCRIPTION']})\n"
            f"  ring group          {env.get('RING_IDENTITIES') or env.get('SIP_RING_IDENTITIES')}"
            f", then {env['INBOUND_FORWARD_TO'] or 'a message'}\n"
            "\n  try it, in another terminal:\n"
            f"    .venv/bin/calltrail simulate --gateway http://127.0.0.1:{port} --calls 100"
            f"{' --customers' if kintone_port is not None else ''}{simulate_recordings}\n"
            f"    {costs_env}.venv/bin/calltrail costs --month {month}\n"
            f"\n  Twilio REST stand-in  TWILIO_API_BASE_URL=http://127.0.0.1:{twilio_port}\n"
            "  try provisioning against it (a dev account: the 050 number, nothing set up):\n"
            f"    {try_it_line(f'http://127.0.0.1:{twilio_port}', base)}\n",
            flush=True,
        )
        if kintone_port is not None:
            print(
                _kintone_banner(env["KINTONE_BASE_URL"], env["MISSED_CALL_NOTIFY"], costs_env),
                flush=True,
            )
        if placeholders:
            print(
                "  note: placeholder settings for " + ", ".join(placeholders) + ";\n"
                "        set the real ones (docs/operations.md, Settings) to talk to the real"
                " Twilio.\n",
                flush=True,
            )
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        print("calltrail dev stopped", flush=True)
    failed = [child.returncode for child in children if child.returncode not in (0, -15, None)]
    return 1 if failed else 0
