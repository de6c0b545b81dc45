"""A local stand-in for Twilio's REST API (v2010): the part ``calltrail twilio …`` and
``calltrail reconcile`` use, as Twilio documents it.

Twilio is a service the tests cannot reach, so this plays one Twilio account in memory:

- paths ``/2010-04-01/Accounts/{AccountSid}/….json``; requests are PascalCase forms
  (``VoiceUrl=…``), answers snake_case JSON, dates RFC 2822 (``Tue, 31 Aug 2010 20:36:28
  +0000``) — "Twilio API requests", "Twilio API responses";
- HTTP Basic authentication with an API key SID and its secret on the account; anything else,
  or another account's path, is 401 with code 20003;
- errors as ``{"code", "message", "more_info", "status"}``: 20003 (authentication), 20404 (not
  found), 21231 (SIP Domain Validation Error: the list is already mapped to the domain), 21232
  (the SIP domain name is taken, by this or another account: names are global);
- lists as envelopes (``first_page_uri``, ``next_page_uri``, ``previous_page_uri``, ``page``,
  ``page_size``, ``start``, ``end``, ``uri`` and one key holding the records), ``PageSize`` up
  to 1000 (more is served as 1000), following pages through ``next_page_uri`` with a
  ``PageToken``;
- filters the way the list pages describe them: Applications by ``FriendlyName``, numbers by
  ``PhoneNumber``, Calls by ``StartTime>``/``StartTime<`` (UTC dates, or date-times), newest
  first; Recordings by ``DateCreated>``/``DateCreated<``/``DateCreated``, ``CallSid`` and
  ``IncludeSoftDeleted``; Usage Records by ``StartDate``/``EndDate``/``Category``;
- a Recording instance (``Recordings/{Sid}.json``) with its ``price`` (negative, a string, or
  null until Twilio has priced it) and ``price_unit``, ``duration`` a string of seconds,
  ``call_sid`` the parent leg of a two-leg call (the Recording resource's reference page).

Where Twilio documents no detail the stand-in guesses, and says so: the ``PageToken`` format
(opaque in Twilio), the messages' exact wording, how Usage Records are summed (from the
calls seeded here, by the category each call was given; recordings are not summed), the order
of the Recordings list (newest first, as Calls), and that a deleted recording's instance is a
404 while the list still shows it with ``IncludeSoftDeleted=true``. A Recording's
``media_url`` is left out.

Recording media (the Recording resource's "Fetch a Recording media file"): ``GET
…/Recordings/{Sid}.mp3`` behind the same Basic auth (401 without: the account "enforces HTTP auth
on media URLs", as new accounts do), answering ``audio/mpeg``; the bytes are the stand-in's
(:meth:`TwilioAccount.add_recording`'s ``media``, else a few made-up bytes), not a real MP3.
``DELETE …/Recordings/{Sid}.json``: 204, then the instance and its media are 404 (the "Delete a
Recording resource" section).

Dev only, never a Twilio path: ``PUT /_standin/recordings/{RecordingSid}`` makes a recording
exist, as Twilio has one before it posts its ``completed`` callback (Twilio has no API to create
one: ``calltrail simulate --twilio-api`` plays Twilio recording a call this way). The body is
the media (empty: the stand-in's made-up bytes); the query says the rest, in the callback's
names: ``CallSid``, ``RecordingDuration`` (seconds), ``RecordingChannels`` (1 or 2),
``RecordingSource`` (the resource's ``source`` values), ``RecordingStartTime`` (RFC 2822, default
now). It answers 201 with the Recording resource, 200 when that SID was there already (replaced:
a repeat is harmless), 400 for a malformed one. It needs no API key and is neither logged in
``requests`` nor subject to faults: it is the stand-in's own door, not the account's API. The
price is null (Twilio prices a recording a while after it is made).

Knobs for tests and benchmarks: :meth:`TwilioAccount.fail_next` answers the next matching
requests with a 5xx or a 429, or drops the connection (before or after the change is made);
``requests`` logs every request, for counting.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlencode

import orjson
from aiohttp import web

from services.devtools.local_server import LocalServer, serve_until_stopped

API = "/2010-04-01"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
Json = dict[str, object]
# Twilio's generic "Bad Request" (Error and Warning Dictionary, 20001): used for every
# malformed request, where Twilio's exact per-parameter code is not documented (a guess).
BAD_REQUEST = 20001
Form = Mapping[str, object]  # a posted form (aiohttp's MultiDictProxy)
#: The stand-in's own routes (dev only): never under Twilio's paths.
STANDIN_PREFIX = "/_standin/"
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
#: The Recording resource's ``source`` values (its reference page).
RECORDING_SOURCES = frozenset(
    {
        "DialVerb",
        "Conference",
        "OutboundAPI",
        "Trunking",
        "RecordVerb",
        "StartCallRecordingAPI",
        "StartConferenceRecordingAPI",
    }
)


def rfc2822(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str  # relative to the account, e.g. "SIP/Domains.json"
    status: int  # 0: the connection was dropped
    username: str | None


@dataclass(frozen=True, slots=True)
class Fault:
    kind: Literal["status", "drop"]
    status: int = 503
    method: str | None = None  # only requests with this method
    path: str | None = None  # only paths (with their query string) containing this
    after_apply: bool = False  # drop after the change is made (the answer is lost)
    code: int | None = None  # the Twilio error code to answer with (default: status × 100)

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in path
        )


class TwilioRejectError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found(path: str) -> TwilioRejectError:
    return TwilioRejectError(404, 20404, f"The requested resource {path} was not found")


@dataclass(frozen=True, slots=True)
class StoredCall:
    start: datetime  # UTC
    category: str  # the Usage Records category it counts under (the stand-in's choice)
    minutes: int
    resource: Json


@dataclass
class StoredRecording:
    created: datetime  # UTC
    resource: Json
    deleted: bool = False  # deleted from Twilio: listed only with IncludeSoftDeleted=true
    media: bytes = b""  # what GET …/Recordings/{Sid}.mp3 answers


@dataclass
class TwilioAccount:
    """One Twilio account in memory, and the knobs tests turn."""

    account_sid: str
    api_key: str
    api_secret: str
    applications: dict[str, Json] = field(default_factory=dict)
    numbers: dict[str, Json] = field(default_factory=dict)
    sip_domains: dict[str, Json] = field(default_factory=dict)
    #: SIP domain names other accounts hold: Twilio's names are global.
    taken_domain_names: set[str] = field(default_factory=set)
    acls: dict[str, Json] = field(default_factory=dict)
    acl_addresses: dict[str, dict[str, Json]] = field(default_factory=dict)
    call_auth_mappings: dict[str, list[str]] = field(default_factory=dict)
    calls: list[StoredCall] = field(default_factory=list)
    recordings: dict[str, StoredRecording] = field(default_factory=dict)
    number_rental: tuple[str, str] | None = None  # monthly price, unit, for phonenumbers-local
    requests: list[LoggedRequest] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    _calls_sorted: bool = True

    # --- set-up -------------------------------------------------------------------------

    def _stamp(self, resource: Json, sid: str, uri: str) -> Json:
        now = rfc2822(datetime.now(UTC))
        resource.setdefault("date_created", now)
        resource["date_updated"] = now
        resource["sid"] = sid
        resource["account_sid"] = self.account_sid
        resource["uri"] = f"{API}/Accounts/{self.account_sid}/{uri}"
        return resource

    def add_application(self, friendly_name: str, **fields: str | None) -> str:
        sid = new_sid("AP")
        app: Json = {
            "api_version": "2010-04-01",
            "friendly_name": friendly_name,
            "voice_url": None,
            "voice_method": "POST",
            "voice_fallback_url": None,
            "voice_fallback_method": "POST",
            "status_callback": None,
            "status_callback_method": "POST",
            "voice_caller_id_lookup": False,
            "sms_url": None,
            "sms_method": "POST",
            "message_status_callback": None,
            "public_application_connect_enabled": True,
        }
        app.update(fields)
        self.applications[sid] = self._stamp(app, sid, f"Applications/{sid}.json")
        return sid

    def add_number(self, phone_number: str, **fields: str | None) -> str:
        sid = new_sid("PN")
        number: Json = {
            "api_version": "2010-04-01",
            "phone_number": phone_number,
            "friendly_name": phone_number,
            "voice_url": None,
            "voice_method": "POST",
            "status_callback": None,
            "status_callback_method": "POST",
            "voice_application_sid": None,
            "trunk_sid": None,
            "origin": "twilio",
            "capabilities": {"voice": True, "sms": False, "mms": False, "fax": False},
        }
        number.update(fields)
        self.numbers[sid] = self._stamp(number, sid, f"IncomingPhoneNumbers/{sid}.json")
        return sid

    def add_sip_domain(self, domain_name: str, **fields: str | None) -> str:
        sid = new_sid("SD")
        domain: Json = {
            "api_version": "2010-04-01",
            "domain_name": domain_name,
            "friendly_name": domain_name,
            "voice_url": None,
            "voice_method": "POST",
            "voice_fallback_url": None,
            "voice_fallback_method": "POST",
            "voice_status_callback_url": None,
            "voice_status_callback_method": "POST",
            "auth_type": "",
            "sip_registration": False,
            "emergency_calling_enabled": False,
            "secure": False,
            "byoc_trunk_sid": None,
            "emergency_caller_sid": None,
        }
        domain.update(fields)
        self.sip_domains[sid] = self._stamp(domain, sid, f"SIP/Domains/{sid}.json")
        self.call_auth_mappings[sid] = []
        return sid

    def add_acl(self, friendly_name: str, *ips: str) -> str:
        sid = new_sid("AL")
        uri = f"SIP/IpAccessControlLists/{sid}"
        acl: Json = {
            "friendly_name": friendly_name,
            "subresource_uris": {
                "ip_addresses": f"{API}/Accounts/{self.account_sid}/{uri}/IpAddresses.json"
            },
        }
        self.acls[sid] = self._stamp(acl, sid, f"{uri}.json")
        self.acl_addresses[sid] = {}
        for ip in ips:
            self.add_address(sid, ip)
        return sid

    def add_address(self, acl_sid: str, ip: str, prefix: int = 32, name: str = "") -> str:
        sid = new_sid("IP")
        address: Json = {
            "friendly_name": name or ip,
            "ip_address": ip,
            "cidr_prefix_length": prefix,
            "ip_access_control_list_sid": acl_sid,
        }
        uri = f"SIP/IpAccessControlLists/{acl_sid}/IpAddresses/{sid}.json"
        self.acl_addresses[acl_sid][sid] = self._stamp(address, sid, uri)
        return sid

    def map_acl(self, domain_sid: str, acl_sid: str) -> None:
        self.call_auth_mappings[domain_sid].append(acl_sid)
        self._auth_type(domain_sid)

    def _auth_type(self, domain_sid: str) -> None:
        self.sip_domains[domain_sid]["auth_type"] = (
            "IP_ACL" if self.call_auth_mappings[domain_sid] else ""
        )

    def add_call(
        self,
        sid: str,
        start_time: datetime,
        *,
        price: str | None,
        price_unit: str = "JPY",
        duration_s: int = 60,
        category: str = "calls-outbound",
        parent_call_sid: str | None = None,
    ) -> None:
        """A call as Twilio lists it; ``price`` as Twilio gives it (negative, or None)."""
        call: Json = {
            "parent_call_sid": parent_call_sid,
            "to": "+819012345678",
            "from": "client:calltrail",
            "status": "completed",
            "start_time": rfc2822(start_time),
            "end_time": rfc2822(start_time + timedelta(seconds=duration_s)),
            "duration": str(duration_s),
            "price": price,
            "price_unit": price_unit,
            "direction": "outbound-dial" if parent_call_sid else "inbound",
            "api_version": "2010-04-01",
        }
        self._stamp(call, sid, f"Calls/{sid}.json")
        minutes = math.ceil(duration_s / 60)
        self.calls.append(StoredCall(start_time.astimezone(UTC), category, minutes, call))
        self._calls_sorted = False

    def add_recording(
        self,
        sid: str,
        call_sid: str,
        created: datetime,
        *,
        price: str | None,
        price_unit: str = "JPY",
        duration_s: int = 60,
        channels: int = 2,
        source: str = "DialVerb",
        status: str = "completed",
        media: bytes | None = None,
    ) -> None:
        """A recording as Twilio's Recording resource gives it: ``price`` as Twilio gives it
        (negative, or None until priced), ``duration`` a string of seconds, ``call_sid`` the
        parent leg of a two-leg call."""
        recording: Json = {
            "api_version": "2010-04-01",
            "call_sid": call_sid,
            "conference_sid": None,
            "date_created": rfc2822(created),
            "start_time": rfc2822(created),
            "duration": str(duration_s),
            "price": price,
            "price_unit": price_unit,
            "status": status,
            "channels": channels,
            "source": source,
            "error_code": None,
            "encryption_details": None,
        }
        base = f"{API}/Accounts/{self.account_sid}/Recordings/{sid}"
        recording["subresource_uris"] = {
            "add_on_results": f"{base}/AddOnResults.json",
            "transcriptions": f"{base}/Transcriptions.json",
        }
        self._stamp(recording, sid, f"Recordings/{sid}.json")
        audio = media if media is not None else b"ID3stand-in recording " + sid.encode()
        self.recordings[sid] = StoredRecording(created.astimezone(UTC), recording, media=audio)

    def sorted_calls(self) -> list[StoredCall]:
        """Newest first, as Twilio lists calls."""
        if not self._calls_sorted:
            self.calls.sort(key=lambda c: (c.start, str(c.resource["sid"])), reverse=True)
            self._calls_sorted = True
        return self.calls

    def fail_next(
        self,
        status: int = 503,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        drop: bool = False,
        after_apply: bool = False,
        code: int | None = None,
    ) -> None:
        """The next ``times`` matching requests get ``status`` with Twilio error ``code`` (or a
        dropped connection, before the change is made or, ``after_apply``, after it)."""
        for _ in range(times):
            self.faults.append(
                Fault("drop" if drop else "status", status, method, path, after_apply, code)
            )

    def count(self, method: str, path_suffix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path.endswith(path_suffix))

    def _take_fault(self, method: str, path: str, after_apply: bool) -> Fault | None:
        for fault in self.faults:
            if fault.after_apply == after_apply and fault.matches(method, path):
                self.faults.remove(fault)
                return fault
        return None


# --- request handling ----------------------------------------------------------------------


def _error_body(status: int, code: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            }
        ),
        content_type="application/json",
    )


def _json(payload: Json, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


def _username(request: web.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password


def _page(
    request: web.Request, key: str, records: list[Json], keep: Mapping[str, str] | None = None
) -> web.Response:
    """A list envelope. The PageToken ("PT" + offset) is the stand-in's guess: Twilio's is
    opaque; clients only follow ``next_page_uri``."""
    query = request.query
    try:
        size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        number = int(query.get("Page", 0))
        token = query.get("PageToken", "")
        offset = int(token[2:]) if token.startswith("PT") else number * size
    except ValueError:
        raise TwilioRejectError(400, BAD_REQUEST, "Invalid paging parameter") from None
    size = max(size, 1)
    chunk = records[offset : offset + size]
    filters = {
        k: v for k, v in (keep or query).items() if k not in ("Page", "PageSize", "PageToken")
    }
    path = request.path

    def uri(page: int, start: int | None) -> str:
        params = {**filters, "PageSize": str(size), "Page": str(page)}
        if start is not None:
            params["PageToken"] = f"PT{start}"
        return f"{path}?{urlencode(params)}"

    has_next = offset + size < len(records)
    return _json(
        {
            key: chunk,
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(number + 1, offset + size) if has_next else None,
            "previous_page_uri": uri(number - 1, max(offset - size, 0)) if number > 0 else None,
            "page": number,
            "page_size": size,
            "start": offset,
            "end": offset + len(chunk) - 1 if chunk else offset,
            "uri": request.path_qs,
        }
    )


def _form_value(form: Form, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


# PascalCase form parameter → snake_case property, per resource (the v2010 reference pages).
APP_PARAMS = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}
NUMBER_PARAMS = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "TrunkSid": "trunk_sid",
}
DOMAIN_PARAMS = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "VoiceStatusCallbackUrl": "voice_status_callback_url",
    "VoiceStatusCallbackMethod": "voice_status_callback_method",
    "DomainName": "domain_name",
}
METHODS = frozenset({"GET", "POST"})


def _apply(resource: Json, form: Form, params: Mapping[str, str]) -> None:
    for param, prop in params.items():
        value = _form_value(form, param)
        if value is None:
            continue
        if prop.endswith("_method"):
            if value.upper() not in METHODS:
                raise TwilioRejectError(400, BAD_REQUEST, f"{param} must be GET or POST")
            value = value.upper()
        resource[prop] = value or None
    resource["date_updated"] = rfc2822(datetime.now(UTC))


def _when(text: str) -> datetime:
    """A StartTime filter value: a UTC date, or a date-time (twilio-python sends either)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise TwilioRejectError(400, BAD_REQUEST, f"Invalid StartTime filter {text!r}") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def init_app(account: TwilioAccount) -> web.Application:
    prefix = f"{API}/Accounts/{{account}}"

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(STANDIN_PREFIX):  # the stand-in's own door: no account auth
            try:
                return await handler(request)
            except TwilioRejectError as exc:
                return _error_body(exc.status, exc.code, exc.message)
        path = request.path.removeprefix(f"{API}/Accounts/{request.match_info.get('account')}/")
        user, password = _username(request)

        def log(status: int) -> None:
            account.requests.append(LoggedRequest(request.method, path, status, user))

        response: web.StreamResponse
        # Faults match the path with its query string, so a test can aim at a later page.
        target = f"{path}?{request.query_string}" if request.query_string else path
        fault = account._take_fault(request.method, target, after_apply=False)
        if fault is not None:
            if fault.kind == "drop":
                log(0)
                if request.transport is not None:
                    request.transport.close()
                raise web.HTTPServiceUnavailable  # never reaches the client
            log(fault.status)
            response = _error_body(fault.status, fault.code or fault.status * 100, "stand-in fault")
            if fault.status == 429:
                response = _error_body(429, 20429, "Too Many Requests")
                response.headers["Retry-After"] = "1"
            return response
        authorized = (
            user is not None
            and secrets.compare_digest(user, account.api_key)
            and secrets.compare_digest(password or "", account.api_secret)
            and request.match_info.get("account") == account.account_sid
        )
        if not authorized:
            log(401)
            response = _error_body(401, 20003, "Authenticate")
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        try:
            response = await handler(request)
        except TwilioRejectError as exc:
            log(exc.status)
            return _error_body(exc.status, exc.code, exc.message)
        except web.HTTPNotFound:
            log(404)
            return _error_body(404, 20404, f"The requested resource {request.path} was not found")
        after = account._take_fault(request.method, target, after_apply=True)
        if after is not None:
            log(0)
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable
        log(response.status)
        return response

    def found(table: Mapping[str, Json], sid: str, request: web.Request) -> Json:
        resource = table.get(sid)
        if resource is None:
            raise _not_found(request.path)
        return resource

    # --- Applications ---------------------------------------------------------------------

    async def list_applications(request: web.Request) -> web.Response:
        name = request.query.get("FriendlyName")
        apps = [
            a for a in account.applications.values() if name is None or a["friendly_name"] == name
        ]
        return _page(request, "applications", apps)

    async def create_application(request: web.Request) -> web.Response:
        form = await request.post()
        sid = account.add_application(_form_value(form, "FriendlyName") or "")
        _apply(account.applications[sid], form, APP_PARAMS)
        return _json(account.applications[sid], 201)

    async def get_application(request: web.Request) -> web.Response:
        return _json(found(account.applications, request.match_info["sid"], request))

    async def update_application(request: web.Request) -> web.Response:
        app = found(account.applications, request.match_info["sid"], request)
        _apply(app, await request.post(), APP_PARAMS)
        return _json(app)

    # --- IncomingPhoneNumbers ---------------------------------------------------------------

    async def list_numbers(request: web.Request) -> web.Response:
        wanted = request.query.get("PhoneNumber")
        numbers = [
            n
            for n in account.numbers.values()
            if wanted is None or str(n["phone_number"]).endswith(wanted.lstrip("+"))
        ]
        return _page(request, "incoming_phone_numbers", numbers)

    async def get_number(request: web.Request) -> web.Response:
        return _json(found(account.numbers, request.match_info["sid"], request))

    async def update_number(request: web.Request) -> web.Response:
        number = found(account.numbers, request.match_info["sid"], request)
        _apply(number, await request.post(), NUMBER_PARAMS)
        return _json(number)

    # --- SIP domains -------------------------------------------------------------------------

    async def list_domains(request: web.Request) -> web.Response:
        return _page(request, "domains", list(account.sip_domains.values()))

    async def create_domain(request: web.Request) -> web.Response:
        form = await request.post()
        name = (_form_value(form, "DomainName") or "").lower()
        if not name:
            raise TwilioRejectError(400, BAD_REQUEST, "Missing required parameter DomainName")
        ours = {str(d["domain_name"]) for d in account.sip_domains.values()}
        if name in ours or name in account.taken_domain_names:
            raise TwilioRejectError(400, 21232, f"Domain name {name} is not available")
        sid = account.add_sip_domain(name)
        _apply(account.sip_domains[sid], form, DOMAIN_PARAMS)
        account.sip_domains[sid]["domain_name"] = name
        return _json(account.sip_domains[sid], 201)

    async def get_domain(request: web.Request) -> web.Response:
        return _json(found(account.sip_domains, request.match_info["sid"], request))

    async def update_domain(request: web.Request) -> web.Response:
        domain = found(account.sip_domains, request.match_info["sid"], request)
        form = await request.post()
        if _form_value(form, "DomainName") not in (None, domain["domain_name"]):
            raise TwilioRejectError(400, 21232, "Domain name is not available")
        _apply(domain, form, DOMAIN_PARAMS)
        return _json(domain)

    async def list_mappings(request: web.Request) -> web.Response:
        domain_sid = request.match_info["sid"]
        found(account.sip_domains, domain_sid, request)
        mappings = [
            {
                "sid": acl_sid,
                "account_sid": account.account_sid,
                "friendly_name": account.acls[acl_sid]["friendly_name"],
                "date_created": account.acls[acl_sid]["date_created"],
                "date_updated": account.acls[acl_sid]["date_updated"],
            }
            for acl_sid in account.call_auth_mappings[domain_sid]
            if acl_sid in account.acls
        ]
        return _page(request, "contents", mappings)

    async def create_mapping(request: web.Request) -> web.Response:
        domain_sid = request.match_info["sid"]
        found(account.sip_domains, domain_sid, request)
        acl_sid = _form_value(await request.post(), "IpAccessControlListSid") or ""
        if not acl_sid:
            raise TwilioRejectError(
                400, BAD_REQUEST, "Missing required parameter IpAccessControlListSid"
            )
        acl = found(account.acls, acl_sid, request)
        if acl_sid in account.call_auth_mappings[domain_sid]:
            raise TwilioRejectError(400, 21231, "Domain Validation Error")
        account.map_acl(domain_sid, acl_sid)
        return _json(
            {
                "sid": acl_sid,
                "account_sid": account.account_sid,
                "friendly_name": acl["friendly_name"],
                "date_created": rfc2822(datetime.now(UTC)),
                "date_updated": rfc2822(datetime.now(UTC)),
            },
            201,
        )

    # --- IP access control lists --------------------------------------------------------

    async def list_acls(request: web.Request) -> web.Response:
        return _page(request, "ip_access_control_lists", list(account.acls.values()))

    async def create_acl(request: web.Request) -> web.Response:
        name = _form_value(await request.post(), "FriendlyName")
        if not name:
            raise TwilioRejectError(400, BAD_REQUEST, "Missing required parameter FriendlyName")
        return _json(account.acls[account.add_acl(name)], 201)

    async def get_acl(request: web.Request) -> web.Response:
        return _json(found(account.acls, request.match_info["sid"], request))

    async def list_addresses(request: web.Request) -> web.Response:
        acl_sid = request.match_info["sid"]
        found(account.acls, acl_sid, request)
        return _page(request, "ip_addresses", list(account.acl_addresses[acl_sid].values()))

    async def create_address(request: web.Request) -> web.Response:
        acl_sid = request.match_info["sid"]
        found(account.acls, acl_sid, request)
        form = await request.post()
        ip = _form_value(form, "IpAddress") or ""
        name = _form_value(form, "FriendlyName") or ""
        try:
            ipaddress.ip_address(ip)
            prefix = int(_form_value(form, "CidrPrefixLength") or 32)
        except ValueError:
            raise TwilioRejectError(400, BAD_REQUEST, "IpAddress must be an IP address") from None
        if not name:
            raise TwilioRejectError(400, BAD_REQUEST, "Missing required parameter FriendlyName")
        sid = account.add_address(acl_sid, ip, prefix, name)
        return _json(account.acl_addresses[acl_sid][sid], 201)

    async def delete_address(request: web.Request) -> web.Response:
        acl_sid = request.match_info["sid"]
        found(account.acls, acl_sid, request)
        addresses = account.acl_addresses[acl_sid]
        found(addresses, request.match_info["address"], request)
        del addresses[request.match_info["address"]]
        return web.Response(status=204)

    # --- Calls and Usage Records ----------------------------------------------------------

    async def list_calls(request: web.Request) -> web.Response:
        query = request.query
        # "StartTime>=YYYY-MM-DD": on or after that UTC day; "StartTime<=…": before it
        # (Call resource, "Read multiple Call resources"); twilio-python sends the keys
        # "StartTime>" and "StartTime<".
        after = _when(query["StartTime>"]) if "StartTime>" in query else None
        before = _when(query["StartTime<"]) if "StartTime<" in query else None
        calls = [
            c.resource
            for c in account.sorted_calls()
            if (after is None or c.start >= after) and (before is None or c.start < before)
        ]
        return _page(request, "calls", calls)

    async def list_recordings(request: web.Request) -> web.Response:
        # "DateCreated>=YYYY-MM-DD": created on or after midnight (GMT) of that day,
        # "DateCreated<=…": before it, "DateCreated": on that day (Recording resource, "Read
        # multiple Recording resources"); twilio-python sends "DateCreated>" / "DateCreated<".
        # Newest first, as Twilio lists them (a guess: the page does not say).
        query = request.query
        after = _when(query["DateCreated>"]) if "DateCreated>" in query else None
        before = _when(query["DateCreated<"]) if "DateCreated<" in query else None
        day = _when(query["DateCreated"]).date() if "DateCreated" in query else None
        call_sid = query.get("CallSid")
        deleted_too = query.get("IncludeSoftDeleted", "").lower() == "true"
        stored = sorted(
            account.recordings.values(),
            key=lambda r: (r.created, str(r.resource["sid"])),
            reverse=True,
        )
        recordings = [
            r.resource
            for r in stored
            if (after is None or r.created >= after)
            and (before is None or r.created < before)
            and (day is None or r.created.date() == day)
            and (call_sid is None or r.resource["call_sid"] == call_sid)
            and (deleted_too or not r.deleted)
        ]
        return _page(request, "recordings", recordings)

    async def get_recording(request: web.Request) -> web.Response:
        stored = account.recordings.get(request.match_info["sid"])
        if stored is None or stored.deleted:
            raise _not_found(request.path)
        return _json(stored.resource)

    async def get_recording_media(request: web.Request) -> web.Response:
        stored = account.recordings.get(request.match_info["sid"])
        if stored is None or stored.deleted:
            raise _not_found(request.path)
        return web.Response(body=stored.media, content_type="audio/mpeg")

    async def delete_recording(request: web.Request) -> web.Response:
        stored = account.recordings.get(request.match_info["sid"])
        if stored is None or stored.deleted:
            raise _not_found(request.path)
        stored.deleted = True
        return web.Response(status=204)

    async def put_recording(request: web.Request) -> web.Response:
        """Dev only (the module docstring): a recording made, with its media."""
        sid = request.match_info["sid"]
        existed = sid in account.recordings
        _make_recording(account, sid, request.query, await request.read())
        return _json(account.recordings[sid].resource, status=200 if existed else 201)

    async def list_usage(request: web.Request) -> web.Response:
        query = request.query
        try:
            start = date.fromisoformat(query.get("StartDate", "1970-01-01"))
            end = date.fromisoformat(query.get("EndDate", "9999-12-31"))
        except ValueError:
            raise TwilioRejectError(400, BAD_REQUEST, "Invalid StartDate or EndDate") from None
        sums: dict[str, list[Decimal]] = {}
        units: dict[str, str] = {}
        for call in account.calls:
            if not start <= call.start.date() <= end:
                continue
            total = sums.setdefault(call.category, [Decimal(0), Decimal(0), Decimal(0)])
            total[0] += 1
            total[1] += call.minutes
            total[2] += abs(Decimal(str(call.resource["price"] or "0")))
            units[call.category] = str(call.resource["price_unit"])
        records = []
        for category, (count, minutes, price) in sorted(sums.items()):
            records.append(
                _usage_record(
                    account,
                    category,
                    start,
                    end,
                    count,
                    "calls",
                    minutes,
                    "minutes",
                    price,
                    units[category],
                )
            )
        if account.number_rental is not None:
            rental, unit = account.number_rental
            held = Decimal(len(account.numbers))
            records.append(
                _usage_record(
                    account,
                    "phonenumbers-local",
                    start,
                    end,
                    held,
                    "numbers",
                    held,
                    "numbers",
                    held * Decimal(rental),
                    unit,
                )
            )
        wanted = query.get("Category")
        if wanted:
            records = [r for r in records if r["category"] == wanted]
        return _page(request, "usage_records", records)

    app = web.Application(middlewares=[gate])
    r = app.router
    r.add_get(f"{prefix}/Applications.json", list_applications)
    r.add_post(f"{prefix}/Applications.json", create_application)
    r.add_get(f"{prefix}/Applications/{{sid}}.json", get_application)
    r.add_post(f"{prefix}/Applications/{{sid}}.json", update_application)
    r.add_get(f"{prefix}/IncomingPhoneNumbers.json", list_numbers)
    r.add_get(f"{prefix}/IncomingPhoneNumbers/{{sid}}.json", get_number)
    r.add_post(f"{prefix}/IncomingPhoneNumbers/{{sid}}.json", update_number)
    r.add_get(f"{prefix}/SIP/Domains.json", list_domains)
    r.add_post(f"{prefix}/SIP/Domains.json", create_domain)
    r.add_get(f"{prefix}/SIP/Domains/{{sid}}.json", get_domain)
    r.add_post(f"{prefix}/SIP/Domains/{{sid}}.json", update_domain)
    mappings = f"{prefix}/SIP/Domains/{{sid}}/Auth/Calls/IpAccessControlListMappings.json"
    r.add_get(mappings, list_mappings)
    r.add_post(mappings, create_mapping)
    r.add_get(f"{prefix}/SIP/IpAccessControlLists.json", list_acls)
    r.add_post(f"{prefix}/SIP/IpAccessControlLists.json", create_acl)
    r.add_get(f"{prefix}/SIP/IpAccessControlLists/{{sid}}.json", get_acl)
    r.add_get(f"{prefix}/SIP/IpAccessControlLists/{{sid}}/IpAddresses.json", list_addresses)
    r.add_post(f"{prefix}/SIP/IpAccessControlLists/{{sid}}/IpAddresses.json", create_address)
    r.add_delete(
        f"{prefix}/SIP/IpAccessControlLists/{{sid}}/IpAddresses/{{address}}.json", delete_address
    )
    r.add_get(f"{prefix}/Calls.json", list_calls)
    r.add_get(f"{prefix}/Recordings.json", list_recordings)
    r.add_get(f"{prefix}/Recordings/{{sid}}.json", get_recording)
    r.add_delete(f"{prefix}/Recordings/{{sid}}.json", delete_recording)
    r.add_get(f"{prefix}/Recordings/{{sid}}.mp3", get_recording_media)
    r.add_get(f"{prefix}/Usage/Records.json", list_usage)
    r.add_put(f"{STANDIN_PREFIX}recordings/{{sid}}", put_recording)
    return app


def _make_recording(
    account: TwilioAccount, sid: str, query: Mapping[str, str], media: bytes
) -> None:
    """The dev route's recording added to ``account``, or a 400 naming what is wrong."""

    def bad(message: str) -> TwilioRejectError:
        return TwilioRejectError(400, BAD_REQUEST, message)

    call_sid = query.get("CallSid", "")
    if not RECORDING_SID.fullmatch(sid):
        raise bad("The recording SID must be RE and 32 hex digits")
    if not CALL_SID.fullmatch(call_sid):
        raise bad("CallSid must be CA and 32 hex digits")
    try:
        duration_s = int(query.get("RecordingDuration", "0"))
        channels = int(query.get("RecordingChannels", "2"))
        started = query.get("RecordingStartTime")
        created = parsedate_to_datetime(started) if started else datetime.now(UTC)
    except (ValueError, TypeError):
        raise bad(
            "RecordingDuration, RecordingChannels or RecordingStartTime is malformed"
        ) from None
    if duration_s < 0 or channels not in (1, 2) or created.tzinfo is None:
        raise bad("RecordingDuration, RecordingChannels or RecordingStartTime is out of range")
    source = query.get("RecordingSource", "DialVerb")
    if source not in RECORDING_SOURCES:
        raise bad(f"RecordingSource must be one of {', '.join(sorted(RECORDING_SOURCES))}")
    account.add_recording(
        sid,
        call_sid,
        created,
        price=None,
        duration_s=duration_s,
        channels=channels,
        source=source,
        media=media or None,
    )


def _usage_record(
    account: TwilioAccount,
    category: str,
    start: date,
    end: date,
    count: Decimal,
    count_unit: str,
    usage: Decimal,
    usage_unit: str,
    price: Decimal,
    price_unit: str,
) -> Json:
    return {
        "account_sid": account.account_sid,
        "api_version": "2010-04-01",
        "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
        "category": category,
        "count": str(count),
        "count_unit": count_unit,
        "description": category.replace("-", " "),
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "price": str(price),
        "price_unit": price_unit.lower(),
        "usage": str(usage),
        "usage_unit": usage_unit,
        "uri": f"{API}/Accounts/{account.account_sid}/Usage/Records.json?Category={category}",
        "subresource_uris": {},
    }


# --- serving --------------------------------------------------------------------------------


class TwilioStandin(LocalServer):
    """Serve a ``TwilioAccount`` on 127.0.0.1 on a free (or given) port."""

    def __init__(
        self, account: TwilioAccount | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.account = account or seeded_account()

    def make_app(self) -> web.Application:
        return init_app(self.account)


#: The dev account `calltrail dev` serves (placeholders: never real credentials).
DEV_ACCOUNT_SID = "AC" + "d" * 32
DEV_API_KEY = "SK" + "d" * 32
DEV_API_SECRET = "dev-twilio-standin-secret"  # noqa: S105 - a local stand-in's placeholder
DEV_CALLER_ID = "+815012345678"


def seeded_account(
    account_sid: str = DEV_ACCOUNT_SID,
    api_key: str = DEV_API_KEY,
    api_secret: str = DEV_API_SECRET,
    caller_id: str = DEV_CALLER_ID,
) -> TwilioAccount:
    """An account as a newcomer has it: the 050 number bought, nothing set up, and a few
    resources of someone else's (another app, a SIP domain, a list) that must be left alone."""
    account = TwilioAccount(account_sid, api_key, api_secret)
    account.add_number(caller_id, voice_url="https://demo.twilio.com/welcome/voice/")
    account.add_number("+815098765432", voice_url="https://other.example.com/voice")
    account.add_application("another-app", voice_url="https://other.example.com/voice")
    account.add_sip_domain("someone-else.sip.twilio.com", voice_url="https://other.example.com")
    account.add_acl("office", "198.51.100.7")
    account.taken_domain_names.add("taken.sip.twilio.com")
    account.number_rental = ("108", "JPY")
    return account


def try_it_line(base_url: str, public_base_url: str) -> str:
    """The command an operator runs to try ``provision`` against the dev stand-in."""
    return (
        f"TWILIO_API_BASE_URL={base_url} TWILIO_ACCOUNT_SID={DEV_ACCOUNT_SID} "
        f"TWILIO_API_KEY={DEV_API_KEY} TWILIO_API_SECRET={DEV_API_SECRET} "
        f"TWILIO_CALLER_ID={DEV_CALLER_ID} PUBLIC_BASE_URL={public_base_url} "
        "TWILIO_SIP_DOMAIN=dev-line.sip.twilio.com LINE_SIP_IPS=203.0.113.10 "
        ".venv/bin/calltrail twilio provision"
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the seeded dev account until SIGINT/SIGTERM (``calltrail dev`` starts this)."""
    serve_until_stopped(
        "the Twilio REST stand-in, dev account", lambda: init_app(seeded_account()), argv
    )


if __name__ == "__main__":
    main()
