"""Twilio's webhook forms → :class:`CallEvent`. Pure: the parsers are property-tested.

Every rejection raises :class:`BadCallbackError` with a reason fit for a 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import orjson

from services.common.events import (
    CALL_STATUSES,
    CONTEXT_DIRECTIONS,
    CallContext,
    CallEvent,
    CallStatus,
    EventKind,
)
from services.gateway.domain.line import is_line_user_id
from services.gateway.domain.tokens import IDENTITY_PATTERN

CALL_SID = re.compile(r"CA[0-9A-Za-z]{1,62}")
# Twilio's SIDs for a recording and a real-time transcription (its API reference: two letters,
# then 32 hexadecimal digits).
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
TRANSCRIPTION_SID = re.compile(r"GT[0-9a-fA-F]{32}")
RECORDING_STATUSES = frozenset({"in-progress", "completed", "absent", "failed"})
#: The ``source`` in a recording callback's query (CONTRACT.md section 12).
RECORDING_SOURCES = frozenset({"dial", "voicemail"})
TRANSCRIPTION_CONTENT = "transcription-content"
TRANSCRIPTION_EVENTS = frozenset(
    {
        "transcription-started",
        TRANSCRIPTION_CONTENT,
        "transcription-stopped",
        "transcription-error",
    }
)
#: An utterance's track: whose audio it is, named from the side of the call that ran the TwiML.
TRACKS = frozenset({"inbound_track", "outbound_track"})
#: The session's own events (started, stopped, error) may name the track it was asked for.
SESSION_TRACKS = TRACKS | {"both_tracks"}
KINTONE_ID = re.compile(r"[0-9]{1,20}")
CLIENT_PREFIX = "client:"
MAX_COUNTER = 10**9


class BadCallbackError(ValueError):
    pass


def status_event(
    form: Mapping[str, str], query: Mapping[str, str], received_at: datetime
) -> CallEvent:
    """A status callback of any leg (browser, PSTN or SIP)."""
    call_sid = _required_call_sid(form, "CallSid")
    parent_call_sid = _call_sid(form, "ParentCallSid")
    caller, callee = form.get("From"), form.get("To")
    # Positional, in CallEvent's field order: keyword arguments cost the call ~5,000 CPU
    # instructions more, on every callback (tests/unit/gateway/test_callbacks.py checks each
    # field, with a distinct value, and the event through the wire).
    return CallEvent(
        EventKind.STATUS,
        received_at,
        call_sid,
        _status(form),
        parent_call_sid,
        _counter(form, "SequenceNumber"),  # sequence
        form.get("Direction"),
        caller,  # from_
        callee,  # to
        _counter(form, "CallDuration"),  # duration_s
        context_from(query, caller=caller, callee=callee),
        dict(form),  # params
    )


def recording_event(
    form: Mapping[str, str], query: Mapping[str, str], received_at: datetime
) -> CallEvent:
    """A ``<Dial>``'s recording status callback. Its CallSid is the call that ran the TwiML
    (the parent of the dialled leg): the root, the key every event of the call has."""
    call_sid = _required_call_sid(form, "CallSid")
    parent_call_sid = _call_sid(form, "ParentCallSid")
    _required(form, "RecordingSid", RECORDING_SID)
    _one_of(form, "RecordingStatus", RECORDING_STATUSES)
    # Our own query says what made the recording (a voicemail's carries source=voicemail);
    # the recorder goes by Twilio's RecordingSource (RecordVerb for a <Record>), which every
    # recording callback carries: a value here that is neither is a URL we never wrote.
    source = query.get("source")
    if source is not None and source not in RECORDING_SOURCES:
        raise BadCallbackError("malformed source")
    return CallEvent(
        EventKind.RECORDING,
        received_at,
        call_sid,
        None,  # status: a recording's own is in params (RecordingStatus)
        parent_call_sid,
        None,  # sequence: Twilio numbers a recording's callbacks not at all
        None,  # direction
        None,  # from_
        None,  # to
        _duration(form, "RecordingDuration"),
        context_from(query),
        dict(form),  # params: RecordingUrl among them, never logged
    )


def transcript_event(
    form: Mapping[str, str], query: Mapping[str, str], received_at: datetime
) -> CallEvent:
    """A real-time transcription callback: started, an utterance (content), stopped, error."""
    call_sid = _required_call_sid(form, "CallSid")
    parent_call_sid = _call_sid(form, "ParentCallSid")
    _required(form, "TranscriptionSid", TRANSCRIPTION_SID)
    content = _one_of(form, "TranscriptionEvent", TRANSCRIPTION_EVENTS) == TRANSCRIPTION_CONTENT
    sequence = _counter(form, "SequenceId")
    track = form.get("Track")
    if track is not None and track not in (TRACKS if content else SESSION_TRACKS):
        raise BadCallbackError("malformed Track")
    data = form.get("TranscriptionData")
    if data is not None and not _is_json_object(data):
        raise BadCallbackError("malformed TranscriptionData (not a JSON object)")
    if content:
        # An utterance is placed by its number and its speaker by the track: without either
        # it could only be stored in the wrong place.
        for name, value in (
            ("SequenceId", sequence),
            ("Track", track),
            ("TranscriptionData", data),
        ):
            if value is None:
                raise BadCallbackError(f"missing {name}")
    return CallEvent(
        EventKind.TRANSCRIPT,
        received_at,
        call_sid,
        None,  # status: the transcription's own is TranscriptionEvent, in params
        parent_call_sid,
        sequence,
        None,  # direction
        None,  # from_
        None,  # to
        None,  # duration_s
        context_from(query),
        dict(form),  # params: the transcript among them, never logged
    )


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False


def call_event(
    kind: EventKind,
    form: Mapping[str, str],
    context: CallContext,
    received_at: datetime,
    to: str | None = None,
) -> CallEvent:
    """The ``dial`` / ``inbound`` / ``sip-inbound`` event published when Twilio asks for
    TwiML."""
    call_sid = _required_call_sid(form, "CallSid")
    parent_call_sid = _call_sid(form, "ParentCallSid")
    # Positional, in CallEvent's field order (see status_event).
    return CallEvent(
        kind,
        received_at,
        call_sid,
        _status(form, default=CallStatus.RINGING),
        parent_call_sid,
        None,  # sequence: Twilio numbers only the status callbacks
        form.get("Direction"),
        form.get("From"),  # from_
        to if to is not None else form.get("To"),
        None,  # duration_s
        context,
        dict(form),  # params
    )


def context_from(
    fields: Mapping[str, str],
    *,
    caller: str | None = None,
    callee: str | None = None,
    names: Mapping[str, str] | None = None,
    ours: bool = True,
) -> CallContext:
    """Validate the kintone app, record and user (and LINE user, and the call's direction)
    carried with a call.

    ``names`` maps context fields to the parameter names used by the caller (the browser's
    custom parameters are ``AppId``/``RecordId``; our own callback query uses the field names).
    Without an ``identity`` field, the user is the ``client:`` party of the leg: for an inbound
    call's leg the browser rung (``To=client:…``, the one who answered if any), else the
    browser that called (``From=client:…``).

    A ``line_user_id`` that is not exactly a LINE user id is absent, not an error: the gateway
    only ever writes valid ones, and a callback is never refused over it. Both it and
    ``direction`` are read only from ``fields`` that are ``ours`` (our callback URL's query),
    never from what a browser sends as custom parameters.
    """
    names = names or _OWN_NAMES
    direction = (fields.get("direction") or None) if ours else None
    if direction is not None and direction not in CONTEXT_DIRECTIONS:
        raise BadCallbackError("malformed direction")
    identity = _field(fields, names.get("identity", "identity"), IDENTITY_PATTERN)
    if identity is None:
        parties = (callee, caller) if direction == "inbound" else (caller,)
        identity = next(filter(None, map(_client_identity, parties)), None)
    line_user_id = fields.get("line_user_id") if ours else None
    # Positional, in CallContext's field order (see status_event): app_id, record_id,
    # identity, line_user_id, direction.
    return CallContext(
        _field(fields, names.get("app_id", "app_id"), KINTONE_ID),
        _field(fields, names.get("record_id", "record_id"), KINTONE_ID),
        identity,
        line_user_id if is_line_user_id(line_user_id) else None,
        direction,
    )


_OWN_NAMES: Mapping[str, str] = {}


def _field(fields: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    """The field, None when absent or empty, BadCallbackError when it is not ``pattern``."""
    value = fields.get(name)
    if not value:
        return None
    if pattern.fullmatch(value) is None:
        raise BadCallbackError(f"malformed {name}")
    return value


def _client_identity(party: str | None) -> str | None:
    if not party or not party.startswith(CLIENT_PREFIX):
        return None
    candidate = party[len(CLIENT_PREFIX) :]
    return candidate if IDENTITY_PATTERN.fullmatch(candidate) else None


def _required(form: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = _field(form, name, pattern)
    if value is None:
        raise BadCallbackError(f"missing {name}")
    return value


def _one_of(form: Mapping[str, str], name: str, values: frozenset[str]) -> str:
    value = form.get(name)
    if value is None or value not in values:
        raise BadCallbackError(f"missing or unknown {name}")
    return value


def _call_sid(form: Mapping[str, str], name: str) -> str | None:
    return _field(form, name, CALL_SID)


def _required_call_sid(form: Mapping[str, str], name: str) -> str:
    return _required(form, name, CALL_SID)


def _status(form: Mapping[str, str], default: CallStatus | None = None) -> CallStatus:
    value = form.get("CallStatus")
    if value is None:
        if default is not None:
            return default
        raise BadCallbackError("missing or unknown CallStatus")
    status = CALL_STATUSES.get(value)
    if status is None:
        raise BadCallbackError("missing or unknown CallStatus")
    return status


def _duration(form: Mapping[str, str], name: str) -> int | None:
    """A recording's duration in seconds; ``-1`` (no recording: absent, failed) is none."""
    if form.get(name) == "-1":
        return None
    return _counter(form, name)


def _counter(form: Mapping[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    # Length first: int() refuses strings over 4300 digits with a plain ValueError (a 500).
    if not value.isascii() or not value.isdigit() or len(value) > 20 or int(value) > MAX_COUNTER:
        raise BadCallbackError(f"malformed {name}")
    return int(value)
