"""A small async kintone REST client on aiohttp: API tokens, typed errors, retries, limits.

No maintained Python SDK exists; the reference for behaviour is the official JavaScript client
(``@kintone/rest-api-client``): tokens comma-joined in ``X-Cybozu-API-Token``, guest-space
paths ``/k/guest/{space}/v1/…``, JSON bodies for writes, query parameters for reads, and the
error body ``{code, id, message, errors}`` shown as ``[status] [code] message (id)``.

kintone's limits shape the rest (kintone.dev, "How to Avoid Kintone REST API limits"; cybozu.dev,
"kintone APIリクエスト数の超過メールが届いたら?"):

- at most 100 concurrent requests per *domain*, beyond which kintone answers 429: the client caps
  itself well below that (default 10), since other integrations share the domain;
- about 10,000 requests per app per day, a count kintone resets at 09:00 JST (00:00 UTC): the
  client counts every request it sends per app and UTC day and warns once before the mark.

Retries (429, 5xx, timeouts, connection errors) use exponential backoff with full jitter, or the
server's ``Retry-After``. A write retried after a timeout may already have been applied: with a
``revision`` the retry then fails with 409 ``GAIA_CO02``, so callers must re-read and check
before writing again (an upsert keyed on a unique field is safe to repeat as is). A record
comment cannot be made safe that way (no revision, no key): its post is retried only on 429,
which kintone answers before doing anything; after a 5xx or a lost answer the caller reads the
record's comments before posting again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson

from services.common.logging import REDACTED, get_logger

MAX_RECORDS_PER_REQUEST = 100  # kintone rejects more in one records.json call (CB_VA01)
MAX_QUERY_FIELDS = 100  # fields[0]…fields[99] in a GET's URL (cybozu.dev, GET records.json)
MAX_COMMENTS_PER_REQUEST = 10  # GET record/comments.json's limit (cybozu.dev, get-comments)
DAILY_REQUEST_LIMIT = 10_000  # per app per day on the standard course
TOKEN_HEADER = "X-Cybozu-API-Token"  # noqa: S105 - a header name, not a secret

Outcome = Literal[
    "ok",
    "conflict",
    "not_found",
    "permission",
    "validation",
    "auth",
    "rate_limited",
    "unavailable",
    "error",
]
OnRequest = Callable[[int, Outcome], None]
Sleep = Callable[[float], Awaitable[None]]


# --- errors ---------------------------------------------------------------------------------


class KintoneError(Exception):
    """An answer from kintone that is not a success, or no answer at all (``status`` 0).

    ``request_id`` is kintone's ``id`` for the error: quote it to cybozu support.
    """

    retryable: ClassVar[bool] = False
    outcome: ClassVar[Outcome] = "error"

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Mapping[str, Any] | None = None,
        request_id: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.errors: dict[str, Any] = dict(errors or {})
        self.request_id = request_id
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        text = f"[{self.status}] [{self.code or '-'}] {self.message}"
        return f"{text} ({self.request_id})" if self.request_id else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class KintoneConflictError(KintoneError):
    """409 ``GAIA_CO02``: the record's revision moved on (someone else saved it). Re-read."""

    outcome = "conflict"


class KintoneNotFoundError(KintoneError):
    """The record (``GAIA_RE01``), the app (``GAIA_AP01``) or an ``updateKey`` match is gone."""

    outcome = "not_found"


class KintonePermissionError(KintoneError):
    """The token (``GAIA_NO01``) or user (``CB_NO02``) may not do this."""

    outcome = "permission"


class KintoneValidationError(KintoneError):
    """400 ``CB_VA01``: the request or a field value was refused; ``errors`` says where."""

    outcome = "validation"

    def field_errors(self) -> dict[str, list[str]]:
        """``errors`` as ``{"record.code.value": ["message", …]}``, kintone's keys kept."""
        out: dict[str, list[str]] = {}
        for key, value in self.errors.items():
            messages = value.get("messages") if isinstance(value, Mapping) else None
            out[key] = [str(m) for m in messages] if isinstance(messages, list) else [str(value)]
        return out


class KintoneAuthError(KintoneError):
    """The token is wrong, not yet applied ("Update App"), duplicated or for another app."""

    outcome = "auth"


class KintoneRateLimitError(KintoneError):
    """429: more than kintone's concurrent requests for the domain. Retryable."""

    retryable = True
    outcome = "rate_limited"


class KintoneUnavailableError(KintoneError):
    """5xx (maintenance answers 503), a timeout, a broken connection or a lock. Retryable."""

    retryable = True
    outcome = "unavailable"


class KintoneBatchTooLargeError(ValueError):
    """Raised before sending: kintone takes at most 100 records per records.json request."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"{count} records in one request; kintone accepts at most "
            f"{MAX_RECORDS_PER_REQUEST}: split the batch"
        )
        self.count = count


_BY_CODE: dict[str, type[KintoneError]] = {
    "GAIA_CO02": KintoneConflictError,
    "GAIA_RE01": KintoneNotFoundError,
    "GAIA_AP01": KintoneNotFoundError,
    "GAIA_RE20": KintoneNotFoundError,  # no record matches the updateKey (without upsert)
    "CB_NO02": KintonePermissionError,
    "GAIA_NO01": KintonePermissionError,
    "CB_VA01": KintoneValidationError,
    "CB_IJ01": KintoneValidationError,  # the body is not valid JSON
    "GAIA_IA02": KintoneAuthError,  # no such token, or not applied yet ("Update App")
    "GAIA_DA03": KintoneAuthError,  # two tokens for the same app in one header
    "GAIA_AP15": KintoneAuthError,  # the tokens are for other apps
    "CB_WA01": KintoneAuthError,  # password authentication failed
    "CB_AU01": KintoneAuthError,  # no authentication at all
    # Database lock contention, worth another try (embulk-output-kintone retries these).
    "GAIA_DA02": KintoneUnavailableError,
    "GAIA_RE18": KintoneUnavailableError,
}
_BY_STATUS: dict[int, type[KintoneError]] = {
    401: KintoneAuthError,
    403: KintonePermissionError,
    404: KintoneNotFoundError,
    409: KintoneConflictError,
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None when absent/bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    retry_after: str | None = None,
    *,
    redact: Iterable[str] = (),
) -> KintoneError:
    """The typed error for an HTTP answer: by kintone's ``code`` first, then by status.

    Bodies that are not kintone JSON (a 503 maintenance page, a proxy's 429) still map by
    status. A bulk request's ``results`` list yields its first non-empty entry, as the JS
    client does. Any of ``redact`` found in the text is masked.
    """
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
    text = ""
    if not isinstance(data, Mapping):
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        text = " ".join(raw.split())[:200]
        data = {}
    results = data.get("results")
    if isinstance(results, list):
        data = next((r for r in results if isinstance(r, Mapping) and r), data)
    code = str(data.get("code") or "")
    secrets = list(redact)
    message = _redact(str(data.get("message") or text or f"HTTP {status}"), secrets)
    errors = data.get("errors") if isinstance(data.get("errors"), Mapping) else None
    if errors:
        errors = orjson.loads(_redact(orjson.dumps(errors).decode(), secrets))
    if status == 429:
        cls: type[KintoneError] = KintoneRateLimitError
    elif status >= 500:
        cls = KintoneUnavailableError
    else:
        cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or KintoneError
    return cls(
        status,
        code,
        message,
        errors,
        request_id=str(data.get("id") or ""),
        retry_after_s=parse_retry_after(retry_after),
    )


# --- client ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpsertResult:
    id: int
    revision: int
    operation: Literal["INSERT", "UPDATE"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KintoneClient:
    """One kintone domain, authenticated by API tokens (several apps: one token each)."""

    def __init__(
        self,
        base_url: str,
        api_tokens: Sequence[str],
        *,
        session: aiohttp.ClientSession | None = None,
        guest_space_id: int | None = None,
        max_concurrency: int = 10,
        max_retries: int = 5,
        timeout_s: float = 10,
        daily_warning_at: int = 9000,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
        on_request: OnRequest | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("kintone base URL must be http(s)://host")
        tokens = [str(t).strip() for t in api_tokens]
        if not tokens:
            raise ValueError("at least one kintone API token is needed")
        for index, token in enumerate(tokens):
            # Checked without quoting the token: this message may end up in a log.
            if not token or any(c == "," or c.isspace() or not c.isprintable() for c in token):
                raise ValueError(f"kintone API token #{index + 1} is empty or malformed")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        self._base_url = f"{parts.scheme}://{parts.netloc}"
        self._tokens = tuple(tokens)
        self._headers = {TOKEN_HEADER: ",".join(tokens), "Accept": "application/json"}
        self._prefix = "/k/v1" if guest_space_id is None else f"/k/guest/{int(guest_space_id)}/v1"
        self._guest_space_id = guest_space_id
        self._session = session
        self._own_session = session is None
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_retries = max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._daily_warning_at = daily_warning_at
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._on_request = on_request
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not security
        self._day: date | None = None
        self._counts: dict[int, int] = {}
        self._warned: set[int] = set()
        self._log = get_logger("calltrail.kintone")

    def __repr__(self) -> str:
        return (
            f"KintoneClient(base_url={self._base_url!r}, tokens={len(self._tokens)}, "
            f"guest_space_id={self._guest_space_id!r})"
        )

    async def __aenter__(self) -> KintoneClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    # --- the API ------------------------------------------------------------------------

    async def get_record(self, app: int, record_id: int) -> tuple[dict[str, Any], int]:
        """The record (fields as kintone returns them, with ``type``) and its revision."""
        data = await self._request("GET", "record", app, params={"app": app, "id": record_id})
        record = data.get("record")
        if not isinstance(record, dict):
            raise _bad_response("record")
        revision = record.get("$revision")
        value = revision.get("value") if isinstance(revision, dict) else None
        return record, _int(value, "$revision")

    async def update_record(
        self, app: int, record_id: int, record: Mapping[str, Any], revision: int | None = None
    ) -> int:
        """Update fields; returns the new revision. With ``revision`` kintone refuses (409
        ``GAIA_CO02``) if the record changed since. A SUBTABLE value replaces the whole table:
        rows sent without their ``id`` are new rows, rows left out are deleted."""
        body: dict[str, Any] = {"app": app, "id": record_id, "record": record}
        if revision is not None:
            body["revision"] = revision
        data = await self._request("PUT", "record", app, body=body)
        return _int(data.get("revision"), "revision")

    async def upsert_records(
        self, app: int, update_key_field: str, records: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[UpsertResult]:
        """Add or update records by a unique field (``updateKey``), all or nothing, in one
        request: ``records`` are ``(key value, fields)``. At most 100 per call."""
        if len(records) > MAX_RECORDS_PER_REQUEST:
            raise KintoneBatchTooLargeError(len(records))
        if not records:
            return []
        body = {
            "app": app,
            "upsert": True,
            "records": [
                {"updateKey": {"field": update_key_field, "value": key}, "record": fields}
                for key, fields in records
            ],
        }
        data = await self._request("PUT", "records", app, body=body)
        rows = data.get("records")
        if not isinstance(rows, list) or len(rows) != len(records):
            raise _bad_response("records")
        return [
            UpsertResult(
                id=_int(row.get("id"), "id"),
                revision=_int(row.get("revision"), "revision"),
                operation="INSERT" if row.get("operation") == "INSERT" else "UPDATE",
            )
            for row in rows
        ]

    async def get_records(
        self,
        app: int,
        query: str = "",
        fields: Sequence[str] | None = None,
        *,
        total_count: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One GET records.json: the records ``query`` selects (at most 500: kintone's limit,
        set in the query with ``limit``), only ``fields`` of them if given (at most 100), and
        with ``total_count`` how many match in all. ``query`` must already be escaped
        (``domain.customer_lookup.quote``)."""
        params: dict[str, int | str] = {"app": app}
        if query:
            params["query"] = query
        for index, code in enumerate(fields or ()):
            if index >= MAX_QUERY_FIELDS:
                raise ValueError(f"kintone takes at most {MAX_QUERY_FIELDS} fields in a GET")
            params[f"fields[{index}]"] = code
        if total_count:
            params["totalCount"] = "true"
        data = await self._request("GET", "records", app, params=params)
        records = data.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise _bad_response("records")
        total = data.get("totalCount")
        return records, (_int(total, "totalCount") if total is not None else None)

    async def add_comment(
        self, app: int, record_id: int, text: str, mentions: Sequence[Mapping[str, str]] = ()
    ) -> int:
        """Post a comment on a record, mentioning ``mentions`` (``{"code", "type"}``); returns
        its id. Not repeated after a 5xx or a lost answer (it may be stored): read the
        comments before posting again."""
        comment: dict[str, Any] = {"text": text}
        if mentions:
            comment["mentions"] = [dict(m) for m in mentions]
        body = {"app": app, "record": record_id, "comment": comment}
        data = await self._request("POST", "record/comment", app, body=body, repeatable=False)
        return _int(data.get("id"), "id")

    async def get_comments(
        self,
        app: int,
        record_id: int,
        *,
        order: Literal["asc", "desc"] = "desc",
        offset: int = 0,
        limit: int = MAX_COMMENTS_PER_REQUEST,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a record's comments (at most 10: kintone's limit), and whether there
        are older ones (kintone's ``older``)."""
        if not 0 <= limit <= MAX_COMMENTS_PER_REQUEST:
            raise ValueError(f"kintone returns at most {MAX_COMMENTS_PER_REQUEST} comments")
        params: dict[str, int | str] = {
            "app": app,
            "record": record_id,
            "order": order,
            "offset": offset,
            "limit": limit,
        }
        data = await self._request("GET", "record/comments", app, params=params)
        comments = data.get("comments")
        if not isinstance(comments, list) or not all(isinstance(c, dict) for c in comments):
            raise _bad_response("comments")
        return comments, data.get("older") is True

    async def get_form_fields(self, app: int) -> dict[str, Any]:
        """The app's fields (``properties``: field code → type, label, required, unique, …)."""
        data = await self._request("GET", "app/form/fields", app, params={"app": app})
        properties = data.get("properties")
        if not isinstance(properties, dict):
            raise _bad_response("properties")
        return properties

    async def upload_file(self, app: int, name: str, content_type: str, data: bytes) -> str:
        """Upload a file for ``app``'s records; returns the temporary ``fileKey`` that a FILE
        field's value ``[{"fileKey": …}]`` attaches (cybozu.dev "ファイルをアップロードする").
        The key attaches once and expires after three days unattached, so a retried upload
        only leaves an unused copy behind: uploads are safe to repeat. Counted against
        ``app``, whose write it is for."""
        payload = _Upload(name, content_type, data)
        answer = await self._request("POST", "file", app, upload=payload)
        file_key = answer.get("fileKey")
        if not isinstance(file_key, str) or not file_key:
            raise _bad_response("fileKey")
        return file_key

    def requests_today(self, app: int) -> int:
        """Requests sent for ``app`` since 00:00 UTC (kintone's 09:00 JST reset)."""
        self._roll_day()
        return self._counts.get(int(app), 0)

    # --- plumbing -----------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        api: str,
        app: int,
        *,
        params: Mapping[str, int | str] | None = None,
        body: Mapping[str, Any] | None = None,
        upload: _Upload | None = None,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """``repeatable`` False: a request that must not run twice, retried only on 429."""
        url = f"{self._base_url}{self._prefix}/{api}.json"
        attempt = 0
        while True:
            try:
                return await self._attempt(method, url, int(app), params, body, upload)
            except KintoneError as exc:
                unsafe = not repeatable and not isinstance(exc, KintoneRateLimitError)
                if not exc.retryable or unsafe or attempt >= self._max_retries:
                    raise
                delay = self._backoff(attempt, exc.retry_after_s)
                attempt += 1
                self._log.info(
                    "kintone_retry",
                    app=app,
                    api=api,
                    status=exc.status,
                    code=exc.code,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)

    async def _attempt(
        self,
        method: str,
        url: str,
        app: int,
        params: Mapping[str, int | str] | None,
        body: Mapping[str, Any] | None,
        upload: _Upload | None = None,
    ) -> dict[str, Any]:
        headers = dict(self._headers)
        data: bytes | aiohttp.FormData | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        elif upload is not None:  # a new form each attempt: aiohttp sends a FormData once
            data = aiohttp.FormData()
            data.add_field(
                "file", upload.data, filename=upload.name, content_type=upload.content_type
            )
        query = {k: str(v) for k, v in (params or {}).items()}
        # The semaphore covers only the request, never the backoff: a sleeping retry holds
        # no slot, so the cap stays a cap on what kintone sees at once.
        async with self._semaphore:
            self._count(app)
            try:
                session = self._session_or_new()
                async with session.request(
                    method,
                    url,
                    params=query,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                    raise_for_status=False,  # a shared session's setting must not get in the way
                ) as response:
                    status = response.status
                    raw = await response.read()
                    retry_after = response.headers.get("Retry-After")
            except TimeoutError as exc:
                error: KintoneError = KintoneUnavailableError(
                    0, "TIMEOUT", f"no answer from kintone within {self._timeout_s:g}s"
                )
                self._report(app, error.outcome)
                raise error from exc
            except aiohttp.ClientError as exc:
                error = KintoneUnavailableError(
                    0, "CONNECTION", _redact(f"{type(exc).__name__}: {exc}", self._tokens)
                )
                self._report(app, error.outcome)
                raise error from None
        if status == 200:
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                self._report(app, "error")
                raise _bad_response("JSON object")
            self._report(app, "ok")
            return payload
        error = error_from_response(status, raw, retry_after, redact=self._tokens)
        self._report(app, error.outcome)
        raise error

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self._backoff_max_s)
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2**attempt)
        return self._rng.uniform(0, ceiling)  # full jitter: retries of many callers spread

    def _roll_day(self) -> None:
        today = self._clock().astimezone(UTC).date()
        if today != self._day:
            self._day = today
            self._counts.clear()
            self._warned.clear()

    def _count(self, app: int) -> None:
        self._roll_day()
        count = self._counts.get(app, 0) + 1
        self._counts[app] = count
        if count >= self._daily_warning_at and app not in self._warned:
            self._warned.add(app)
            self._log.warning(
                "kintone_daily_requests_high",
                app=app,
                requests_today=count,
                warning_at=self._daily_warning_at,
                daily_limit=DAILY_REQUEST_LIMIT,
            )

    def _report(self, app: int, outcome: Outcome) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(app, outcome)
        except Exception:  # a metrics hook must never break a write-back
            self._log.exception("kintone_on_request_failed", app=app)


@dataclass(frozen=True, slots=True)
class _Upload:
    name: str
    content_type: str
    data: bytes = field(repr=False)  # a recording: personal data, never in a repr or a log


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_response(what) from None


def _bad_response(what: str) -> KintoneError:
    return KintoneError(200, "INVALID_RESPONSE", f"kintone's answer lacks a valid {what}")
