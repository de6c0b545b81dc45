"""Twilio's REST API (v2010), on twilio-python, for ``calltrail twilio …`` and ``reconcile``.

- Authenticated as the API key ``TWILIO_API_KEY``/``TWILIO_API_SECRET`` on
  ``TWILIO_ACCOUNT_SID``; never the auth token.
- The base URL is ``TWILIO_API_BASE_URL`` (twilio-python has no setting for it: the ``api``
  domain's ``base_url`` is set). The client gets an explicit environment, because twilio-python
  otherwise reads ``TWILIO_EDGE``/``TWILIO_REGION`` from ``os.environ`` and rewrites the host
  name, while calltrail's ``TWILIO_EDGE`` is the browser SDK's edge.
- The client is twilio-python's synchronous one (requests), run in a worker thread, so the event
  loop never blocks; each request has a timeout.
- 429 is retried with exponential backoff and jitter, and so are 5xx answers and network
  failures of requests that are safe to repeat (reads and in-place updates). A create is not
  repeated after a 5xx or a lost connection: it may have been made, and the caller's next run
  finds it by looking up before creating.
- Every failure becomes one :class:`TwilioError` carrying Twilio's code and HTTP status.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, TypeVar
from urllib.parse import urlsplit

import orjson
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.base.page import Page
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account import AccountContext
from twilio.rest.api.v2010.account.application import ApplicationInstance
from twilio.rest.api.v2010.account.call import CallInstance
from twilio.rest.api.v2010.account.incoming_phone_number import IncomingPhoneNumberInstance
from twilio.rest.api.v2010.account.recording import RecordingInstance
from twilio.rest.api.v2010.account.sip.domain import DomainInstance
from twilio.rest.api.v2010.account.sip.ip_access_control_list import (
    IpAccessControlListInstance,
)
from twilio.rest.api.v2010.account.sip.ip_access_control_list.ip_address import (
    IpAddressInstance,
)
from twilio.rest.api.v2010.account.usage.record import RecordInstance

from services.recorder.domain.provisioning import (
    Application,
    IpAccessControlList,
    IpAddress,
    PhoneNumber,
    SipDomain,
)
from services.recorder.domain.reconcile import TwilioCall, TwilioRecording, UsageRecord
from services.recorder.settings import TwilioApiSettings

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://api.twilio.com"
PAGE_SIZE: Final = 1000  # the largest page Twilio's list resources serve
AUTH_FAILED: Final = 20003
NOT_FOUND: Final = 20404
_RECORDING_SID: Final = re.compile(r"RE[0-9a-fA-F]{32}")


class TwilioError(Exception):
    """A request Twilio refused or that never got an answer.

    ``code`` is Twilio's error code (20003, 20404, 21231 …) when Twilio sent one, ``status``
    the HTTP status (None: no answer). The message never contains credentials.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    @property
    def auth_failed(self) -> bool:
        return self.code == AUTH_FAILED or self.status == 401

    @property
    def not_found(self) -> bool:
        return self.code == NOT_FOUND or self.status == 404

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        code = f"Twilio error {self.code}" if self.code else "Twilio error"
        return f"{code} (HTTP {self.status}): {self.message}"


def _from_response(response: Response) -> TwilioError:
    """A list page's error: twilio-python raises a bare TwilioException holding the response."""
    code: int | None = None
    message = f"HTTP {response.status_code}"
    try:
        body = orjson.loads(response.text)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(body.get("message") or message)
    return TwilioError(message, status=response.status_code, code=code)


def _error(exc: Exception) -> TwilioError:
    if isinstance(exc, TwilioRestException):
        return TwilioError(" ".join(str(exc.msg).split()), status=exc.status, code=exc.code)
    if isinstance(exc, TwilioException) and len(exc.args) > 1:
        response = exc.args[1]
        if isinstance(response, Response):
            return _from_response(response)
    if isinstance(exc, requests.RequestException):
        return TwilioError(f"no answer from Twilio ({type(exc).__name__})")
    return TwilioError(f"unexpected answer from Twilio ({type(exc).__name__}: {exc})")


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # the first try and four retries
    backoff_s: float = 0.5  # doubled each time, with jitter
    max_backoff_s: float = 8.0


class TwilioRest:
    """The few Twilio resources calltrail provisions and reconciles, as value objects."""

    def __init__(
        self,
        account_sid: str,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self._auth = (api_key, api_secret)
        self._timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self._client = Client(
            username=api_key,
            password=api_secret,
            account_sid=account_sid,
            http_client=TwilioHttpClient(timeout=timeout_s),
            # Not os.environ: no TWILIO_EDGE/TWILIO_REGION host rewriting, no auth token.
            environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
        )
        self._client.api.base_url = self.base_url
        self._random = random.Random()  # jitter, not security

    @classmethod
    def from_settings(
        cls,
        settings: TwilioApiSettings,
        *,
        timeout_s: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> TwilioRest:
        return cls(
            settings.twilio_account_sid,
            settings.twilio_api_key,
            settings.twilio_api_secret.get_secret_value(),
            base_url=settings.twilio_api_base_url,
            timeout_s=timeout_s,
            retry=retry,
        )

    @property
    def _account(self) -> AccountContext:
        return self._client.api.v2010.accounts(self.account_sid)

    async def _call(self, request: Callable[[], T], *, repeatable: bool = True) -> T:
        """Run one request in a worker thread; retry what is safe to retry."""
        delay = self.retry.backoff_s
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await asyncio.to_thread(request)
            except (TwilioException, requests.RequestException) as exc:
                error = _error(exc)
            transient = error.status == 429 or (
                repeatable and (error.status is None or error.status >= 500)
            )
            if not transient or attempt == self.retry.attempts:
                raise error
            await asyncio.sleep(delay * (0.5 + self._random.random() / 2))
            delay = min(delay * 2, self.retry.max_backoff_s)
        raise AssertionError("unreachable")

    async def _all(self, first: Callable[[], Page], get_page: Callable[[str], Page]) -> list[T]:
        """Every record of a list: one request per page, following ``next_page_uri``."""
        page = await self._call(first)
        records: list[T] = list(page)
        while page.next_page_url:
            page = await self._call(functools.partial(get_page, page.next_page_url))
            records.extend(page)
        return records

    # --- TwiML Apps -----------------------------------------------------------------------

    async def application(self, sid: str) -> Application | None:
        try:
            app = await self._call(lambda: self._account.applications(sid).fetch())
        except TwilioError as exc:
            if exc.not_found:
                return None
            raise
        return _application(app)

    async def applications_named(self, friendly_name: str) -> list[Application]:
        resource = self._account.applications
        apps: list[ApplicationInstance] = await self._all(
            lambda: resource.page(friendly_name=friendly_name, page_size=PAGE_SIZE),
            resource.get_page,
        )
        return [_application(a) for a in apps if a.friendly_name == friendly_name]

    async def create_application(self, fields: dict[str, str]) -> Application:
        resource = self._account.applications
        return _application(await self._call(lambda: resource.create(**fields), repeatable=False))

    async def update_application(self, sid: str, fields: dict[str, str]) -> Application:
        return _application(
            await self._call(lambda: self._account.applications(sid).update(**fields))
        )

    # --- numbers --------------------------------------------------------------------------

    async def numbers(self, phone_number: str) -> list[PhoneNumber]:
        resource = self._account.incoming_phone_numbers
        found: list[IncomingPhoneNumberInstance] = await self._all(
            lambda: resource.page(phone_number=phone_number, page_size=PAGE_SIZE),
            resource.get_page,
        )
        return [_number(n) for n in found]

    async def update_number(self, sid: str, fields: dict[str, str]) -> PhoneNumber:
        return _number(
            await self._call(lambda: self._account.incoming_phone_numbers(sid).update(**fields))
        )

    # --- SIP domains, IP access control lists, mappings ----------------------------------

    async def sip_domains(self) -> list[SipDomain]:
        resource = self._account.sip.domains
        found: list[DomainInstance] = await self._all(
            lambda: resource.page(page_size=PAGE_SIZE), resource.get_page
        )
        return [_sip_domain(d) for d in found]

    async def create_sip_domain(self, fields: dict[str, str]) -> SipDomain:
        resource = self._account.sip.domains
        domain_name = fields["domain_name"]
        rest = {k: v for k, v in fields.items() if k != "domain_name"}
        return _sip_domain(
            await self._call(lambda: resource.create(domain_name, **rest), repeatable=False)
        )

    async def update_sip_domain(self, sid: str, fields: dict[str, str]) -> SipDomain:
        return _sip_domain(
            await self._call(lambda: self._account.sip.domains(sid).update(**fields))
        )

    async def ip_access_control_lists(self) -> list[IpAccessControlList]:
        resource = self._account.sip.ip_access_control_lists
        found: list[IpAccessControlListInstance] = await self._all(
            lambda: resource.page(page_size=PAGE_SIZE), resource.get_page
        )
        return [IpAccessControlList(str(a.sid), a.friendly_name or "") for a in found]

    async def create_ip_access_control_list(self, friendly_name: str) -> IpAccessControlList:
        resource = self._account.sip.ip_access_control_lists
        acl = await self._call(lambda: resource.create(friendly_name), repeatable=False)
        return IpAccessControlList(str(acl.sid), acl.friendly_name or "")

    async def ip_addresses(self, acl_sid: str) -> list[IpAddress]:
        resource = self._account.sip.ip_access_control_lists(acl_sid).ip_addresses
        found: list[IpAddressInstance] = await self._all(
            lambda: resource.page(page_size=PAGE_SIZE), resource.get_page
        )
        return [_ip_address(a) for a in found]

    async def add_ip_address(self, acl_sid: str, ip: str) -> IpAddress:
        resource = self._account.sip.ip_access_control_lists(acl_sid).ip_addresses
        return _ip_address(
            await self._call(
                lambda: resource.create(ip, ip, cidr_prefix_length=32), repeatable=False
            )
        )

    async def remove_ip_address(self, acl_sid: str, address_sid: str) -> None:
        context = self._account.sip.ip_access_control_lists(acl_sid).ip_addresses(address_sid)
        await self._call(context.delete)

    async def call_auth_acl_sids(self, domain_sid: str) -> frozenset[str]:
        """The IP access control lists mapped to a SIP domain's call authentication."""
        resource = self._account.sip.domains(domain_sid).auth.calls.ip_access_control_list_mappings
        found: list[object] = await self._all(
            lambda: resource.page(page_size=PAGE_SIZE), resource.get_page
        )
        return frozenset(str(getattr(m, "sid", "")) for m in found)

    async def map_call_auth_acl(self, domain_sid: str, acl_sid: str) -> None:
        resource = self._account.sip.domains(domain_sid).auth.calls.ip_access_control_list_mappings
        await self._call(lambda: resource.create(acl_sid), repeatable=False)

    # --- calls and usage, for reconcile --------------------------------------------------

    async def calls_started(self, after: date, before: date) -> list[TwilioCall]:
        """Every call that started on or after ``after`` and before ``before`` (UTC dates, as
        Twilio's Calls list filters), ``PAGE_SIZE`` per request."""
        resource = self._account.calls
        calls: list[CallInstance] = await self._all(
            lambda: resource.page(
                start_time_after=after.isoformat(),  # a str passes through unchanged
                start_time_before=before.isoformat(),
                page_size=PAGE_SIZE,
            ),
            resource.get_page,
        )
        return [_call(c) for c in calls]

    async def recordings_created(self, after: date, before: date) -> list[TwilioRecording]:
        """Every recording created on or after ``after`` and before ``before`` (UTC dates, as
        the Recordings list filters ``DateCreated``), deleted ones included (Twilio keeps their
        metadata, price too, for 40 days), ``PAGE_SIZE`` per request."""
        resource = self._account.recordings
        recordings: list[RecordingInstance] = await self._all(
            lambda: resource.page(
                date_created_after=after.isoformat(),  # a str passes through unchanged
                date_created_before=before.isoformat(),
                include_soft_deleted=True,
                page_size=PAGE_SIZE,
            ),
            resource.get_page,
        )
        return [_recording(r) for r in recordings]

    def recording_media_url(self, media_url: str) -> str | None:
        """Where a recording's audio is fetched (``RecordingUrl`` + ``.mp3``), or None when
        ``media_url`` is not one of this account's Recordings on the API host: a callback
        names the URL, so nothing is fetched from anywhere else (issue 19, "Bad input")."""
        try:
            parts, api = urlsplit(media_url), urlsplit(self.base_url)
            same_host = (parts.scheme, parts.hostname, parts.port) == (
                api.scheme,
                api.hostname,
                api.port,
            )
        except ValueError:
            return None
        path = f"/2010-04-01/Accounts/{self.account_sid}/Recordings/"
        sid = parts.path.removeprefix(path)
        if not same_host or not parts.path.startswith(path) or not _RECORDING_SID.fullmatch(sid):
            return None
        if parts.username or parts.password or parts.query or parts.fragment:
            return None
        return f"{self.base_url}{parts.path}.mp3"

    async def recording_media(self, media_url: str) -> bytes:
        """A recording's audio as MP3, fetched with the API key (HTTP Basic auth, as Twilio's
        Recording resource says its media is protected). Raises TwilioError; the message never
        holds the URL, the key or the audio."""
        url = self.recording_media_url(media_url)
        if url is None:
            raise TwilioError("the recording's URL is not on Twilio's API host: not fetched")

        def get() -> bytes:
            response = requests.get(url, auth=self._auth, timeout=self._timeout_s)
            if response.status_code >= 400:
                answer = Response(response.status_code, response.text, response.headers)
                raise TwilioException("recording media", answer)
            return response.content

        return await self._call(get)

    async def delete_recording(self, sid: str) -> None:
        """Delete a recording from Twilio (``DELETE …/Recordings/{sid}.json``); one already
        gone counts as deleted."""
        try:
            await self._call(self._account.recordings(sid).delete)
        except TwilioError as exc:
            if not exc.not_found:
                raise

    async def usage_records(self, start: date, end: date) -> list[UsageRecord]:
        """The account's usage by category from ``start`` to ``end`` inclusive (UTC dates)."""
        resource = self._account.usage.records
        records: list[RecordInstance] = await self._all(
            lambda: resource.page(start_date=start, end_date=end, page_size=PAGE_SIZE),
            resource.get_page,
        )
        return [_usage(r) for r in records]


def _application(app: ApplicationInstance) -> Application:
    return Application(
        sid=str(app.sid),
        friendly_name=app.friendly_name or "",
        voice_url=app.voice_url or None,
        voice_method=app.voice_method or None,
        status_callback=app.status_callback or None,
        status_callback_method=app.status_callback_method or None,
    )


def _number(number: IncomingPhoneNumberInstance) -> PhoneNumber:
    return PhoneNumber(
        sid=str(number.sid),
        phone_number=number.phone_number or "",
        voice_url=number.voice_url or None,
        voice_method=number.voice_method or None,
        status_callback=number.status_callback or None,
        status_callback_method=number.status_callback_method or None,
        voice_application_sid=number.voice_application_sid or None,
        trunk_sid=number.trunk_sid or None,
    )


def _sip_domain(domain: DomainInstance) -> SipDomain:
    return SipDomain(
        sid=str(domain.sid),
        domain_name=domain.domain_name or "",
        voice_url=domain.voice_url or None,
        voice_method=domain.voice_method or None,
        voice_status_callback_url=domain.voice_status_callback_url or None,
        voice_status_callback_method=domain.voice_status_callback_method or None,
    )


def _ip_address(address: IpAddressInstance) -> IpAddress:
    return IpAddress(
        sid=str(address.sid),
        ip_address=address.ip_address or "",
        cidr_prefix_length=int(address.cidr_prefix_length or 32),
    )


def _call(call: CallInstance) -> TwilioCall:
    started = call.start_time if isinstance(call.start_time, datetime) else None
    return TwilioCall(
        sid=str(call.sid),
        price=_decimal(call.price),
        price_unit=call.price_unit or None,
        start_time=started,
    )


def _recording(recording: RecordingInstance) -> TwilioRecording:
    return TwilioRecording(
        sid=str(recording.sid),
        call_sid=recording.call_sid or None,
        price=_decimal(recording.price),
        price_unit=recording.price_unit or None,
    )


def _usage(record: RecordInstance) -> UsageRecord:
    return UsageRecord(
        category=str(record.category),
        description=record.description or "",
        count=_decimal(record.count),
        count_unit=record.count_unit or "",
        usage=_decimal(record.usage),
        usage_unit=record.usage_unit or "",
        price=_decimal(record.price),
        price_unit=record.price_unit or None,
    )
