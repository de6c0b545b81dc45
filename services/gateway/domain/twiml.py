"""TwiML answers: who Twilio dials or rings, with which callbacks. Pure: no I/O."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import quote_plus

from twilio.twiml.voice_response import Dial, VoiceResponse

from services.common.events import CallContext
from services.common.numbers import PhoneNumber

STATUS_CALLBACK_PATH = "/twilio/status"
STATUS_CALLBACK_EVENTS = "initiated ringing answered completed"
REFUSAL_JA = "申し訳ありません。この番号には発信できません。"
UNAVAILABLE_JA = "申し訳ありません。ただいま電話に出ることができません。"


# What quote_plus leaves as it is: validated ids and identities are, and need no quoting.
_QUERY_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


def _query_part(text: str) -> str:
    """``urlencode``'s ``quote_plus``, skipped when it would change nothing."""
    return text if _QUERY_SAFE.fullmatch(text) else quote_plus(text)


def status_callback_url(public_base_url: str, context: CallContext, fragment: str = "") -> str:
    """The callback URL, carrying the call's kintone context; Twilio's signature covers it."""
    query = "&".join(
        f"{_query_part(k)}={_query_part(v)}" for k, v in context.to_dict().items() if v is not None
    )
    url = f"{public_base_url}{STATUS_CALLBACK_PATH}"
    if query:
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return url


# The /twiml/voice answer from a prepared template: the same text twilio's VoiceResponse
# builds (attributes sorted, ElementTree's escaping; tests/unit/gateway/test_twiml.py pins the
# two together), without building and serialising an element tree on every dial.
# answerOnBridge: the browser hears ringing until the customer answers, and the browser leg's
# billable time starts with the conversation, as the customer experiences it.
_DIAL_NUMBER = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    '<Dial answerOnBridge="true" callerId="{caller_id}">'
    '<Number statusCallback="{callback}" statusCallbackEvent="{events}" '
    'statusCallbackMethod="POST">{number}</Number></Dial></Response>'
)


def _xml_attribute(text: str) -> str:
    """ElementTree's attribute escaping, the do-nothing cases first."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _xml_text(text: str) -> str:
    """ElementTree's character data escaping."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def dial_number_twiml(number: PhoneNumber, caller_id: str, callback_url: str) -> str:
    return _DIAL_NUMBER.format(
        caller_id=_xml_attribute(caller_id),
        callback=_xml_attribute(callback_url),
        events=STATUS_CALLBACK_EVENTS,
        number=_xml_text(number.e164),
    )


@functools.lru_cache(maxsize=16)
def refusal_twiml(message: str = REFUSAL_JA) -> str:
    """The same few messages every time: built once each."""
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
