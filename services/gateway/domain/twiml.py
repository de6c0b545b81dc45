"""TwiML answers: who Twilio dials or rings, with which callbacks. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from services.common.events import CallContext
from services.common.numbers import PhoneNumber

STATUS_CALLBACK_PATH = "/twilio/status"
STATUS_CALLBACK_EVENTS = "initiated ringing answered completed"
REFUSAL_JA = "申し訳ありません。この番号には発信できません。"
UNAVAILABLE_JA = "申し訳ありません。ただいま電話に出ることができません。"


def status_callback_url(public_base_url: str, context: CallContext, fragment: str = "") -> str:
    """The callback URL, carrying the call's kintone context; Twilio's signature covers it."""
    query = urlencode({k: v for k, v in context.to_dict().items() if v is not None})
    url = f"{public_base_url}{STATUS_CALLBACK_PATH}"
    if query:
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return url


def dial_number_twiml(number: PhoneNumber, caller_id: str, callback_url: str) -> str:
    response = VoiceResponse()
    # answerOnBridge: the browser hears ringing until the customer answers, and the browser
    # leg's billable time starts with the conversation, as the customer experiences it.
    dial = Dial(caller_id=caller_id, answer_on_bridge=True)
    dial.number(
        number.e164,
        status_callback=callback_url,
        status_callback_event=STATUS_CALLBACK_EVENTS,
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)


def refusal_twiml(message: str = REFUSAL_JA) -> str:
    response = VoiceResponse()
    response.say(message, language="ja-JP")
    response.hangup()
    return str(response)


def sip_inbound_twiml(
    *,
    caller_id: str,
    callback_url: str,
    forward_to: str | None,
    identities: Iterable[str],
) -> str:
    """Ring a phone (``SIP_FORWARD_TO``) or the browsers of the configured kintone users."""
    identities = list(identities)
    if not forward_to and not identities:
        return refusal_twiml(UNAVAILABLE_JA)
    response = VoiceResponse()
    dial = Dial(caller_id=caller_id, answer_on_bridge=True)
    callback = {
        "status_callback": callback_url,
        "status_callback_event": STATUS_CALLBACK_EVENTS,
        "status_callback_method": "POST",
    }
    if forward_to:
        dial.number(forward_to, **callback)
    else:
        for identity in identities:
            dial.client(identity, **callback)
    response.append(dial)
    return str(response)
