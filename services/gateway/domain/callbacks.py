"""Twilio's webhook forms → :class:`CallEvent`. Pure: the parsers are property-tested.

Every rejection raises :class:`BadCallbackError` with a reason fit for a 400 answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

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


def _call_sid(form: Mapping[str, str], name: str) -> str | None:
    return _field(form, name, CALL_SID)


def _required_call_sid(form: Mapping[str, str], name: str) -> str:
    value = _call_sid(form, name)
    if value is None:
        raise BadCallbackError(f"missing {name}")
    return value


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


def _counter(form: Mapping[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    # Length first: int() refuses strings over 4300 digits with a plain ValueError (a 500).
    if not value.isascii() or not value.isdigit() or len(value) > 20 or int(value) > MAX_COUNTER:
        raise BadCallbackError(f"malformed {name}")
    return int(value)
