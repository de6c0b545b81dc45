"""Plays Twilio's side of the webhooks: forms in the shapes Twilio documents, signed as Twilio
signs them (``X-Twilio-Signature``: HMAC-SHA1 over the URL and the sorted form fields, computed
by twilio-python's own ``RequestValidator``).

Used by the tests, the benchmarks and (later) ``calltrail simulate``: one implementation.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
FORM = "application/x-www-form-urlencoded"


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


class TwilioSigner:
    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self.public_base_url = public_base_url.rstrip("/")

    def signature(self, url: str, params: Mapping[str, str]) -> str:
        return str(self._validator.compute_signature(url, dict(params)))

    def request(self, path_qs: str, params: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """Headers and body of a webhook POST to ``path_qs`` under the public base URL."""
        url = self.public_base_url + path_qs
        headers = {
            "X-Twilio-Signature": self.signature(url, params),
            "Content-Type": FORM,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        return headers, urlencode(params)


def status_callback_form(
    *,
    account_sid: str,
    call_sid: str,
    status: str,
    sequence: int | None,
    from_: str,
    to: str,
    direction: str,
    parent_call_sid: str | None = None,
    duration_s: int | None = None,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """A status callback form as Twilio posts it for one leg."""
    form = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "CallStatus": status,
        "Called": to,
        "Caller": from_,
        "Direction": direction,
        "From": from_,
        "To": to,
        "Timestamp": format_datetime(timestamp or datetime.now(UTC)),
        "CallbackSource": "call-progress-events",
    }
    if sequence is not None:
        form["SequenceNumber"] = str(sequence)
    if parent_call_sid:
        form["ParentCallSid"] = parent_call_sid
    if duration_s is not None:
        form["CallDuration"] = str(duration_s)
        form["Duration"] = str(-(-duration_s // 60))  # Twilio's rounded-up minutes
    return form


def voice_request_form(
    *, account_sid: str, call_sid: str, identity: str, to: str, app_sid: str, **custom: str
) -> dict[str, str]:
    """What Twilio posts to the TwiML App's voice URL when the browser SDK connects."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "ApplicationSid": app_sid,
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": "",
        "Caller": f"client:{identity}",
        "Direction": "inbound",
        "From": f"client:{identity}",
        "To": to,
        **custom,
    }


def incoming_voice_form(
    *, account_sid: str, call_sid: str, from_: str, to: str, **extra: str
) -> dict[str, str]:
    """What Twilio posts to a number's (or a SIP domain's) voice URL when a call comes in."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": to,
        "Caller": from_,
        "Direction": "inbound",
        "From": from_,
        "To": to,
        **extra,
    }


def sip_voice_form(
    *,
    account_sid: str,
    call_sid: str,
    from_: str,
    to: str,
    sip_domain: str,
    uui: str | None = None,
    uui_header: str = "SipHeader_X-User-To-User",
) -> dict[str, str]:
    """A SIP domain's voice request: a call from LINE, the caller's LINE user id (if any) in a
    User-to-User header, which Twilio passes on as ``SipHeader_<name>``."""
    extra = {
        "SipCallId": f"{secrets.token_hex(8)}@{sip_domain}",
        "SipDomain": sip_domain,
        "SipDomainSid": new_sid("SD"),
        "SipSourceIp": "203.0.113.10",
    }
    if uui is not None:
        extra[uui_header] = uui
    return incoming_voice_form(
        account_sid=account_sid, call_sid=call_sid, from_=from_, to=to, **extra
    )


def dial_action_form(
    *,
    account_sid: str,
    call_sid: str,
    from_: str,
    to: str,
    dial_status: str,
    dial_call_sid: str | None = None,
    dial_duration_s: int | None = None,
    call_status: str = "in-progress",
) -> dict[str, str]:
    """What Twilio posts to a ``<Dial>``'s ``action`` URL when the dialled call ends."""
    form = incoming_voice_form(account_sid=account_sid, call_sid=call_sid, from_=from_, to=to)
    form["CallStatus"] = call_status
    form["DialCallStatus"] = dial_status
    form["DialBridged"] = "true" if dial_status == "completed" else "false"
    if dial_call_sid is not None:
        form["DialCallSid"] = dial_call_sid
    if dial_duration_s is not None:
        form["DialCallDuration"] = str(dial_duration_s)
    return form
