"""Plays Twilio's side of the webhooks: forms in the shapes Twilio documents, signed as Twilio
signs them (``X-Twilio-Signature``: HMAC-SHA1 over the URL and the sorted form fields, computed
by twilio-python's own ``RequestValidator``).

Used by the tests, the benchmarks and (later) ``calltrail simulate``: one implementation.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
TWILIO_API = "https://api.twilio.com"  # where Twilio's RecordingUrl points
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


def recording_callback_form(
    *,
    account_sid: str,
    call_sid: str,
    recording_sid: str,
    status: str = "completed",
    duration_s: int | None = None,
    started_at: datetime | None = None,
    error_code: str | None = None,
    source: str = "DialVerb",
    api_base_url: str = TWILIO_API,
) -> dict[str, str]:
    """A ``<Dial record="record-from-answer-dual">``'s recording status callback, as Twilio's
    "TwiML Voice: <Dial>" and "<Recording>" pages list its parameters: CallSid is the call
    that ran the TwiML (the parent of the dialled leg); two channels; the source DialVerb.
    ``source="RecordVerb"``: a ``<Record>``'s (a voicemail: the caller alone, one channel;
    ``RecordingSource`` as the Recording resource's ``source`` values list it).
    ``RecordingUrl`` is on ``api_base_url``, Twilio's REST API (a stand-in's, to fetch it there).
    Guesses: the ``ErrorCode`` of an ``absent`` recording (16101 too short, 16102 silent, from
    Twilio's recording status callback article) and ``0`` otherwise; a ``<Record>``'s
    ``RecordingTrack`` (``inbound``)."""
    voicemail = source == "RecordVerb"
    form = {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingUrl": (
            f"{api_base_url.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}"
            f"/Recordings/{recording_sid}"
        ),
        "RecordingStatus": status,
        "RecordingChannels": "1" if voicemail else "2",
        "RecordingSource": source,
        "RecordingTrack": "inbound" if voicemail else "both",
        "RecordingStartTime": format_datetime(started_at or datetime.now(UTC)),
        "ErrorCode": error_code or "0",
    }
    if duration_s is not None:
        form["RecordingDuration"] = str(duration_s)
    return form


def transcription_callback_form(
    *,
    account_sid: str,
    call_sid: str,
    transcription_sid: str,
    event: str,
    sequence: int,
    track: str | None = None,
    transcript: str | None = None,
    confidence: float = 0.9,
    language: str = "ja-JP",
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """A real-time transcription callback (``<Start><Transcription statusCallbackUrl>``), as
    Twilio's "TwiML Voice: <Transcription>" page lists its parameters: every event carries the
    call, the transcription and a SequenceId counting the session's callbacks from 1; an
    utterance (``transcription-content``) its track, ``Final`` and ``TranscriptionData``, JSON
    ``{"transcript", "confidence"}``. Guesses: ``TranscriptionError``'s wording and
    ``TranscriptionErrorCode``'s value, the fields of ``transcription-started``, and the
    ISO 8601 form of ``Timestamp``."""
    moment = timestamp or datetime.now(UTC)
    form = {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "TranscriptionSid": transcription_sid,
        "TranscriptionEvent": event,
        "SequenceId": str(sequence),
        "Timestamp": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "LanguageCode": language,
    }
    if event == "transcription-started":
        form |= {"ProviderName": "google", "Track": "both_tracks", "PartialResults": "false"}
    elif event == "transcription-content":
        form |= {
            "Track": track or "inbound_track",
            "Final": "true",
            "TranscriptionData": json.dumps(
                {"transcript": transcript or "", "confidence": confidence}, ensure_ascii=False
            ),
        }
    elif event == "transcription-error":
        form |= {
            "TranscriptionError": "Transcription engine error",
            "TranscriptionErrorCode": "32655",
        }
    return form
