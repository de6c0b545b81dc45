"""HTTP handlers: thin. They check who is asking, call the pure modules, and publish."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from yarl._quoting import _Unquoter

from services.common.events import CallEvent, EventKind
from services.common.logging import bind_call, debug_enabled, get_logger
from services.gateway.adapters.publisher import PublishError
from services.gateway.bootstrap import GATEWAY, Gateway
from services.gateway.domain import twiml
from services.gateway.domain.callbacks import (
    BadCallbackError,
    call_event,
    context_from,
    recording_event,
    status_event,
    transcript_event,
)
from services.gateway.domain.dial_policy import decide_dial
from services.gateway.domain.line import line_user_id
from services.gateway.domain.security import client_address, keys_match, retry_after_header
from services.gateway.domain.tokens import is_valid_identity, issue_access_token
from services.gateway.settings import GatewaySettings

log = get_logger(__name__)

MAX_BODY = 64 * 1024
MAX_FIELDS = 512
MAX_SID_LOGGED = 64
FORM = "application/x-www-form-urlencoded"
# The browser SDK passes Device.connect({params}) through Twilio under these names.
BROWSER_CONTEXT_PARAMS = {"app_id": "AppId", "record_id": "RecordId"}
CORS_ALLOWED_HEADERS = "Content-Type, X-Calltrail-Key"
# yarl (aiohttp's URL library) percent-decodes in C; see _percent_decoded.
_unquote = _Unquoter()
# An escaped "&" or "=": decoding such a form before splitting it would split it wrongly.
_SEPARATOR_ESCAPE = re.compile("%(?:26|3[Dd])")


def _error(status: type[web.HTTPError], reason: str, **headers: str) -> web.HTTPError:
    return status(
        text=orjson.dumps({"error": reason}).decode(),
        content_type="application/json",
        headers=headers or None,
    )


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


def _percent_decoded(text: str) -> str:
    """``unquote_to_bytes(text).decode("utf-8")``: yarl's C unquoter first (about ten times
    faster); it leaves an escape it cannot decode as it is, so when a ``%`` is left (that, or
    a literal ``%25``) the strict path decides, and raises where parse_qsl raises."""
    fast = _unquote(text)
    if "%" not in fast:
        return fast
    return unquote_to_bytes(text).decode("utf-8")


def parse_form(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=512)``, at
    a fraction of the cost (tests/unit/gateway/test_fast_paths.py pins the two together).

    A form whose escapes decode to neither ``&`` nor ``=`` (Twilio's always: ``%2B``, ``%3A``,
    ``%2C``…) is percent-decoded in one go and then split, which is what splitting first and
    decoding each part would give. Any other form, or one whose decoding leaves a ``%``
    (``%25``, or an escape that is not UTF-8), is decoded field by field, strictly: as strict
    UTF-8, raising UnicodeDecodeError/ValueError exactly where parse_qsl raises."""
    if not text:
        return []
    if len(text) >= MAX_FIELDS and text.count("&") >= MAX_FIELDS:
        raise ValueError("Max number of fields exceeded")
    if "+" in text:
        text = text.replace("+", " ")
    if "%" in text:
        if _SEPARATOR_ESCAPE.search(text):
            return _decoded_fields(text)
        decoded = _unquote(text)
        if "%" in decoded:
            return _decoded_fields(text)
        text = decoded
    pairs = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((name, value))
    return pairs


def _decoded_fields(text: str) -> list[tuple[str, str]]:
    """Split first, then decode each name and value that needs it (``+`` already replaced)."""
    pairs = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in name:
            name = _percent_decoded(name)
        if "%" in value:
            value = _percent_decoded(value)
        pairs.append((name, value))
    return pairs


async def _read_form(request: web.Request) -> Mapping[str, str]:
    """The body as a form, strictly: UTF-8, percent-decoding included, or 400.

    A plain dict when every name is given once (Twilio's forms): looking fields up, signing
    and publishing it cost least. A name given more than once keeps all its values, in order,
    in a MultiDict (``get`` answers the first, as before)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    body = await request.read()  # client_max_size caps bodies without a Content-Length
    # The exact header Twilio sends needs no parsing; anything else is parsed (parameters).
    if body and request.headers.get("Content-Type") != FORM and request.content_type != FORM:
        raise _error(web.HTTPUnsupportedMediaType, f"expected {FORM}")
    try:
        pairs = parse_form(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _error(web.HTTPBadRequest, "body is not a UTF-8 form") from None
    form = dict(pairs)
    if len(form) != len(pairs):
        return MultiDictProxy(MultiDict(pairs))
    return form


def _bind_call(form: Mapping[str, str]) -> None:
    """Every later log line of this request names the call (aiohttp runs each request in a
    task of its own, so the binding ends with the request). Cut short: the form is not
    verified yet, and a forged field must not blow up a log line."""
    call_sid = form.get("CallSid")
    if call_sid is not None:
        parent = form.get("ParentCallSid")
        bind_call(call_sid[:MAX_SID_LOGGED], parent[:MAX_SID_LOGGED] if parent else None)


async def _twilio_form(request: web.Request, gateway: Gateway) -> Mapping[str, str]:
    form = await _read_form(request)
    _bind_call(form)
    signature = request.headers.get("X-Twilio-Signature")
    if not gateway.signature.is_valid(request.raw_path, form, signature):
        gateway.metrics.rejected.labels("signature").inc()
        # The usual cause is a PUBLIC_BASE_URL that is not the URL Twilio calls: say which
        # URL the signature was checked against.
        log.warning(
            "twilio_signature_invalid",
            url=gateway.signature.public_url(request.raw_path),
            signed=signature is not None,
        )
        raise _error(web.HTTPForbidden, "invalid or missing X-Twilio-Signature")
    return form


def _bad_callback(exc: BadCallbackError) -> web.HTTPError:
    log.info("callback_rejected", reason=str(exc))
    return _error(web.HTTPBadRequest, str(exc))


def _publish_early_notice(gateway: Gateway, event: CallEvent) -> None:
    """Publish the event of a TwiML request, but never make the call wait on it: the call
    matters more than this early notice, and the legs' status callbacks carry the same context
    (kintone record or direction and LINE user), so the recorder still learns the call. The
    publisher stores it (broker or spool) in its next group, logs it if neither takes it, and
    stores whatever is still queued when the gateway shuts down."""
    gateway.publisher.publish_soon(event)


# --- POST /twilio/status, /twilio/recording, /twilio/transcription ------------------------

#: A callback's form and query (and when it came) → its event, or BadCallbackError.
ToEvent = Callable[[Mapping[str, str], Mapping[str, str], datetime], CallEvent]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _stored_callback(to_event: ToEvent, counted: Callable[[Gateway, CallEvent], None]) -> Handler:
    """The handler of a Twilio callback whose event must be stored (broker or spool) before
    Twilio hears 204: signed, size-limited, validated by ``to_event``, 503 when nothing can
    store it (Twilio retries, with connection overrides: docs/gateway.md); then ``counted``
    (metrics, and a DEBUG line that never carries what was said or where the recording is)."""

    async def stored_callback(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        form = await _twilio_form(request, gateway)
        try:
            event = to_event(form, request.query, datetime.now(UTC))
        except BadCallbackError as exc:
            raise _bad_callback(exc) from None
        # Stored before the 204: here, not in a helper coroutine, which would cost every
        # callback one more coroutine to create and resume.
        try:
            await gateway.publisher.publish(event)
        except PublishError:
            raise _error(
                web.HTTPServiceUnavailable, "event could not be stored", **{"Retry-After": "1"}
            ) from None
        counted(gateway, event)
        # The same bytes on the wire as web.Response(status=204), whose constructor (body,
        # content type and charset handling) costs ~14,000 CPU instructions a callback.
        return web.StreamResponse(status=204)

    return stored_callback


def _status_counted(gateway: Gateway, event: CallEvent) -> None:
    # A status event always has a status (a StrEnum is its str: no Enum.value call).
    gateway.metrics.callback(event.status or "").inc()
    if debug_enabled():
        log.debug("status_callback", status=event.status, sequence=event.sequence)


def _recording_counted(gateway: Gateway, event: CallEvent) -> None:
    status = event.params["RecordingStatus"]  # recording_event checked it is there
    gateway.metrics.conversation_callback("recording", status).inc()
    if debug_enabled():
        log.debug("recording_callback", status=status, duration_s=event.duration_s)


def _transcript_counted(gateway: Gateway, event: CallEvent) -> None:
    what = event.params["TranscriptionEvent"]  # transcript_event checked it is there
    gateway.metrics.conversation_callback("transcript", what).inc()
    if debug_enabled():
        log.debug(
            "transcription_callback",
            transcription_event=what,
            sequence=event.sequence,
            track=event.params.get("Track"),
        )


twilio_status = _stored_callback(status_event, _status_counted)
twilio_recording = _stored_callback(recording_event, _recording_counted)
twilio_transcription = _stored_callback(transcript_event, _transcript_counted)


# --- POST /twiml/notice ---------------------------------------------------------------------


async def twiml_notice(request: web.Request) -> web.Response:
    """The recording notice, said to the customer of an outbound call when they answer and
    before the bridge (the dialled ``<Number url>``)."""
    gateway = request.app[GATEWAY]
    await _twilio_form(request, gateway)
    return _xml(twiml.notice_twiml(gateway.conversation.notice_to_say))


# --- POST /twiml/voice ----------------------------------------------------------------------


async def twiml_voice(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    form = await _twilio_form(request, gateway)
    try:
        context = context_from(
            form, caller=form.get("From"), names=BROWSER_CONTEXT_PARAMS, ours=False
        )
    except BadCallbackError as exc:
        raise _bad_callback(exc) from None
    decision = decide_dial(form.get("To"), settings.dial_allowed_countries)
    if decision.number is None:
        gateway.metrics.dial_refused.inc()
        log.info("dial_refused", reason=decision.refusal)
        return _xml(twiml.refusal_twiml())
    try:
        event = call_event(
            EventKind.DIAL,
            form,
            context.with_direction("outbound"),
            datetime.now(UTC),
            to=decision.number.e164,
        )
    except BadCallbackError as exc:
        raise _bad_callback(exc) from None
    _publish_early_notice(gateway, event)
    gateway.metrics.dialled.inc()
    if debug_enabled():
        log.debug("dialling", destination_type=decision.number.destination_type().value)
    callbacks = twiml.Callbacks.of(
        settings.public_base_url, context, settings.status_callback_overrides, gateway.conversation
    )
    return _xml(gateway.outbound_dial.twiml(decision.number, settings.twilio_caller_id, callbacks))


# --- POST /twiml/incoming, /twiml/sip, /twiml/incoming/after-dial --------------------------


async def _ring(
    request: web.Request, kind: EventKind, call: twiml.InboundCall, form: Mapping[str, str]
) -> web.Response:
    """Publish the inbound call's event, then ring the group's browsers (or, with nobody in
    the group, go straight to what happens when nobody answers)."""
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    try:
        event = call_event(kind, form, call.callback_context(), datetime.now(UTC))
    except BadCallbackError as exc:
        raise _bad_callback(exc) from None
    _publish_early_notice(gateway, event)
    if debug_enabled():
        log.debug("inbound_call", kind=call.kind.value, line_user=call.line_user_id is not None)
    fragment = settings.status_callback_overrides
    identities = settings.ring_group
    if not identities:
        forward_to = _forward_to(settings, call.kind)
        if forward_to:
            first = twiml.DialOutcome.FORWARDED
        elif gateway.voicemail is not None:
            first = twiml.DialOutcome.VOICEMAIL
        else:
            first = twiml.DialOutcome.UNANSWERED
        gateway.metrics.inbound.labels(call.kind.value, first.value).inc()
        return _xml(
            twiml.nobody_answered_twiml(
                call,
                forward_to=forward_to,
                caller_id=settings.twilio_caller_id,
                public_base_url=settings.public_base_url,
                fragment=fragment,
                conversation=gateway.conversation,
                opening=True,
                voicemail=gateway.voicemail,
            )
        )
    gateway.metrics.inbound.labels(call.kind.value, "rung").inc()
    return _xml(
        twiml.ring_group_twiml(
            call,
            identities=identities,
            timeout_s=settings.ring_timeout_s,
            callbacks=twiml.Callbacks.of(
                settings.public_base_url, call.callback_context(), fragment, gateway.conversation
            ),
            action_url=twiml.after_dial_url(settings.public_base_url, call, fragment=fragment),
            conversation=gateway.conversation,
        )
    )


def _forward_to(settings: GatewaySettings, kind: twiml.InboundKind) -> str | None:
    return twiml.forward_target(
        kind,
        inbound_forward_to=settings.inbound_forward_to,
        sip_forward_to=settings.sip_forward_to,
    )


async def twiml_incoming(request: web.Request) -> web.Response:
    """A customer calling the company number."""
    form = await _twilio_form(request, request.app[GATEWAY])
    return await _ring(request, EventKind.INBOUND, twiml.number_call(form.get("From")), form)


async def twiml_sip(request: web.Request) -> web.Response:
    """A call through the SIP domain: LINE, with the caller's LINE user id in a UUI header."""
    form = await _twilio_form(request, request.app[GATEWAY])
    return await _ring(
        request, EventKind.SIP_INBOUND, twiml.line_call(line_user_id(form.items())), form
    )


async def twiml_after_dial(request: web.Request) -> web.Response:
    """Twilio's ``action`` request when an inbound ``<Dial>`` ends."""
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    form = await _twilio_form(request, gateway)
    after = twiml.AfterDial.from_query(request.query)
    outcome, body = twiml.after_dial_twiml(
        after,
        form.get("DialCallStatus"),
        forward_to=_forward_to(settings, after.call.kind),
        caller_id=settings.twilio_caller_id,
        public_base_url=settings.public_base_url,
        fragment=settings.status_callback_overrides,
        conversation=gateway.conversation,
        voicemail=gateway.voicemail,
        caller_gone=twiml.caller_gone(form.get("CallStatus")),
    )
    gateway.metrics.inbound.labels(after.call.kind.value, outcome.value).inc()
    log.info(
        "inbound_dial_ended",
        kind=after.call.kind.value,
        dial_status=(form.get("DialCallStatus") or "")[:16],
        forwarded=after.forwarded,
        outcome=outcome.value,
    )
    return _xml(body)


async def twiml_voicemail_done(request: web.Request) -> web.Response:
    """The voicemail ``<Record>``'s ``action``: the caller has left a message (Twilio skips it
    for an empty recording). The recording itself arrives at /twilio/recording."""
    await _twilio_form(request, request.app[GATEWAY])
    return _xml(twiml.voicemail_done_twiml())


# --- POST /token ----------------------------------------------------------------------------


def _cors_headers(request: web.Request, gateway: Gateway) -> dict[str, str]:
    origin = request.headers.get("Origin")
    if origin is None:
        return {}
    if origin != gateway.settings.kintone_origin:
        raise _error(web.HTTPForbidden, "origin not allowed")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def token_preflight(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    headers = _cors_headers(request, gateway)
    if not headers:
        raise _error(web.HTTPForbidden, "not a CORS preflight")
    headers |= {
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
        "Access-Control-Max-Age": "600",
    }
    return web.Response(status=204, headers=headers)


async def _identity_from(request: web.Request) -> object:
    if request.content_type == "application/json":
        body = await request.read()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _error(web.HTTPBadRequest, "body is not JSON") from None
        return doc.get("identity") if isinstance(doc, dict) else None
    return (await _read_form(request)).get("identity")


async def issue_token(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    settings = gateway.settings
    cors = _cors_headers(request, gateway)
    address = client_address(
        request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxy_hops
    )
    if not keys_match(
        request.headers.get("X-Calltrail-Key"), settings.calltrail_token_key.get_secret_value()
    ):
        # Only requests without the right key count against their address: the limit is
        # there to slow key guessing, and through kintone's plugin proxy a whole company's
        # users (and other kintone customers) share kintone's few server addresses.
        wait = gateway.address_limiter.acquire(address)
        if wait:
            gateway.metrics.rejected.labels("rate_limit_address").inc()
            raise _error(
                web.HTTPTooManyRequests,
                "too many requests",
                **{"Retry-After": retry_after_header(wait)},
                **cors,
            )
        gateway.metrics.rejected.labels("token_key").inc()
        raise _error(web.HTTPUnauthorized, "missing or wrong X-Calltrail-Key", **cors)
    identity = await _identity_from(request)
    if not is_valid_identity(identity):
        raise _error(web.HTTPBadRequest, "identity must match ^[A-Za-z0-9_]{1,121}$", **cors)
    assert isinstance(identity, str)
    wait = gateway.identity_limiter.acquire(identity)
    if wait:
        gateway.metrics.rejected.labels("rate_limit_identity").inc()
        raise _error(
            web.HTTPTooManyRequests,
            "too many tokens for this identity",
            **{"Retry-After": retry_after_header(wait)},
            **cors,
        )
    incoming = identity in settings.ring_group
    token = issue_access_token(
        account_sid=settings.twilio_account_sid,
        api_key=settings.twilio_api_key,
        api_secret=settings.twilio_api_secret.get_secret_value(),
        twiml_app_sid=settings.twilio_twiml_app_sid,
        identity=identity,
        ttl_s=settings.token_ttl_s,
        incoming=incoming,
    )
    gateway.metrics.tokens.inc()
    log.info("token_issued", identity=identity, ttl_s=settings.token_ttl_s, incoming=incoming)
    return web.json_response(
        {
            "identity": identity,
            "token": token,
            "ttl": settings.token_ttl_s,
            "edge": settings.twilio_edge,
            "incoming": incoming,
            # Whether the call panel says 「録音中」 while a call is up (CONTRACT.md section 11).
            "recording": gateway.conversation.recording or gateway.conversation.transcription,
        },
        headers={"Cache-Control": "no-store", **cors},
    )


# --- GET /readyz ----------------------------------------------------------------------------


async def readyz(request: web.Request) -> web.Response:
    publisher = request.app[GATEWAY].publisher
    body = {"broker": publisher.broker_ok, "spool_depth": publisher.spool_depth}
    if await publisher.ready():
        return web.json_response({"status": "ready", **body})
    return web.json_response({"status": "unavailable", **body}, status=503)
