"""``calltrail simulate``: realistic, correctly signed Twilio call flows into a running gateway.

Each call is what Twilio does when a kintone user clicks the button: the browser connects
(``/twiml/voice``), Twilio dials the customer and reports the PSTN leg's progress to the
callback URL from the TwiML, and finally reports the browser leg. Callbacks arrive out of
order and repeat, as they do from real Twilio. Outcomes: answered, busy, no answer,
canceled and failed; destinations: mobile, landline and 050 (IP phone).
"""

from __future__ import annotations

import asyncio
import random
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
from rich.progress import Progress

from services.common.numbers import InvalidNumberError, parse_number
from services.devtools.twilio_player import (
    TwilioSigner,
    new_sid,
    status_callback_form,
    voice_request_form,
)

OUTCOMES = (("completed", 60), ("busy", 10), ("no-answer", 15), ("canceled", 10), ("failed", 5))
DESTINATIONS = (
    ("mobile", 50, ("090", "080", "070")),
    ("landline", 35, ("03", "06", "052")),
    ("ip_phone", 15, ("050",)),
)


@dataclass(frozen=True, slots=True)
class PlannedCall:
    parent_sid: str
    child_sid: str
    identity: str
    app_id: str
    record_id: str
    to: str  # as the salesperson's kintone record holds it: domestic, with hyphens
    destination: str
    outcome: str
    duration_s: int  # the PSTN leg's CallDuration (0 unless answered)
    parent_duration_s: int  # the browser leg's
    started_at: datetime
    shuffle_seed: int


@dataclass(slots=True)
class SimulationSummary:
    calls: int = 0
    callbacks: int = 0
    failures: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    destinations: Counter[str] = field(default_factory=Counter)


def _weighted(rng: random.Random, options):  # type: ignore[no-untyped-def]
    return rng.choices(options, weights=[o[1] for o in options])[0]


def _domestic(rng: random.Random, destination: str, prefixes: tuple[str, ...]) -> str:
    """A valid number of the wanted kind, written the way a kintone record holds it."""
    while True:
        prefix = rng.choice(prefixes)
        # 0X0 numbers (090, 050…) have 11 digits, area-code numbers (03, 052…) 10.
        rest = (11 if len(prefix) == 3 and prefix.endswith("0") else 10) - len(prefix)
        digits = "".join(str(rng.randint(0, 9)) for _ in range(rest))
        raw = f"{prefix}-{digits[: rest - 4]}-{digits[rest - 4 :]}"
        try:
            number = parse_number(raw)
        except InvalidNumberError:
            continue
        if number.destination_type().value == destination and not number.is_premium:
            return raw


def plan_calls(
    count: int, seed: int | None = None, start: datetime | None = None
) -> list[PlannedCall]:
    rng = random.Random(seed)
    start = start or datetime.now(UTC)
    calls = []
    for i in range(count):
        destination, _, prefixes = _weighted(rng, DESTINATIONS)
        outcome = _weighted(rng, OUTCOMES)[0]
        answered = outcome == "completed"
        duration = rng.randint(3, 900) if answered else 0
        calls.append(
            PlannedCall(
                parent_sid=new_sid(),
                child_sid=new_sid(),
                identity=f"u_{rng.randint(1, 12)}",
                app_id="12",
                record_id=str(rng.randint(1, 400)),
                to=_domestic(rng, destination, prefixes),
                destination=destination,
                outcome=outcome,
                duration_s=duration,
                parent_duration_s=duration + rng.randint(0, 2) if answered else 0,
                started_at=start - timedelta(seconds=(count - i) * 7),
                shuffle_seed=rng.randint(0, 2**31),
            )
        )
    return calls


def pstn_statuses(call: PlannedCall) -> list[str]:
    if call.outcome == "completed":
        return ["initiated", "ringing", "in-progress", "completed"]
    if call.outcome == "failed":
        return ["initiated", "failed"]
    return ["initiated", "ringing", call.outcome]


def callback_forms(
    call: PlannedCall, account_sid: str, caller_id: str, e164: str
) -> list[tuple[bool, dict[str, str]]]:
    """(is_pstn_leg, form) in the order Twilio might deliver them: reordered, some repeated."""
    rng = random.Random(call.shuffle_seed)
    forms: list[tuple[bool, dict[str, str]]] = []
    moment = call.started_at
    for sequence, status in enumerate(pstn_statuses(call)):
        terminal = status not in ("initiated", "ringing", "in-progress")
        moment += timedelta(seconds=call.duration_s if terminal else rng.randint(1, 8))
        forms.append(
            (
                True,
                status_callback_form(
                    account_sid=account_sid,
                    call_sid=call.child_sid,
                    parent_call_sid=call.parent_sid,
                    status=status,
                    sequence=sequence,
                    from_=caller_id,
                    to=e164,
                    direction="outbound-dial",
                    duration_s=call.duration_s if terminal else None,
                    timestamp=moment,
                ),
            )
        )
    # The browser leg's callback from the TwiML App: once, when it ends.
    forms.append(
        (
            False,
            status_callback_form(
                account_sid=account_sid,
                call_sid=call.parent_sid,
                status="completed",
                sequence=None,
                from_=f"client:{call.identity}",
                to=call.to,
                direction="inbound",
                duration_s=call.parent_duration_s,
                timestamp=moment + timedelta(seconds=1),
            ),
        )
    )
    # Separate HTTP requests overtake each other, and Twilio repeats some.
    for _ in range(2):
        if rng.random() < 0.35:
            i = rng.randrange(len(forms) - 1)
            forms[i], forms[i + 1] = forms[i + 1], forms[i]
    for _ in range(rng.choice((0, 0, 1, 2))):
        forms.insert(rng.randrange(len(forms) + 1), rng.choice(forms))
    return forms


class Simulator:
    def __init__(
        self,
        gateway_url: str,
        signer: TwilioSigner,
        *,
        account_sid: str,
        app_sid: str,
        caller_id: str,
    ) -> None:
        self._gateway = gateway_url.rstrip("/")
        self._signer = signer
        self._account_sid = account_sid
        self._app_sid = app_sid
        self._caller_id = caller_id

    async def _post(
        self, session: aiohttp.ClientSession, path_qs: str, form: dict[str, str]
    ) -> tuple[int, str]:
        headers, body = self._signer.request(path_qs, form)
        for attempt in range(5):  # as Twilio does with connection overrides (#rc=…)
            try:
                async with session.post(
                    self._gateway + path_qs, data=body, headers=headers
                ) as response:
                    text = await response.text()
                    if response.status < 500:
                        return response.status, text
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2 * 2**attempt)
        return 599, "gave up after retries"

    async def play(
        self, session: aiohttp.ClientSession, call: PlannedCall, summary: SimulationSummary
    ) -> None:
        voice = voice_request_form(
            account_sid=self._account_sid,
            call_sid=call.parent_sid,
            identity=call.identity,
            to=call.to,
            app_sid=self._app_sid,
            AppId=call.app_id,
            RecordId=call.record_id,
        )
        status, twiml = await self._post(session, "/twiml/voice", voice)
        number = ET.fromstring(twiml).find("Dial/Number") if status == 200 else None  # noqa: S314
        if number is None or not number.text:
            summary.failures.append(
                f"{call.parent_sid}: /twiml/voice answered {status} without a Dial"
            )
            return
        callback = (number.get("statusCallback") or "").split("#", 1)[0]
        callback_path = callback.removeprefix(self._signer.public_base_url)
        for is_pstn, form in callback_forms(call, self._account_sid, self._caller_id, number.text):
            status, _ = await self._post(
                session, callback_path if is_pstn else "/twilio/status", form
            )
            summary.callbacks += 1
            if status != 204:
                summary.failures.append(f"{form['CallSid']} {form['CallStatus']}: {status}")
        summary.calls += 1
        summary.outcomes[call.outcome] += 1
        summary.destinations[call.destination] += 1

    async def run(
        self, calls: list[PlannedCall], concurrency: int = 8, progress: bool = True
    ) -> SimulationSummary:
        summary = SimulationSummary()
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:
            with Progress(disable=not progress, transient=False) as bar:
                task = bar.add_task("simulating calls", total=len(calls))

                async def one(call: PlannedCall) -> None:
                    async with limit:
                        await self.play(session, call, summary)
                    bar.advance(task)

                await asyncio.gather(*(one(call) for call in calls))
        return summary
