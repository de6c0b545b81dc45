"""Recording and transcript events (CONTRACT.md section 11) as the gateway publishes them, for
the recorder's tests: Twilio's posted parameters in ``params`` (the recording status callback,
the real-time transcription callback), ``call_sid`` the call that ran the TwiML (the root),
the callback URL's query in ``context``, ``sequence`` the SequenceId, ``duration_s`` the
RecordingDuration.

Built here, not by the gateway's parsers, because the recorder's branch of issue 19 was
written beside the gateway's; the shapes are those of services/common/events.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.utils import format_datetime

import orjson

from services.common.events import CallContext, CallEvent, EventKind
from services.recorder.domain.tariff import parse_tariffs
from services.recorder.settings import DEFAULT_TARIFF
from tests.factories import ACCOUNT_SID

#: The default tariff with rates for recording and transcription (it has neither).
WITHOUT_CONVERSATION_RATES = parse_tariffs(DEFAULT_TARIFF.read_text())
WITH_CONVERSATION_RATES = parse_tariffs(
    DEFAULT_TARIFF.read_text().replace(
        'mobile = "16.2"', 'mobile = "16.2"\nrecording = "0.3"\ntranscription = "2.5"'
    )
)
STAFF_SAYS = "お世話になっております。株式会社カルトレイルの山田です。"
CUSTOMER_SAYS = "はい、先日の見積もりの件ですね。"


def _sid(prefix: str, seed: str) -> str:
    return prefix + seed.encode().hex()[-32:].rjust(32, "0")


def recording_sid(root: str, n: int = 1) -> str:
    return _sid("RE", f"{root}{n}")


def transcription_sid(root: str, n: int = 1) -> str:
    return _sid("GT", f"{root}{n}")


def _context(direction: str | None) -> CallContext:
    return CallContext(app_id="12", record_id="345", identity="u_1", direction=direction)


def recording_event(
    root: str,
    *,
    at: datetime,
    status: str = "completed",
    duration_s: int | None = 61,
    source: str = "DialVerb",
    sid: str | None = None,
    direction: str | None = "outbound",
    url: str | None = None,
) -> CallEvent:
    """A ``<Dial record=…>`` (or, ``source="RecordVerb"``, a voicemail) recording callback."""
    sid = sid or recording_sid(root)
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": root,
        "RecordingSid": sid,
        "RecordingStatus": status,
        "RecordingChannels": "2" if source == "DialVerb" else "1",
        "RecordingSource": source,
        "RecordingStartTime": format_datetime(at),
        "RecordingUrl": url
        or f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}",
    }
    if duration_s is not None:
        params["RecordingDuration"] = str(duration_s)
    return CallEvent(
        EventKind.RECORDING,
        at,
        root,
        None,
        duration_s=duration_s,
        context=_context(direction),
        params=params,
    )


def transcript_event(
    root: str,
    name: str,
    *,
    at: datetime,
    sequence: int,
    sid: str | None = None,
    track: str | None = None,
    text: str | None = None,
    direction: str | None = "outbound",
    data: str | None = None,
) -> CallEvent:
    """One real-time transcription callback: ``name`` is its TranscriptionEvent."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": root,
        "TranscriptionSid": sid or transcription_sid(root),
        "TranscriptionEvent": name,
        "SequenceId": str(sequence),
        "LanguageCode": "ja-JP",
        "Timestamp": format_datetime(at),
    }
    if track is not None:
        params["Track"] = track
    if text is not None:
        params["TranscriptionData"] = orjson.dumps(
            {"transcript": text, "confidence": 0.91}
        ).decode()
        params["Final"] = "true"
    if data is not None:
        params["TranscriptionData"] = data
    return CallEvent(
        EventKind.TRANSCRIPT,
        at,
        root,
        None,
        sequence=sequence,
        context=_context(direction),
        params=params,
    )


def transcript(
    root: str,
    said: Sequence[tuple[str, str]],
    *,
    at: datetime,
    direction: str | None = "outbound",
    end: str = "transcription-stopped",
    sid: str | None = None,
) -> list[CallEvent]:
    """A whole transcription in spoken order: started (SequenceId 1), one content event per
    (track, text) (2, 3, …), then ``end`` (stopped or error); one second apart."""
    sid = sid or transcription_sid(root)
    events = [
        transcript_event(
            root, "transcription-started", at=at, sequence=1, sid=sid, direction=direction
        )
    ]
    for n, (track, text) in enumerate(said, 2):
        events.append(
            transcript_event(
                root,
                "transcription-content",
                at=at + timedelta(seconds=n),
                sequence=n,
                sid=sid,
                track=track,
                text=text,
                direction=direction,
            )
        )
    last = len(said) + 2
    events.append(
        transcript_event(
            root, end, at=at + timedelta(seconds=last), sequence=last, sid=sid, direction=direction
        )
    )
    return events
