"""``calltrail simulate``: realistic, correctly signed Twilio call flows into a running gateway.

An outbound call is what Twilio does when a kintone user clicks the button: the browser
connects (``/twiml/voice``), Twilio dials the customer and reports the PSTN leg's progress to the
callback URL from the TwiML, and finally reports the browser leg. Callbacks arrive out of
order and repeat, as they do from real Twilio. Outcomes: answered, busy, no answer,
canceled and failed; destinations: mobile, landline and 050 (IP phone).

An inbound call is a customer calling the company number (``/twiml/incoming``) or calling
through LINE (``/twiml/sip``, the LINE user id in a User-to-User header in one of its forms, or
none): Twilio rings the browsers the gateway's TwiML names, reports each ``<Client>`` leg to its
callback URL, asks the ``<Dial>``'s action what next, dials the forward number if that is the
answer, and reports the parent leg to ``/twilio/status`` (the number's or SIP domain's status
callback: no query). Which browsers ring and whether there is a forward number is the
gateway's to say (``RING_IDENTITIES``, ``INBOUND_FORWARD_TO``); who answers is the plan's.
Callers are strangers (random numbers and LINE users) unless the plan is given customers
(``--customers``: ``DEV_CUSTOMERS``, whom ``calltrail dev``'s kintone stand-in holds), who then
make most of the calls.

The conversation (CONTRACT.md section 11) is played when the gateway's TwiML asks for it, as
Twilio does: a ``<Start><Transcription>`` gets the transcription session's callbacks (started;
the utterances of an answered call, Japanese, both tracks, some out of order and some twice;
stopped) at its ``statusCallbackUrl``, interleaved with the legs' status callbacks; the answered
``<Dial>``'s ``recordingStatusCallback`` gets the recording, ``completed`` after the call. A
gateway that records nothing gets nothing of it. Given the Twilio REST API the recorder fetches
recordings from (``twilio_api``: ``calltrail simulate --twilio-api``, the REST stand-in of
``calltrail dev``), the ``RecordingUrl`` is on that host, as Twilio's is on api.twilio.com, and
each recording is made there with its media (the stand-in's dev-only ``PUT
/_standin/recordings/{Sid}``) before its ``completed`` callback is posted, as Twilio holds a
recording before it calls back; without it, the ``RecordingUrl`` is on api.twilio.com and
nothing else is asked of anyone.

Missed calls (CONTRACT.md section 12): some callers hang up while the browsers ring (every
``<Client>`` leg ``canceled``; Twilio still asks the ``<Dial>``'s action, and the simulator, like
Twilio, ignores the answer), some forwards ring out, and when the gateway answers a call nobody
took with a ``<Record>`` (``VOICEMAIL=on``) the caller hears the greeting and either leaves a
message (a few utterances on the caller's track, to the voicemail's own ``<Start><Transcription>``
or else the call's first one; the ``<Record>``'s action; its recording ``completed``, source
``RecordVerb``) or says nothing (the recording ``absent``, no action, as Twilio does).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from rich.progress import Progress

from services.common.numbers import InvalidNumberError, parse_number
from services.devtools.call_flows import (
    COMPANY_NUMBER,
    LINE_SIP_DOMAIN,
    LINE_SIP_FROM,
    LINE_SIP_TO,
    DevCustomer,
    forward_leg_forms,
    parent_leg_form,
    ring_leg_forms,
)
from services.devtools.twilio_player import (
    TWILIO_API,
    TwilioSigner,
    dial_action_form,
    incoming_voice_form,
    new_sid,
    recording_callback_form,
    sip_voice_form,
    status_callback_form,
    transcription_callback_form,
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


@dataclass(frozen=True, slots=True)
class PlannedInbound:
    """One inbound call as Twilio's side plays it; the gateway's TwiML says the rest."""

    parent_sid: str
    kind: str  # "number" (/twiml/incoming) or "line" (/twiml/sip)
    caller: str  # From: the customer's number in E.164, a withheld one, or LINE's SIP URI
    uui: str | None  # a LINE call's User-to-User header as sent (None: no header)
    line_user_id: str | None  # the id in it, if it is a readable one
    answered: bool  # a browser answers (else nobody does before RING_TIMEOUT_S)
    answerer: int  # which of the rung browsers answers (modulo how many ring)
    forward_answers: bool  # the forward phone answers, if the gateway forwards
    ring_s: int
    talk_s: int
    started_at: datetime
    shuffle_seed: int
    hangs_up: bool = False  # gives up while the browsers ring (never when one answers)
    leaves_message: bool = True  # speaks into the voicemail, if the gateway offers one
    message_s: int = 20  # how long


@dataclass(slots=True)
class SimulationSummary:
    calls: int = 0
    callbacks: int = 0
    failures: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    destinations: Counter[str] = field(default_factory=Counter)
    inbound: Counter[str] = field(default_factory=Counter)  # "number answered", "line missed" …
    conversation: Counter[str] = field(default_factory=Counter)  # "utterances", "recordings"


Weighted = TypeVar("Weighted", bound=tuple[Any, ...])


def _weighted(rng: random.Random, options: Sequence[Weighted]) -> Weighted:
    """One of ``options`` (tuples whose second item is the weight)."""
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
    return jitter(forms, rng)


T = TypeVar("T")


def jitter(items: list[T], rng: random.Random) -> list[T]:
    """As Twilio delivers status callbacks: separate HTTP requests overtake each other, and
    Twilio repeats some."""
    for _ in range(2):
        if len(items) > 1 and rng.random() < 0.35:
            i = rng.randrange(len(items) - 1)
            items[i], items[i + 1] = items[i + 1], items[i]
    for _ in range(rng.choice((0, 0, 1, 2)) if items else 0):
        items.insert(rng.randrange(len(items) + 1), rng.choice(items))
    return items


# --- inbound calls -----------------------------------------------------------------------------

INBOUND_KINDS = (("number", 70), ("line", 30))
WITHHELD_CALLERS = ("anonymous", "+266696687")  # as Twilio posts a withheld caller ID
ANSWERED_SHARE = 0.65


def _uui(rng: random.Random, line_user_id: str) -> tuple[str | None, str | None]:
    """A User-to-User header in one of the forms it comes in, and the id readable in it."""
    hex_id = line_user_id.encode().hex()
    form = rng.choices(
        ["plain", "params", "hex", "percent", "none", "junk"], weights=[30, 15, 30, 10, 8, 7]
    )[0]
    if form == "plain":
        return line_user_id, line_user_id
    if form == "params":
        return f"{line_user_id};purpose=isdn-uui;content=isdn-uui", line_user_id
    if form == "hex":
        return f"{hex_id};encoding=hex;purpose=isdn-uui", line_user_id
    if form == "percent":
        return quote(f"{hex_id};encoding=hex", safe=""), line_user_id
    if form == "junk":
        return rng.choice(["", "U123", "anonymous", line_user_id.upper(), f"{hex_id}"]), None
    return None, None


#: The share of unanswered calls whose caller hangs up while it rings (``calltrail simulate``),
#: and of voicemails that are a message (the rest: silence).
HANG_UP_SHARE = 0.3
MESSAGE_SHARE = 0.75
#: With ``customers`` (``calltrail simulate --customers``): the share of callers who are one.
KNOWN_CALLER_SHARE = 0.8


def plan_inbound_calls(
    count: int,
    seed: int | None = None,
    start: datetime | None = None,
    hang_ups: float = 0.0,
    customers: Sequence[DevCustomer] = (),
) -> list[PlannedInbound]:
    """``hang_ups``: the share of unanswered calls whose caller gives up while it rings.
    ``customers``: who most callers are (``KNOWN_CALLER_SHARE`` of the numbers that are not
    withheld, and of the LINE calls if some have a LINE user id); the rest stay strangers.
    What missed callers do and which customer calls are drawn from streams of their own, so a
    seed plans the same calls as before they were added."""
    rng = random.Random(seed)
    missed = random.Random(None if seed is None else f"{seed}:missed")
    known = random.Random(None if seed is None else f"{seed}:customers")
    phones = [customer.e164 for customer in customers]
    line_ids = [customer.line_user_id for customer in customers if customer.line_user_id]
    start = start or datetime.now(UTC)
    calls = []
    for i in range(count):
        kind = _weighted(rng, INBOUND_KINDS)[0]
        uui = line_user_id = None
        if kind == "line":
            caller = LINE_SIP_FROM
            user_id = "U" + "".join(rng.choices("0123456789abcdef", k=32))
            if line_ids and known.random() < KNOWN_CALLER_SHARE:
                user_id = known.choice(line_ids)
            uui, line_user_id = _uui(rng, user_id)
        elif rng.random() < 0.05:
            caller = rng.choice(WITHHELD_CALLERS)
        else:
            destination, _, prefixes = _weighted(rng, DESTINATIONS)
            caller = parse_number(_domestic(rng, destination, prefixes)).e164
            if phones and known.random() < KNOWN_CALLER_SHARE:
                caller = known.choice(phones)
        answered = rng.random() < ANSWERED_SHARE
        calls.append(
            PlannedInbound(
                parent_sid=new_sid(),
                kind=kind,
                caller=caller,
                uui=uui,
                line_user_id=line_user_id,
                answered=answered,
                answerer=rng.randrange(10),
                forward_answers=rng.random() < 0.7,
                ring_s=rng.randint(2, 18) if answered else 20,
                talk_s=rng.randint(5, 600),
                started_at=start - timedelta(seconds=(count - i) * 11),
                shuffle_seed=rng.randint(0, 2**31),
                hangs_up=missed.random() < hang_ups and not answered,
                leaves_message=missed.random() < MESSAGE_SHARE,
                message_s=missed.randint(5, 40),
            )
        )
    return calls


def inbound_voice(call: PlannedInbound, account_sid: str) -> tuple[str, dict[str, str]]:
    """The voice URL's path and form: the company number's, or the LINE SIP domain's."""
    if call.kind == "line":
        form = sip_voice_form(
            account_sid=account_sid,
            call_sid=call.parent_sid,
            from_=call.caller,
            to=LINE_SIP_TO,
            sip_domain=LINE_SIP_DOMAIN,
            uui=call.uui,
        )
        return "/twiml/sip", form
    form = incoming_voice_form(
        account_sid=account_sid, call_sid=call.parent_sid, from_=call.caller, to=COMPANY_NUMBER
    )
    return "/twiml/incoming", form


def ring_forms(call: PlannedInbound, identities: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(identity, form) of every ``<Client>`` leg, in the order Twilio might deliver them."""
    answerer = identities[call.answerer % len(identities)] if call.answered else None
    forms: list[tuple[str, dict[str, str]]] = []
    for identity in identities:
        if call.hangs_up:
            outcome = "canceled"  # the caller gave up: Twilio cancels every leg
        elif answerer is None:
            outcome = "no-answer"
        else:
            outcome = "answered" if identity == answerer else "canceled"
        leg = ring_leg_forms(
            parent=call.parent_sid,
            child=new_sid(),
            caller=call.caller,
            identity=identity,
            outcome=outcome,
            at=call.started_at,
            ring_s=call.ring_s,
            talk_s=call.talk_s,
        )
        forms += [(identity, form) for form in leg]
    return jitter(forms, random.Random(call.shuffle_seed))


def _answered_leg(forms: list[tuple[str, dict[str, str]]]) -> str | None:
    return next((f["CallSid"] for _, f in forms if f["CallStatus"] == "in-progress"), None)


# --- the conversation: transcription and recording (CONTRACT.md section 11) --------------------

STAFF, CUSTOMER = "staff", "customer"
#: What is said on a call, in order, and by whom; a call says as much of it as its length allows.
SCRIPTS: dict[str, tuple[tuple[str, str], ...]] = {
    "outbound": (
        (STAFF, "お世話になっております。カルトレイルの佐藤でございます。"),
        (CUSTOMER, "あ、お世話になっております。"),
        (STAFF, "先日お送りしたお見積もりの件でお電話いたしました。"),
        (CUSTOMER, "ありがとうございます。いま社内で確認しているところです。"),
        (STAFF, "ご不明な点はございませんでしょうか。"),
        (CUSTOMER, "納期なんですが、来月末で間に合いますか。"),
        (STAFF, "はい、来月末でしたら問題ございません。"),
        (CUSTOMER, "承知しました。では来週中にお返事します。"),
        (STAFF, "よろしくお願いいたします。失礼いたします。"),
    ),
    "inbound": (
        (STAFF, "お電話ありがとうございます。カルトレイルの佐藤でございます。"),
        (CUSTOMER, "もしもし、先週注文した件でお電話しました。"),
        (STAFF, "ありがとうございます。ご注文番号をお伺いできますか。"),
        (CUSTOMER, "はい、エー・ワン・ツー・スリーです。"),
        (STAFF, "確認いたします。少々お待ちください。"),
        (STAFF, "お待たせいたしました。明日発送の予定でございます。"),
        (CUSTOMER, "よかった、ありがとうございます。"),
        (STAFF, "ほかにご不明な点はございますか。"),
        (CUSTOMER, "大丈夫です。失礼します。"),
    ),
    # A voicemail: the caller alone, after the beep.
    "voicemail": (
        (CUSTOMER, "お世話になっております。株式会社サンプルの田中です。"),
        (CUSTOMER, "先日いただいたお見積もりの件でお電話しました。"),
        (CUSTOMER, "お手数ですが、折り返しお電話をお願いいたします。"),
        (CUSTOMER, "番号は090の1111の2222です。失礼いたします。"),
    ),
}
#: Twilio names the tracks from the call that ran the TwiML: the browser's on an outbound call
#: (inbound_track: the salesperson), the customer's on an inbound call (inbound_track: them).
TRACKS = {
    ("outbound", STAFF): "inbound_track",
    ("outbound", CUSTOMER): "outbound_track",
    ("inbound", CUSTOMER): "inbound_track",
    ("inbound", STAFF): "outbound_track",
    ("voicemail", CUSTOMER): "inbound_track",  # the <Record> runs on the caller's call
}
GREETING_S = 7  # the voicemail greeting, until the beep
SECONDS_PER_UTTERANCE = 10
ANSWER_AFTER_S = 5  # an outbound call's ring before the customer answers, roughly


def transcription_forms(
    *,
    account_sid: str,
    call_sid: str,
    direction: str,
    talk_s: int,
    started_at: datetime,
    answered_at: datetime,
    language: str,
    seed: int,
) -> list[dict[str, str]]:
    """One call's transcription session as Twilio posts it, in the order of its SequenceIds:
    started when the TwiML ran, an utterance every few seconds while the two talk (none when
    nobody answered), stopped when the call ended."""
    rng = random.Random(seed)
    sid = new_sid("GT")
    script = SCRIPTS[direction][: talk_s // SECONDS_PER_UTTERANCE + 1] if talk_s > 0 else ()
    sequence = itertools.count(1)

    def form(event: str, moment: datetime, **utterance: Any) -> dict[str, str]:
        return transcription_callback_form(
            account_sid=account_sid,
            call_sid=call_sid,
            transcription_sid=sid,
            event=event,
            sequence=next(sequence),
            language=language,
            timestamp=moment,
            **utterance,
        )

    forms = [form("transcription-started", started_at)]
    for i, (speaker, text) in enumerate(script):
        moment = answered_at + timedelta(seconds=(i + 1) * talk_s / (len(script) + 1))
        forms.append(
            form(
                "transcription-content",
                moment,
                track=TRACKS[direction, speaker],
                transcript=text,
                confidence=round(rng.uniform(0.8, 0.99), 4),
            )
        )
    forms.append(form("transcription-stopped", answered_at + timedelta(seconds=talk_s)))
    return forms


def interleave(first: list[T], second: list[T], rng: random.Random) -> list[T]:
    """The two lists in one, each in its own order: separate webhooks of one call overtake
    each other."""
    merged: list[T] = []
    i = j = 0
    while i < len(first) or j < len(second):
        left, right = len(first) - i, len(second) - j
        if right == 0 or (left > 0 and rng.random() < left / (left + right)):
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


Post = tuple[str, dict[str, str]]  # the path (with query) a form is posted to


@dataclass(frozen=True, slots=True)
class Conversation:
    """What one call's TwiML asked Twilio to post about the conversation, and where."""

    transcription_path: str | None  # <Start><Transcription statusCallbackUrl>
    language: str

    @classmethod
    def of(cls, root: ET.Element, path: Any) -> Conversation:
        transcription = root.find("Start/Transcription")
        if transcription is None:
            return cls(None, "")
        return cls(
            path(transcription.get("statusCallbackUrl")),
            transcription.get("languageCode") or "ja-JP",
        )


def simulated_media(form: dict[str, str]) -> bytes:
    """A simulated recording's media: not audio, but bytes of its own (an ID3 tag's start, as
    an MP3 file's), so a test can tell one call's file from another's."""
    return (
        b"ID3\x04\x00\x00\x00\x00\x00\x00"
        + f"calltrail simulate: {form['RecordingSid']} of {form['CallSid']}, "
        f"{form.get('RecordingDuration', '?')} s".encode()
    )


def _what(form: dict[str, str]) -> str:
    """A callback in a failure line: its CallSid and its status or event."""
    event = form.get("CallStatus") or form.get("RecordingStatus") or form.get("TranscriptionEvent")
    return f"{form['CallSid']} {event}"


class Simulator:
    def __init__(
        self,
        gateway_url: str,
        signer: TwilioSigner,
        *,
        account_sid: str,
        app_sid: str,
        caller_id: str,
        twilio_api: str | None = None,
    ) -> None:
        self._gateway = gateway_url.rstrip("/")
        self._signer = signer
        self._account_sid = account_sid
        self._app_sid = app_sid
        self._caller_id = caller_id
        # A Twilio REST stand-in to make recordings in (the module docstring); None: none.
        self._twilio_api = twilio_api.rstrip("/") if twilio_api else None

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
        root = await self._twiml(session, "/twiml/voice", voice, summary)
        number = root.find("Dial/Number") if root is not None else None
        if root is None or number is None or not number.text:
            if root is not None:
                summary.failures.append(f"{call.parent_sid}: /twiml/voice answered no Dial")
            return
        callback_path = self._path(number.get("statusCallback"))
        posts = [
            (callback_path if is_pstn else "/twilio/status", form)
            for is_pstn, form in callback_forms(
                call, self._account_sid, self._caller_id, number.text
            )
        ]
        talk_s = call.duration_s if call.outcome == "completed" else 0
        answered_at = call.started_at + timedelta(seconds=ANSWER_AFTER_S)
        posts = self._with_conversation(
            posts,
            root,
            call_sid=call.parent_sid,
            direction="outbound",
            talk_s=talk_s,
            started_at=call.started_at,
            answered_at=answered_at,
            seed=call.shuffle_seed,
            summary=summary,
        )
        await self._callbacks(session, posts, summary)
        summary.calls += 1
        summary.outcomes[call.outcome] += 1
        summary.destinations[call.destination] += 1

    def _with_conversation(
        self,
        posts: list[Post],
        root: ET.Element,
        *,
        call_sid: str,
        direction: str,
        talk_s: int,
        started_at: datetime,
        answered_at: datetime,
        seed: int,
        summary: SimulationSummary,
        recorded_by: ET.Element | None = None,
    ) -> list[Post]:
        """``posts`` with what the TwiML ``root`` asked Twilio to post about the conversation:
        the transcription's callbacks interleaved (its utterances partly out of order, some
        twice), and the recording of the answered ``<Dial>`` (``recorded_by``, default the
        root's) after the call; of a voicemail's ``<Record>`` (``recorded_by``), the message,
        or ``absent`` when the caller said nothing (``talk_s`` 0)."""
        rng = random.Random(seed + 2)
        conversation = Conversation.of(root, self._path)
        if conversation.transcription_path is not None:
            session = transcription_forms(
                account_sid=self._account_sid,
                call_sid=call_sid,
                direction=direction,
                talk_s=talk_s,
                started_at=started_at,
                answered_at=answered_at,
                language=conversation.language,
                seed=seed,
            )
            said = jitter(session[1:-1], rng)
            summary.conversation["utterances"] += len(session) - 2
            flow = [session[0], *said, session[-1]]
            posts = interleave(posts, [(conversation.transcription_path, f) for f in flow], rng)
        dial = recorded_by if recorded_by is not None else root.find("Dial")
        recording_url = dial.get("recordingStatusCallback") if dial is not None else None
        voicemail = dial is not None and dial.tag == "Record"
        if recording_url and (talk_s > 0 or voicemail):
            recording = recording_callback_form(
                account_sid=self._account_sid,
                call_sid=call_sid,
                recording_sid=new_sid("RE"),
                status="completed" if talk_s > 0 else "absent",
                duration_s=talk_s if talk_s > 0 else -1,
                started_at=answered_at,
                error_code=None if talk_s > 0 else "16102",  # silent
                source="RecordVerb" if voicemail else "DialVerb",
                api_base_url=self._twilio_api or TWILIO_API,
            )
            posts.append((self._path(recording_url), recording))
            summary.conversation["voicemails" if voicemail else "recordings"] += 1
        return posts

    def _path(self, url: str | None) -> str:
        """A URL from the TwiML as the path to post to (connection overrides are no part of
        the request)."""
        return (url or "").split("#", 1)[0].removeprefix(self._signer.public_base_url)

    async def _callbacks(
        self,
        session: aiohttp.ClientSession,
        forms: list[tuple[str, dict[str, str]]],
        summary: SimulationSummary,
    ) -> None:
        for path, form in forms:
            if self._twilio_api is not None and form.get("RecordingStatus") == "completed":
                await self._make_recording(session, form, summary)
            status, _ = await self._post(session, path, form)
            summary.callbacks += 1
            if status != 204:
                summary.failures.append(f"{_what(form)}: {status}")

    async def _make_recording(
        self, session: aiohttp.ClientSession, form: dict[str, str], summary: SimulationSummary
    ) -> None:
        """The recording the callback ``form`` reports, made in the Twilio stand-in with its
        media (the stand-in's dev-only route: Twilio has no API for it). A failure is the
        run's; the callback is posted all the same (the recorder then lists the call without
        its file, as it would after Twilio lost one)."""
        assert self._twilio_api is not None
        described = (
            "CallSid",
            "RecordingDuration",
            "RecordingChannels",
            "RecordingSource",
            "RecordingStartTime",
        )
        url = f"{self._twilio_api}/_standin/recordings/{form['RecordingSid']}"
        try:
            async with session.put(
                url,
                params={name: form[name] for name in described if name in form},
                data=simulated_media(form),
                headers={"Content-Type": "audio/mpeg"},
            ) as response:
                status = response.status
        except aiohttp.ClientError:
            status = 599
        if status not in (200, 201):
            summary.failures.append(
                f"{_what(form)}: the Twilio stand-in made no recording ({status})"
            )

    async def _twiml(
        self,
        session: aiohttp.ClientSession,
        path: str,
        form: dict[str, str],
        summary: SimulationSummary,
    ) -> ET.Element | None:
        status, text = await self._post(session, path, form)
        try:
            root = ET.fromstring(text) if status == 200 else None  # noqa: S314 - our gateway
        except ET.ParseError:
            root = None
        if root is None:
            summary.failures.append(f"{form['CallSid']}: {path.split('?')[0]} answered {status}")
        return root

    async def play_inbound(
        self, session: aiohttp.ClientSession, call: PlannedInbound, summary: SimulationSummary
    ) -> None:
        path, voice = inbound_voice(call, self._account_sid)
        root = await self._twiml(session, path, voice, summary)
        if root is None:
            return
        moment = call.started_at
        outcome = "missed"
        opening = root  # what the call's first TwiML asked for: the transcription, if any
        conversed = False  # the conversation's callbacks are played (with whoever answered)

        def conversation(posts: list[Post], answered_at: datetime, talk_s: int) -> list[Post]:
            nonlocal conversed
            conversed = True
            return self._with_conversation(
                posts,
                opening,
                call_sid=call.parent_sid,
                direction="inbound",
                talk_s=talk_s,
                started_at=call.started_at,
                answered_at=answered_at,
                seed=call.shuffle_seed,
                summary=summary,
                recorded_by=dial,
            )

        clients = root.findall("Dial/Client")
        dial = root.find("Dial")
        if clients:
            assert dial is not None
            callbacks = {
                c.findtext("Identity") or "": self._path(c.get("statusCallback")) for c in clients
            }
            legs = ring_forms(call, list(callbacks))
            answered = _answered_leg(legs)
            posts = [(callbacks[i], f) for i, f in legs]
            if answered:
                answer_at = call.started_at + timedelta(seconds=call.ring_s)
                posts = conversation(posts, answer_at, call.talk_s)
            await self._callbacks(session, posts, summary)
            moment += timedelta(seconds=call.ring_s + (call.talk_s if answered else 0))
            # A caller who hung up: Twilio still asks the action (the call is over, and the
            # answer ignored). Guess: DialCallStatus ``canceled`` then (Twilio's <Dial> page
            # lists it, without saying when).
            dial_status = "completed" if answered else "canceled" if call.hangs_up else "no-answer"
            action = dial_action_form(
                account_sid=self._account_sid,
                call_sid=call.parent_sid,
                from_=voice["From"],
                to=voice["To"],
                dial_status=dial_status,
                dial_call_sid=answered,
                dial_duration_s=call.talk_s if answered else None,
                call_status="completed" if answered or call.hangs_up else "in-progress",
            )
            root = await self._twiml(session, self._path(dial.get("action")), action, summary)
            if root is None:
                return
            outcome = "answered" if answered else "hung-up" if call.hangs_up else outcome
        number = root.find("Dial/Number")
        if number is not None and outcome == "missed":
            dial = root.find("Dial")
            assert dial is not None
            child = new_sid()
            forward = forward_leg_forms(
                parent=call.parent_sid,
                child=child,
                to=number.text or "",
                answered=call.forward_answers,
                at=moment,
                talk_s=call.talk_s,
                caller_id=dial.get("callerId") or self._caller_id,
            )
            callback = self._path(number.get("statusCallback"))
            rng = random.Random(call.shuffle_seed + 1)
            posts = jitter([(callback, f) for f in forward], rng)
            if call.forward_answers:
                posts = conversation(posts, moment + timedelta(seconds=8), call.talk_s)
            await self._callbacks(session, posts, summary)
            moment += timedelta(seconds=8 + (call.talk_s if call.forward_answers else 0))
            if dial.get("action"):
                action = dial_action_form(
                    account_sid=self._account_sid,
                    call_sid=call.parent_sid,
                    from_=voice["From"],
                    to=voice["To"],
                    dial_status="completed" if call.forward_answers else "no-answer",
                    dial_call_sid=child,
                    dial_duration_s=call.talk_s if call.forward_answers else None,
                )
                after = await self._twiml(session, self._path(dial.get("action")), action, summary)
                if after is not None:
                    outcome = "forwarded" if call.forward_answers else outcome
                    root = after
        record = root.find("Record")
        if record is not None and outcome == "missed":
            moment, heard_by_opening = await self._voicemail(
                session, call, voice, root, record, opening, moment, summary
            )
            conversed = conversed or heard_by_opening
            outcome = "voicemail" if call.leaves_message else "voicemail-silent"
        parent = parent_leg_form(
            parent=call.parent_sid,
            from_=voice["From"],
            to=voice["To"],
            duration_s=int((moment - call.started_at).total_seconds()) + 1,
            at=moment,
        )
        posts = [("/twilio/status", parent)]
        if not conversed:  # nobody answered: the transcription started and stopped, unheard
            posts = conversation(posts, moment, 0)
        await self._callbacks(session, posts, summary)
        summary.calls += 1
        summary.inbound[f"{call.kind} {outcome}"] += 1

    async def _voicemail(
        self,
        session: aiohttp.ClientSession,
        call: PlannedInbound,
        voice: dict[str, str],
        twiml: ET.Element,
        record: ET.Element,
        opening: ET.Element,
        moment: datetime,
        summary: SimulationSummary,
    ) -> tuple[datetime, bool]:
        """The caller hears the greeting, then after the beep leaves a message or says nothing.
        What they say goes to the voicemail TwiML's own transcription, else to the call's first
        one (guess: Twilio's pages do not say what a second session on a call hears; one is
        enough to say it once). Returns when the call ends, and whether the call's first
        transcription session was played here."""
        beep = moment + timedelta(seconds=GREETING_S)
        longest = int(record.get("maxLength") or 3600)
        message_s = min(call.message_s, longest) if call.leaves_message else 0
        own = twiml.find("Start/Transcription") is not None
        flow = self._with_conversation(
            [],
            twiml if own else opening,
            call_sid=call.parent_sid,
            direction="voicemail",
            talk_s=message_s,
            started_at=moment if own else call.started_at,
            answered_at=beep,
            seed=call.shuffle_seed,
            summary=summary,
            recorded_by=record,
        )
        recording = flow.pop()  # a <Record> always reports: completed, or absent
        await self._callbacks(session, flow, summary)
        end = beep + timedelta(seconds=message_s)
        if message_s:
            # The message ended (silence, a key, or maxLength): Twilio asks the action. An
            # empty recording skips it, and the call ends with the TwiML.
            done = incoming_voice_form(
                account_sid=self._account_sid,
                call_sid=call.parent_sid,
                from_=voice["From"],
                to=voice["To"],
                RecordingUrl=recording[1]["RecordingUrl"],
                RecordingDuration=str(message_s),
                Digits="hangup",
            )
            done["CallStatus"] = "in-progress"
            await self._twiml(session, self._path(record.get("action")), done, summary)
            end += timedelta(seconds=4)  # the thanks
        await self._callbacks(session, [recording], summary)
        return end, not own or twiml is opening

    async def run(
        self,
        calls: list[PlannedCall],
        concurrency: int = 8,
        progress: bool = True,
        inbound: Sequence[PlannedInbound] = (),
    ) -> SimulationSummary:
        summary = SimulationSummary()
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession() as session:
            with Progress(disable=not progress, transient=False) as bar:
                task = bar.add_task("simulating calls", total=len(calls) + len(inbound))

                async def one(call: PlannedCall | PlannedInbound) -> None:
                    async with limit:
                        if isinstance(call, PlannedInbound):
                            await self.play_inbound(session, call, summary)
                        else:
                            await self.play(session, call, summary)
                    bar.advance(task)

                every: list[PlannedCall | PlannedInbound] = [*calls, *inbound]
                await asyncio.gather(*(one(call) for call in every))
        return summary
