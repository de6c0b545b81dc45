"""Shared set-up for the tests against the Twilio REST stand-in (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.devtools.twilio_rest_standin import TwilioAccount, TwilioStandin, seeded_account
from services.recorder.adapters.twilio_rest import RetryPolicy, TwilioRest
from services.recorder.settings import TwilioAccountSettings
from tests.factories import ACCOUNT_SID, API_KEY, API_SECRET, CALLER_ID, PUBLIC_BASE_URL

SIP_DOMAIN = "acme-line.sip.twilio.com"
LINE_IPS = ("203.0.113.10", "203.0.113.11")
FAST_RETRY = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.05)


def settings_for(standin: TwilioStandin, **overrides: object) -> TwilioAccountSettings:
    values: dict[str, object] = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_api_key": API_KEY,
        "twilio_api_secret": API_SECRET,
        "twilio_caller_id": CALLER_ID,
        "public_base_url": PUBLIC_BASE_URL,
        "twilio_sip_domain": SIP_DOMAIN,
        "line_sip_ips": ",".join(LINE_IPS),
        "twilio_api_base_url": standin.base_url,
    }
    values.update(overrides)
    return TwilioAccountSettings.model_validate(values)


def rest_for(settings: TwilioAccountSettings) -> TwilioRest:
    return TwilioRest.from_settings(settings, timeout_s=5.0, retry=FAST_RETRY)


async def serve_standin() -> AsyncIterator[TwilioStandin]:
    """The stand-in with the tests' account: the 050 number, and someone else's resources."""
    account: TwilioAccount = seeded_account(ACCOUNT_SID, API_KEY, API_SECRET, CALLER_ID)
    async with TwilioStandin(account) as server:
        yield server


@dataclass
class Lines:
    out: list[str]
    err: list[str]

    def write_out(self, line: str) -> None:
        self.out.append(line)

    def write_err(self, line: str) -> None:
        self.err.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.out + self.err)


def lines() -> Lines:
    return Lines([], [])


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str]) -> Ran:
    """``calltrail …`` as a process, with exactly these settings in its environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "LINE_"))}
    base.pop("PUBLIC_BASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


def cli_env(standin: TwilioStandin, **overrides: str) -> dict[str, str]:
    env = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_API_KEY": API_KEY,
        "TWILIO_API_SECRET": API_SECRET,
        "TWILIO_CALLER_ID": CALLER_ID,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_SIP_DOMAIN": SIP_DOMAIN,
        "LINE_SIP_IPS": ",".join(LINE_IPS),
        "TWILIO_API_BASE_URL": standin.base_url,
    }
    env.update(overrides)
    return env
