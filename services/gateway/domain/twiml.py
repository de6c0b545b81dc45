"""TwiML answers: who Twilio dials or rings, with which callbacks. Pure: no I/O."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote_plus, urlencode

from twilio.twiml.voice_response import Dial, Start, VoiceResponse

from services.common.events import CallContext
from services.common.numbers import InvalidNumberError, PhoneNumber, parse_number
from services.gateway.domain.line import is_line_user_id

STATUS_CALLBACK_PATH = "/twilio/status"
STATUS_CALLBACK_EVENTS = "initiated ringing answered completed"
RECORDING_CALLBACK_PATH = "/twilio/recording"
TRANSCRIPTION_CALLBACK_PATH = "/twilio/transcription"
NOTICE_PATH = "/twiml/notice"
#: Both sides of the conversation, one channel each, from when the dialled party answers.
RECORD_DIAL = "record-from-answer-dual"
#: A recording's end either way: its file is ready, or there is none (too short, silent).
RECORDING_CALLBACK_EVENTS = "completed absent"
RECORDING_NOTICE_JA = "この通話は、品質向上のため録音させていただきます。"
REFUSAL_JA = "申し訳ありません。この番号には発信できません。"
UNAVAILABLE_JA = "申し訳ありません。ただいま電話に出ることができません。"
AFTER_DIAL_PATH = "/twiml/incoming/after-dial"
VOICEMAIL_DONE_PATH = "/twiml/voicemail/done"
VOICEMAIL_GREETING_JA = (
    "ただいま電話に出ることができません。発信音のあとにメッセージをお話しください。"
)
VOICEMAIL_THANKS_JA = "メッセージをお預かりしました。お電話ありがとうございました。"
#: DialCallStatus values of a <Dial> nobody answered (Twilio's action request). Anything else
#: (completed, answered, absent, unknown) counts as answered: such a call is never forwarded.
MISSED_DIAL_STATUSES = frozenset({"no-answer", "busy", "failed", "canceled"})
#: The caller's own CallStatus in an action request once they have hung up: Twilio still asks
#: the ``<Dial>``'s action, and ignores the answer.
ENDED_CALL_STATUSES = frozenset({"completed", "canceled", "busy", "failed", "no-answer"})
#: What Twilio posts as From for a withheld caller ID (ANONYMOUS, UNAVAILABLE, UNKNOWN, BLOCKED,
#: RESTRICTED spelt on a keypad), besides the words themselves.
WITHHELD_CALLER_IDS = frozenset(
    {"+266696687", "+86282452253", "+8656696", "+2562533", "+7378742833"}
)
ANONYMOUS = "anonymous"
LINE_CALLER = "LINE"


# What quote_plus leaves as it is: validated ids and identities are, and need no quoting.
_QUERY_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def _query_part(text: str) -> str:
    """``urlencode``'s ``quote_plus``, skipped when it would change nothing."""
    return text if _QUERY_SAFE.fullmatch(text) else quote_plus(text)


def _context_query(context: CallContext) -> str:
    """The call's kintone context as a query string (without the ``?``), urlencode's way."""
    fields = [(k, v) for k, v in context.to_dict().items() if v is not None]
    # Validated ids and identities need no quoting, and all of them are safe exactly when
    # their concatenation is: one check instead of one a field (this runs on every dial).
    if _QUERY_SAFE.fullmatch("".join([k + v for k, v in fields])):
        return "&".join([f"{k}={v}" for k, v in fields])
    return "&".join([f"{_query_part(k)}={_query_part(v)}" for k, v in fields])


def _url(public_base_url: str, path: str, query: str, fragment: str) -> str:
    url = f"{public_base_url}{path}"
    if query:
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return url


def status_callback_url(public_base_url: str, context: CallContext, fragment: str = "") -> str:
    """The callback URL, carrying the call's kintone context; Twilio's signature covers it."""
    return _url(public_base_url, STATUS_CALLBACK_PATH, _context_query(context), fragment)


class Callbacks(NamedTuple):
    """Where Twilio reports on one ``<Dial>``: its legs' status, its recording and the call's
    transcription, each URL with the same kintone context in its query (and the same
    connection overrides in its fragment: Twilio applies them to every Programmable Voice
    webhook, and the signature is accepted with or without them). A NamedTuple: one is built
    on every dial, and a frozen dataclass costs several times as much to build."""

    status: str
    recording: str = ""  # "" when the dial records nothing
    transcription: str = ""  # "" when the call is not transcribed

    @classmethod
    def of(
        cls,
        public_base_url: str,
        context: CallContext,
        fragment: str = "",
        conversation: Conversation | None = None,
    ) -> Callbacks:
        """The dial's callbacks; with a ``conversation``, only the ones it needs."""
        query = _context_query(context)  # once for the three
        status = _url(public_base_url, STATUS_CALLBACK_PATH, query, fragment)
        if conversation is None or conversation.recording:
            recording = _url(public_base_url, RECORDING_CALLBACK_PATH, query, fragment)
        else:
            recording = ""
        if conversation is None or conversation.transcription:
            transcription = _url(public_base_url, TRANSCRIPTION_CALLBACK_PATH, query, fragment)
        else:
            transcription = ""
        return cls(status, recording, transcription)


def notice_url(public_base_url: str, fragment: str = "") -> str:
    """The callee's ``<Number url>``: the notice TwiML Twilio runs on them when they answer."""
    return _url(public_base_url, NOTICE_PATH, "", fragment)


@dataclass(frozen=True, slots=True)
class Conversation:
    """What calltrail records and transcribes of a call, and what the customer is told
    (CONTRACT.md section 11). The default records nothing: the TwiML of before."""

    recording: bool = False  # every <Dial>: record-from-answer-dual
    transcription: bool = False  # <Start><Transcription> first
    language: str = "ja-JP"
    engine: str | None = None  # transcriptionEngine, Twilio's default when None
    model: str | None = None  # speechModel, the engine's default when None
    notice: str = RECORDING_NOTICE_JA  # "": none

    @property
    def notice_to_say(self) -> str:
        """The notice the customer hears, "" when nothing is recorded or there is none."""
        return self.notice if self.recording or self.transcription else ""


NOTHING_RECORDED = Conversation()


# The /twiml/voice answer from a prepared template: the same text twilio's VoiceResponse
# builds (attributes sorted, ElementTree's escaping; tests/unit/gateway/test_twiml.py pins the
# two together), without building and serialising an element tree on every dial.
# answerOnBridge: the browser hears ringing until the customer answers, and the browser leg's
# billable time starts with the conversation, as the customer experiences it.
# The parts a Conversation adds are put together once per process (OutboundDial.prepare);
# the {names} are the values of each dial, escaped.
_DIAL_OPEN = '<?xml version="1.0" encoding="UTF-8"?><Response>'
_DIAL_CALLER = '<Dial answerOnBridge="true" callerId="{caller_id}"'
_DIAL_NUMBER_OPEN = (
    '><Number statusCallback="{callback}" statusCallbackEvent="{events}" '
    'statusCallbackMethod="POST"'
)
_DIAL_CLOSE = ">{number}</Number></Dial></Response>"
_RECORD_ATTRIBUTES = (
    f' record="{RECORD_DIAL}" recordingStatusCallback="{{recording_callback}}"'
    f' recordingStatusCallbackEvent="{RECORDING_CALLBACK_EVENTS}"'
)


def _xml_text(text: str) -> str:
    """ElementTree's character data escaping, the do-nothing cases first."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _xml_attribute(text: str) -> str:
    """ElementTree's attribute escaping: character data's, and quotes and white space."""
    text = _xml_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


# The company number, the same on every dial: escaped once.
_escaped_caller_id = functools.lru_cache(maxsize=8)(_xml_attribute)


def _static_attribute(text: str) -> str:
    """A value fixed for the whole process, escaped once into a template (its braces too)."""
    return _xml_attribute(text).replace("{", "{{").replace("}", "}}")


def _dial_number_template(conversation: Conversation, notice_url: str) -> str:
    """The /twiml/voice template for this conversation, put together by concatenation, so
    that no value can be taken for a placeholder."""
    record = _RECORD_ATTRIBUTES if conversation.recording else ""
    notice = ""
    if conversation.notice_to_say:
        notice = ' url="' + _static_attribute(notice_url) + '"'
    return (
        _DIAL_OPEN
        + _transcription_template(conversation)
        + _DIAL_CALLER
        + record
        + _DIAL_NUMBER_OPEN
        + notice
        + _DIAL_CLOSE
    )


def _transcription_template(conversation: Conversation) -> str:
    """``<Start><Transcription>`` as the conversation asks for it ("" when it transcribes
    nothing), with a ``{transcription_callback}`` placeholder."""
    if not conversation.transcription:
        return ""
    return (
        '<Start><Transcription languageCode="'
        + _static_attribute(conversation.language)
        + '" partialResults="false"'
        + _optional_attribute("speechModel", conversation.model)
        + ' statusCallbackUrl="{transcription_callback}" track="both_tracks"'
        + _optional_attribute("transcriptionEngine", conversation.engine)
        + " /></Start>"
    )


def _optional_attribute(name: str, value: str | None) -> str:
    return f' {name}="{_static_attribute(value)}"' if value is not None else ""


@dataclass(frozen=True, slots=True)
class OutboundDial:
    """The /twiml/voice answer: dial the customer from the browser's call, recorded and
    transcribed as the conversation says. Prepared once (the gateway's bootstrap), then only
    formatted on each dial. With a notice to say, the customer hears it from ``notice_url``
    when they answer, before the two are bridged."""

    conversation: Conversation
    template: str

    @classmethod
    def prepare(
        cls, conversation: Conversation = NOTHING_RECORDED, notice_url: str = ""
    ) -> OutboundDial:
        return cls(conversation, _dial_number_template(conversation, notice_url))

    def twiml(self, number: PhoneNumber, caller_id: str, callbacks: Callbacks) -> str:
        return self.template.format(
            caller_id=_escaped_caller_id(caller_id),
            callback=_xml_attribute(callbacks.status),
            events=STATUS_CALLBACK_EVENTS,
            number=_xml_text(number.e164),
            # Escaped only when the template has a place for them.
            recording_callback=(
                _xml_attribute(callbacks.recording) if self.conversation.recording else ""
            ),
            transcription_callback=(
                _xml_attribute(callbacks.transcription) if self.conversation.transcription else ""
            ),
        )


@functools.lru_cache(maxsize=16)
def refusal_twiml(message: str = REFUSAL_JA) -> str:
    """The same few messages every time: built once each."""
    response = VoiceResponse()
    response.say(message, language="ja-JP")
    response.hangup()
    return str(response)


class InboundKind(enum.StrEnum):
    """The two ways a customer calls in: the company number, or LINE through the SIP domain."""

    NUMBER = "number"
    LINE = "line"


@dataclass(frozen=True, slots=True)
class InboundCall:
    """What the ring group's browsers are told about an inbound call (``<Parameter>``s)."""

    kind: InboundKind
    caller: str  # the caller's number in E.164, "LINE", or "anonymous"
    line_user_id: str | None = None

    def parameters(self) -> dict[str, str]:
        """The ``<Parameter>``s on every ``<Client>``: the Voice SDK's ``call.customParameters``."""
        params = {"caller": self.caller, "kind": self.kind.value}
        if self.line_user_id is not None:
            params["line_user_id"] = self.line_user_id
        return params

    def callback_context(self) -> CallContext:
        """The context in the status callback URL of every leg dialled for this call."""
        return CallContext(line_user_id=self.line_user_id, direction="inbound")


def number_call(caller: str | None) -> InboundCall:
    """A call to the company number; an unparseable or withheld caller is "anonymous"."""
    return InboundCall(InboundKind.NUMBER, caller_number(caller) or ANONYMOUS)


def line_call(line_user_id: str | None) -> InboundCall:
    return InboundCall(InboundKind.LINE, LINE_CALLER, line_user_id)


def caller_number(caller: str | None) -> str | None:
    """The caller's number in E.164, or None when there is none to show or to match."""
    if not caller or caller in WITHHELD_CALLER_IDS:
        return None
    try:
        return parse_number(caller).e164
    except InvalidNumberError:
        return None


def after_dial_url(
    public_base_url: str, call: InboundCall, *, forwarded: bool = False, fragment: str = ""
) -> str:
    """The ``action`` of an inbound ``<Dial>``: where Twilio asks what next when it ends."""
    query = {"kind": call.kind.value}
    if call.line_user_id is not None:
        query["line_user_id"] = call.line_user_id
    if forwarded:
        query["forwarded"] = "1"
    url = f"{public_base_url}{AFTER_DIAL_PATH}?{urlencode(query)}"
    return f"{url}#{fragment}" if fragment else url


@dataclass(frozen=True, slots=True)
class AfterDial:
    """An after-dial request's query, read leniently: it is our own signed URL, and a call
    must never be dropped over it (an unknown kind is a number call, a bad id is absent)."""

    call: InboundCall
    forwarded: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AfterDial:
        line_user_id = query.get("line_user_id")
        line_user_id = line_user_id if is_line_user_id(line_user_id) else None
        if query.get("kind") == InboundKind.LINE.value:
            call = line_call(line_user_id)
        else:
            call = InboundCall(InboundKind.NUMBER, ANONYMOUS)
        return cls(call, query.get("forwarded") == "1")


def voicemail_recording_url(public_base_url: str, context: CallContext, fragment: str = "") -> str:
    """A voicemail's ``recordingStatusCallback``: the recording callback with the call's
    context, and ``source=voicemail`` last."""
    query = _context_query(context)
    query = f"{query}&source=voicemail" if query else "source=voicemail"
    return _url(public_base_url, RECORDING_CALLBACK_PATH, query, fragment)


@dataclass(frozen=True, slots=True)
class VoicemailAnswer:
    """What a caller nobody answered hears with ``VOICEMAIL=on`` (CONTRACT.md section 12): the
    greeting, then (transcribed calls) ``<Start><Transcription>`` as section 11 has it, then
    ``<Record>`` with the beep, its file reported to ``/twilio/recording`` with
    ``source=voicemail``, and ``action`` at ``/twiml/voicemail/done`` (the thanks). Templates
    prepared once (the gateway's bootstrap), like /twiml/voice's: the same text twilio's
    VoiceResponse builds (tests/unit/gateway/test_twiml.py pins the two together). Twilio skips
    the ``action`` of an empty recording: the TwiML ends there, and so does the call.

    The ``<Start><Transcription>`` goes only into a voicemail that is the call's first answer
    (no ring group, no forward). After the ring group or the forward, the transcription the
    call's first TwiML started still runs (a ``<Start>`` lasts until the call ends): a second
    one would transcribe the message twice."""

    public_base_url: str
    fragment: str
    conversation: Conversation
    template: str  # the voicemail as the call's first answer: with the transcription's start
    later_template: str  # after the ring group or the forward: the running one goes on

    @classmethod
    def prepare(
        cls,
        *,
        greeting: str,
        max_length_s: int,
        public_base_url: str,
        fragment: str = "",
        conversation: Conversation = NOTHING_RECORDED,
    ) -> VoicemailAnswer:
        done_url = _url(public_base_url, VOICEMAIL_DONE_PATH, "", fragment)
        greeting_say = (
            '<Say language="ja-JP">'
            + _xml_text(greeting).replace("{", "{{").replace("}", "}}")
            + "</Say>"
        )
        record = (
            '<Record action="'
            + _static_attribute(done_url)
            + f'" maxLength="{max_length_s}" method="POST" playBeep="true"'
            + ' recordingStatusCallback="{recording_callback}"'
            + f' recordingStatusCallbackEvent="{RECORDING_CALLBACK_EVENTS}" />'
            + "</Response>"
        )
        first = _DIAL_OPEN + greeting_say + _transcription_template(conversation) + record
        later = _DIAL_OPEN + greeting_say + record
        return cls(public_base_url, fragment, conversation, first, later)

    def twiml(self, call: InboundCall, *, first_answer: bool = False) -> str:
        """``first_answer``: this voicemail is the call's first TwiML (see the class)."""
        context = call.callback_context()
        recording_callback = _xml_attribute(
            voicemail_recording_url(self.public_base_url, context, self.fragment)
        )
        if not first_answer:
            return self.later_template.format(recording_callback=recording_callback)
        transcription = ""
        if self.conversation.transcription:
            transcription = _xml_attribute(
                _url(
                    self.public_base_url,
                    TRANSCRIPTION_CALLBACK_PATH,
                    _context_query(context),
                    self.fragment,
                )
            )
        return self.template.format(
            recording_callback=recording_callback, transcription_callback=transcription
        )


def voicemail_done_twiml() -> str:
    """The ``<Record action>``'s answer once the caller has left a message: thanks, goodbye."""
    return refusal_twiml(VOICEMAIL_THANKS_JA)


def forward_target(
    kind: InboundKind, *, inbound_forward_to: str | None, sip_forward_to: str | None
) -> str | None:
    """Where a call nobody answered goes: SIP_FORWARD_TO for LINE calls when set, else
    INBOUND_FORWARD_TO; None: a spoken message and hangup."""
    if kind is InboundKind.LINE and sip_forward_to:
        return sip_forward_to
    return inbound_forward_to or None


def _callback_attributes(callback_url: str) -> dict[str, str]:
    return {
        "status_callback": callback_url,
        "status_callback_event": STATUS_CALLBACK_EVENTS,
        "status_callback_method": "POST",
    }


def _record_attributes(conversation: Conversation, callbacks: Callbacks) -> dict[str, str]:
    """A ``<Dial>``'s recording, when there is one: both sides, each on its own channel."""
    if not conversation.recording:
        return {}
    return {
        "record": RECORD_DIAL,
        "recording_status_callback": callbacks.recording,
        "recording_status_callback_event": RECORDING_CALLBACK_EVENTS,
    }


def _opening(response: VoiceResponse, conversation: Conversation, callbacks: Callbacks) -> None:
    """What an inbound call's first TwiML begins with: the transcription (on the customer's
    call, so its inbound track is the customer), then the notice, before anyone answers."""
    if conversation.transcription:
        start = Start()
        optional = {"transcription_engine": conversation.engine, "speech_model": conversation.model}
        start.transcription(
            language_code=conversation.language,
            track="both_tracks",
            partial_results=False,
            status_callback_url=callbacks.transcription,
            **{name: value for name, value in optional.items() if value is not None},
        )
        response.append(start)
    if conversation.notice_to_say:
        response.say(conversation.notice_to_say, language="ja-JP")


def ring_group_twiml(
    call: InboundCall,
    *,
    identities: Sequence[str],
    timeout_s: int,
    callbacks: Callbacks,
    action_url: str,
    conversation: Conversation = NOTHING_RECORDED,
) -> str:
    """Ring every browser of the group at once; the first to answer gets the call. When the
    ``<Dial>`` ends, Twilio asks ``action_url`` what next (forward, message, or hang up)."""
    response = VoiceResponse()
    _opening(response, conversation, callbacks)
    # answerOnBridge: the caller hears ringing (and is not billed as answered) until a browser
    # picks up; no callerId: each browser sees the caller's own From.
    dial = Dial(
        action=action_url,
        method="POST",
        timeout=timeout_s,
        answer_on_bridge=True,
        **_record_attributes(conversation, callbacks),
    )
    for identity in identities:
        client = dial.client(**_callback_attributes(callbacks.status))
        client.identity(identity)
        for name, value in call.parameters().items():
            client.parameter(name=name, value=value)
    response.append(dial)
    return str(response)


def forward_twiml(
    number: str,
    *,
    caller_id: str,
    callbacks: Callbacks,
    action_url: str | None = None,
    conversation: Conversation = NOTHING_RECORDED,
    opening: bool = False,
) -> str:
    """Forward a call nobody answered in the browsers to a phone, with a Twilio number as
    caller ID (a SIP From is no number, and Japan's carriers want a number of ours).
    ``opening``: this is the call's first TwiML (nobody to ring), so it starts the
    transcription and says the notice; after the ring group both were done already (a second
    ``<Start><Transcription>`` would transcribe the call twice)."""
    response = VoiceResponse()
    if opening:
        _opening(response, conversation, callbacks)
    action = {"action": action_url, "method": "POST"} if action_url is not None else {}
    dial = Dial(
        caller_id=caller_id,
        answer_on_bridge=True,
        **action,
        **_record_attributes(conversation, callbacks),
    )
    dial.number(number, **_callback_attributes(callbacks.status))
    response.append(dial)
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def unanswered_twiml() -> str:
    return refusal_twiml(UNAVAILABLE_JA)


@functools.lru_cache(maxsize=4)
def notice_twiml(notice: str) -> str:
    """What the callee of an outbound call hears on answering, before the bridge (the
    ``<Number url>``); nothing at all when there is no notice."""
    response = VoiceResponse()
    if notice:
        response.say(notice, language="ja-JP")
    return str(response)


def is_missed(dial_call_status: str | None) -> bool:
    return dial_call_status in MISSED_DIAL_STATUSES


def caller_gone(call_status: str | None) -> bool:
    return call_status in ENDED_CALL_STATUSES


def nobody_answered_twiml(
    call: InboundCall,
    *,
    forward_to: str | None,
    caller_id: str,
    public_base_url: str,
    fragment: str = "",
    conversation: Conversation = NOTHING_RECORDED,
    opening: bool = False,
    voicemail: VoicemailAnswer | None = None,
) -> str:
    """Forward to ``forward_to`` (its leg reported like the browsers' legs, and a message or
    the voicemail if that phone does not answer either), or with nowhere to go, the voicemail
    (``VOICEMAIL=on``) or a message and hangup."""
    if not forward_to:
        if voicemail is None:
            return unanswered_twiml()
        return voicemail.twiml(call, first_answer=opening)
    return forward_twiml(
        forward_to,
        caller_id=caller_id,
        callbacks=Callbacks.of(public_base_url, call.callback_context(), fragment, conversation),
        action_url=after_dial_url(public_base_url, call, forwarded=True, fragment=fragment),
        conversation=conversation,
        opening=opening,
    )


class DialOutcome(enum.StrEnum):
    ANSWERED = "answered"  # a browser answered
    FORWARDED = "forwarded"  # nobody did: on to the forward number
    FORWARD_ANSWERED = "forward_answered"  # and that phone answered
    UNANSWERED = "unanswered"  # nobody anywhere: the message
    VOICEMAIL = "voicemail"  # nobody anywhere: the voicemail (VOICEMAIL=on)


def after_dial_twiml(
    after: AfterDial,
    dial_call_status: str | None,
    *,
    forward_to: str | None,
    caller_id: str,
    public_base_url: str,
    fragment: str = "",
    conversation: Conversation = NOTHING_RECORDED,
    voicemail: VoicemailAnswer | None = None,
    caller_gone: bool = False,
) -> tuple[DialOutcome, str]:
    """What Twilio does when an inbound ``<Dial>`` ends: an answered call (or any status that
    is not a plain miss) hangs up, never forwarded; a missed ring group goes to the forward
    number, else the voicemail (``voicemail``) or the message; a missed forward gets the
    voicemail or the message. ``caller_gone``: the caller hung up while it rang (Twilio still
    asks, and ignores the answer): nobody is there to leave a voicemail, none is offered."""
    if not is_missed(dial_call_status):
        answered = DialOutcome.FORWARD_ANSWERED if after.forwarded else DialOutcome.ANSWERED
        return answered, hangup_twiml()
    if after.forwarded or not forward_to:
        if voicemail is not None and not caller_gone:
            return DialOutcome.VOICEMAIL, voicemail.twiml(after.call)
        return DialOutcome.UNANSWERED, unanswered_twiml()
    twiml = nobody_answered_twiml(
        after.call,
        forward_to=forward_to,
        caller_id=caller_id,
        public_base_url=public_base_url,
        fragment=fragment,
        conversation=conversation,
    )
    return DialOutcome.FORWARDED, twiml
