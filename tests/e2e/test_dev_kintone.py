"""``calltrail dev`` with its kintone stand-in, and ``calltrail simulate --customers`` into it:
the missed calls and voicemails land in the customers' call history, each with exactly one
comment on each record it matched, and every call that was talked on (or left a message) has
its transcript in spoken order with the right speakers and its recording attached, the very
bytes the Twilio REST stand-in held; all read over the stand-ins' REST APIs as a user would."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from services.devtools.broker import free_port
from services.devtools.call_flows import DEV_CUSTOMERS
from services.devtools.kintone_standin import DEV_CUSTOMER_APP, DEV_ENTITIES, DEV_TOKEN
from services.devtools.simulate import SCRIPTS, STAFF
from services.devtools.twilio_rest_standin import DEV_ACCOUNT_SID, DEV_API_KEY, DEV_API_SECRET
from tests.e2e.conftest import ServiceProcess, dev_env

OUTBOUND, INBOUND = 4, 40
MISSED = ("不在着信", "留守電")
CALL_SID = re.compile(r"CallSid: (CA[0-9a-f]{32})")


def wait_for(log: Path, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while (match := re.search(pattern, log.read_text())) is None:
        assert time.monotonic() < deadline, f"no {pattern!r} in: {log.read_text()}"
        time.sleep(0.2)
    return match


def kintone_get(base_url: str, path: str) -> dict[str, Any]:
    return dict(json.loads(kintone_bytes(base_url, path)))


def kintone_bytes(base_url: str, path: str) -> bytes:
    request = urllib.request.Request(
        f"{base_url}/k/v1/{path}", headers={"X-Cybozu-API-Token": DEV_TOKEN}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def twilio_media(base_url: str, recording_sid: str) -> bytes:
    """A recording's media as the Twilio REST stand-in holds it (with the dev API key)."""
    key = base64.b64encode(f"{DEV_API_KEY}:{DEV_API_SECRET}".encode()).decode()
    request = urllib.request.Request(
        f"{base_url}/2010-04-01/Accounts/{DEV_ACCOUNT_SID}/Recordings/{recording_sid}.mp3",
        headers={"Authorization": f"Basic {key}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


#: A transcript's lines as the record shows them, by who says them (CONTRACT.md section 11).
SPEAKERS = {STAFF: "担当者", "customer": "お客様"}


def spoken(script: str) -> list[str]:
    return [f"{SPEAKERS[speaker]}: {text}" for speaker, text in SCRIPTS[script]]


def assert_conversation_on_the_row(row: dict[str, Any], kintone: str, twilio: str) -> None:
    """A row of a call someone spoke on: the script simulate played (as far as the call was
    long enough for), in order, each line by its speaker; one recording, the Twilio bytes."""
    lines = row["通話内容"]["value"].splitlines()
    if row["通話結果"]["value"] == "留守電":
        script = "voicemail"
    else:
        script = "inbound" if row["発着信"]["value"] == "着信" else "outbound"
    assert lines, row
    assert lines == spoken(script)[: len(lines)], (script, lines)
    [attached] = row["録音"]["value"]
    recording_sid = attached["name"].removesuffix(".mp3")
    held = kintone_bytes(kintone, f"file.json?fileKey={attached['fileKey']}")
    assert held == twilio_media(twilio, recording_sid)
    assert held.startswith(b"ID3")  # simulate's media, made for this very call
    assert row["CallSid"]["value"].encode() in held


def comments(base_url: str, record_id: int) -> list[dict[str, Any]]:
    """All of the record's comments, page by page (at most 10 a read)."""
    found: list[dict[str, Any]] = []
    while True:
        page = kintone_get(
            base_url,
            f"record/comments.json?app={DEV_CUSTOMER_APP}&record={record_id}"
            f"&order=asc&offset={len(found)}&limit=10",
        )
        found += page["comments"]
        if not page["newer"]:
            return found


def calltrail(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_simulated_missed_calls_land_on_the_dev_kintone_with_one_comment_each(
    tmp_path: Path, empty_database: str
) -> None:
    port = free_port()
    env = dev_env(tmp_path, empty_database)
    dev = ServiceProcess(
        ["dev", "--gateway-port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path
    )
    try:
        dev.wait_ready(f"http://127.0.0.1:{port}/readyz", timeout_s=60)
        kintone = wait_for(dev.log, r"kintone stand-in +(http://127\.0\.0\.1:\d+)").group(1)
        twilio = wait_for(dev.log, r"TWILIO_API_BASE_URL=(http://127\.0\.0\.1:\d+)").group(1)
        # The banner says how to simulate customers' calls, their recordings made in the
        # Twilio stand-in the recorder fetches them from.
        wait_for(dev.log, f"--customers --twilio-api {re.escape(twilio)}\n")

        out = calltrail(
            *("simulate", "--gateway", f"http://127.0.0.1:{port}", "--customers"),
            *("--calls", str(OUTBOUND), "--inbound", str(INBOUND), "--seed", "2020"),
            *("--twilio-api", twilio),
            env=env,
        )
        assert "voicemail" in out, out
        assert "hung-up" in out, out
        assert re.search(r"conversation .*recordings [1-9]", out), out

        # Every call written (a missed call's job is done once its comments are posted).
        deadline = time.monotonic() + 30
        while f"pending 0  parked 0  done {OUTBOUND + INBOUND}" not in (
            status := calltrail("kintone", "status", env=env)
        ):
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert re.search(r"unmatched [1-9]", status), status  # the strangers and withheld
        assert "without recording file" not in status, status  # every recording attached

        results: Counter[str] = Counter()
        for record_id in range(1, len(DEV_CUSTOMERS) + 1):
            record = kintone_get(kintone, f"record.json?app={DEV_CUSTOMER_APP}&id={record_id}")
            rows = [row["value"] for row in record["record"]["通話履歴"]["value"]]
            missed = {row["CallSid"]["value"] for row in rows if row["通話結果"]["value"] in MISSED}
            results.update(row["通話結果"]["value"] for row in rows)
            for row in rows:
                if row["通話結果"]["value"] in ("completed", "留守電"):  # someone spoke
                    assert_conversation_on_the_row(row, kintone, twilio)
                    results["with conversation"] += 1
                else:
                    assert row["録音"]["value"] == [], row
            posted = comments(kintone, record_id)
            told = Counter(m for c in posted for m in CALL_SID.findall(c["text"]))
            assert told == Counter(missed), (record_id, rows, posted)  # once each, none else
            for comment in posted:
                assert {(m["type"], m["code"]) for m in comment["mentions"]} <= set(DEV_ENTITIES)
                assert comment["mentions"], comment
        assert results["不在着信"], results
        assert results["留守電"], results
        assert results["with conversation"] > results["留守電"], results  # answered ones too
    finally:
        dev.terminate()
        code = dev.stop()
    assert code == 0, dev.log.read_text()
    assert "calltrail dev stopped" in dev.log.read_text()
