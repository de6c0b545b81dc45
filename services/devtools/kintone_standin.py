"""A local kintone stand-in: the part of the REST API calltrail uses, as kintone documents it.

kintone is a SaaS the tests cannot reach, so this plays one kintone *domain* in memory: apps with
their form fields, API tokens bound to one app with view/add/edit permissions, records with
``$id`` and ``$revision``. It refuses what kintone refuses, with kintone's status, code and
error body ``{"code", "id", "message"[, "errors"]}``, and it keeps kintone's traps:

- a SUBTABLE value replaces the whole table: rows sent with an existing ``id`` are kept (inner
  fields merged), rows without ``id`` are new rows, existing rows left out are deleted;
- a NUMBER that is not a number is refused at the top level but silently stored as ``""``
  inside a SUBTABLE;
- unknown field codes are ignored, not refused ("If field codes that don't exist are specified,
  these will be ignored", Add Record): a misspelt column code loses data without an error;
- files go in two steps (cybozu.dev "ファイルをアップロードする"): ``POST file.json``
  (multipart, part ``file``) answers a temporary ``fileKey``, which a FILE field's value
  ``[{"fileKey": …}]`` then attaches; a stored file gets a key of its own (the one GET record
  returns and ``GET file.json?fileKey=`` downloads). Guesses, marked where they are made: a
  temporary key attaches once, and an unknown one is refused with ``GAIA_BL01``.

Sources: kintone.dev / cybozu.dev API pages (Update Record(s), upsert mode, Add Record, Field
Types, REST API limits), the official ``@kintone/rest-api-client`` and cli-kintone end-to-end
tests for auth codes, and real-kintone observations recorded by SonicGarden/kintone-emulator.
Where kintone documents only a status (429 beyond the concurrency limit, 5xx), the body is
plain text, as a proxy or the maintenance page sends it.

Record comments (cybozu.dev, "レコードのコメントを投稿する" add-comment/ and "レコードのコメントを
取得する" get-comments/): a post needs the app's view permission (the token's ``view``), a
``comment.text`` of 1 to 65,535 characters and at most 10 ``mentions`` of type ``USER``,
``GROUP`` or ``ORGANIZATION``; a read takes ``order`` (``asc``/``desc``, default ``desc``),
``offset`` (default 0) and ``limit`` (0 to 10, default 10) and answers ``comments`` with
``older`` and ``newer``. Mentions are checked against the users, groups and organizations the
domain knows (``add_entity``). Guessed, where the pages say nothing: the refusal of an unknown
mention (400 ``CB_VA01`` with ``errors`` keyed ``comment.mentions[i].code``, as kintone keys
other bad parameters), the message wordings, the mention prefix kintone inserts before the text
("宛先を指定すると、本文の前に宛先情報が挿入されます": here the codes, space-separated, then a
line break), the creator of a comment posted with an API token (``Administrator``), and
``older``/``newer`` of an empty page (whether comments exist beyond the offset on that side).

Used by the tests and the benchmarks: ``init_app(domain)`` for an in-process aiohttp
application, ``KintoneStandin`` to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import email.parser
import email.policy
import random
import re
import secrets
import string
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from services.devtools import kintone_query
from services.devtools.call_flows import DEV_CUSTOMERS
from services.devtools.local_server import LocalServer, serve_until_stopped

MAX_RECORDS_PER_REQUEST = 100
# kintone takes files up to 1 GB; the stand-in holds them in memory, so it takes less.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_COMMENT_CHARS = 65_535  # comment.text (cybozu.dev, add-comment)
MAX_MENTIONS = 10  # mentions per comment (cybozu.dev, add-comment)
MAX_COMMENTS_PER_READ = 10  # limit of GET record/comments.json (cybozu.dev, get-comments)
ENTITY_TYPES = ("USER", "GROUP", "ORGANIZATION")
API_TOKEN_USER = {"code": "Administrator", "name": "Administrator"}  # a guess (module doc)
CODE_KEY = web.ResponseKey("kintone_code", str)  # the error code, for the request log
SCALAR_TYPES = frozenset(
    {
        "SINGLE_LINE_TEXT",
        "MULTI_LINE_TEXT",
        "RICH_TEXT",
        "LINK",
        "NUMBER",
        "DATE",
        "TIME",
        "DATETIME",
        "RADIO_BUTTON",
        "DROP_DOWN",
    }
)
LIST_TYPES = frozenset({"CHECK_BOX", "MULTI_SELECT"})
UNIQUE_TYPES = frozenset({"SINGLE_LINE_TEXT", "NUMBER", "LINK", "DATE", "TIME", "DATETIME"})
UPDATE_KEY_TYPES = frozenset({"SINGLE_LINE_TEXT", "NUMBER"})  # what updateKey accepts

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}")

MSG_INVALID_INPUT = "Missing or invalid input."
MSG_REQUIRED_PARAM = "Required field."
MSG_REQUIRED = "Required."
MSG_UNIQUE = "This value already exists in another record."
MSG_NUMBER = "Only numbers are allowed."
MSG_TOO_MANY = f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be updated at one time."
MSG_TOO_MANY_ADD = f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be added at one time."
# Not documented word for word; kintone's real texts are localised anyway.
MSG_TEXT_TOO_LONG = f"Enter {MAX_COMMENT_CHARS} characters or fewer."
MSG_TOO_MANY_MENTIONS = f"A maximum of {MAX_MENTIONS} mentions can be specified."
MSG_UNKNOWN_ENTITY = "The specified user, group or organization (code: {code}) is not found."
MSG_LIMIT = f"Enter a number between 0 and {MAX_COMMENTS_PER_READ}."
MSG_DATETIME = "Enter the date and time in the format YYYY-MM-DDTHH:MM:SSZ."
MSG_FORMAT = "Invalid format."


# --- definitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A form field. ``fields`` holds a SUBTABLE's inner fields (code → Field)."""

    type: str
    label: str = ""
    required: bool = False
    unique: bool = False
    fields: Mapping[str, Field] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unique and self.type not in UNIQUE_TYPES:
            raise ValueError(f"kintone cannot prohibit duplicates on a {self.type} field")
        if self.type == "SUBTABLE" and not self.fields:
            raise ValueError("a SUBTABLE needs inner fields")


@dataclass
class App:
    app_id: int
    fields: dict[str, Field]
    name: str = ""
    guest_space_id: int | None = None
    revision: int = 1  # the form's revision, as GET app/form/fields.json reports it


@dataclass(frozen=True)
class ApiToken:
    token: str
    app: int
    view: bool = True
    add: bool = False
    edit: bool = False


@dataclass
class StoredRecord:
    id: int
    revision: int
    values: dict[str, Any]  # code → str | list[str] | list of rows {"id": str, "value": {...}}


@dataclass(frozen=True)
class StoredFile:
    name: str
    content_type: str
    data: bytes
    app: int | None = None  # the app of the record it is attached to (None: uploaded only)

    def describe(self, file_key: str) -> dict[str, str]:
        """As a FILE field's value lists it (GET record.json)."""
        return {
            "contentType": self.content_type,
            "fileKey": file_key,
            "name": self.name,
            "size": str(len(self.data)),
        }


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    app: int | None
    status: int
    code: str | None
    api_tokens: tuple[str, ...]


@dataclass(frozen=True)
class StoredComment:
    id: int
    text: str  # as kintone returns it: the mentions' codes first
    created_at: str
    mentions: tuple[tuple[str, str], ...]  # (code, type)


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: float | None = None
    after_apply: bool = False
    path: str | None = None  # only requests whose path ends with this
    hold_s: float = 0.0  # the answer waits this long (a slow kintone, a client dying meanwhile)


class _RejectError(Exception):
    """kintone's refusal of a request: becomes the JSON error response."""

    def __init__(
        self, status: int, code: str, message: str, errors: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors


def _invalid(errors: Mapping[str, list[str]]) -> _RejectError:
    return _RejectError(
        400, "CB_VA01", MSG_INVALID_INPUT, {k: {"messages": v} for k, v in errors.items()}
    )


# --- the domain -----------------------------------------------------------------------------


class KintoneDomain:
    """One kintone domain in memory: apps, tokens, records, and the knobs tests turn."""

    def __init__(
        self, *, concurrency_limit: int = 100, latency_s: float = 0.0, seed: int = 0
    ) -> None:
        self.concurrency_limit = concurrency_limit
        self.latency_s = latency_s
        self.apps: dict[int, App] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.requests: list[LoggedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._records: dict[int, dict[int, StoredRecord]] = {}
        # app → unique field code → value → record id: updateKey and duplicate checks in O(1)
        self._index: dict[int, dict[str, dict[str, int]]] = {}
        self._next_record_id: dict[int, int] = {}
        self._next_row_id = 1000
        # uploaded, not yet attached (temporary key) / attached (download key)
        self.uploads: dict[str, StoredFile] = {}
        self.files: dict[str, StoredFile] = {}
        self._faults: deque[_Fault] = deque()
        # The users, groups and organizations mentions may name: (type, code).
        self.entities: set[tuple[str, str]] = set()
        self._comments: dict[tuple[int, int], list[StoredComment]] = {}
        self._failure_rate = 0.0
        self._failure_statuses: tuple[int, ...] = (429, 500, 503)
        self._rng = random.Random(seed)

    # --- set-up -------------------------------------------------------------------------

    def add_app(
        self,
        app_id: int,
        fields: Mapping[str, Field],
        *,
        name: str = "",
        guest_space_id: int | None = None,
    ) -> App:
        app = App(app_id, dict(fields), name or f"app {app_id}", guest_space_id)
        self.apps[app_id] = app
        self._records[app_id] = {}
        self._index[app_id] = {code: {} for code, spec in fields.items() if spec.unique}
        self._next_record_id[app_id] = 1
        return app

    def add_token(
        self, token: str, app: int, *, view: bool = True, add: bool = False, edit: bool = False
    ) -> ApiToken:
        entry = ApiToken(token, app, view=view, add=add, edit=edit)
        self.tokens[token] = entry
        return entry

    def add_entity(self, code: str, kind: str = "USER") -> None:
        """A user, group or organization (``kind``: kintone's mention type) that comments may
        mention."""
        if kind not in ENTITY_TYPES:
            raise ValueError(f"kind must be one of {ENTITY_TYPES}")
        self.entities.add((kind, code))

    # --- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        *statuses: int,
        retry_after: float | None = None,
        after_apply: bool = False,
        path: str | None = None,
        hold_s: float = 0.0,
    ) -> None:
        """Answer the next requests with these statuses, in order. ``after_apply``: do the
        work first, then fail (the answer is lost, the write is not). ``path``: only the next
        requests whose path ends with it (``/record/comment.json``), the others pass.
        ``hold_s``: hold each answer that long first."""
        self._faults.extend(_Fault(s, retry_after, after_apply, path, hold_s) for s in statuses)

    def set_failure_rate(
        self, rate: float, statuses: Iterable[int] = (429, 500, 503), seed: int | None = None
    ) -> None:
        """Fail this fraction of requests (before doing anything) with one of ``statuses``."""
        self._failure_rate = rate
        self._failure_statuses = tuple(statuses)
        if seed is not None:
            self._rng.seed(seed)

    # --- inspection and "another writer" ------------------------------------------------

    def record(self, app: int, record_id: int) -> dict[str, Any]:
        """The record as GET record.json returns it."""
        return _render(self.apps[app], self._records[app][record_id])

    def records(self, app: int) -> list[dict[str, Any]]:
        return [_render(self.apps[app], r) for r in self._records[app].values()]

    def comments(self, app: int, record_id: int) -> list[dict[str, Any]]:
        """The record's comments, oldest first, as GET record/comments.json renders them."""
        return [_comment(c) for c in self._comments.get((app, record_id), [])]

    def _add_comment(self, app: App, record_id: int, text: str, mentions: Any) -> int:
        """Store a comment as kintone does, or refuse it with kintone's error."""
        codes: list[tuple[str, str]] = []
        if mentions is not None and not isinstance(mentions, list):
            raise _invalid({"comment.mentions": [MSG_FORMAT]})
        if len(mentions or []) > MAX_MENTIONS:
            raise _invalid({"comment.mentions": [MSG_TOO_MANY_MENTIONS]})
        errors: dict[str, list[str]] = {}  # every bad entry, as kintone lists input errors
        for index, mention in enumerate(mentions or []):
            code = mention.get("code") if isinstance(mention, Mapping) else None
            kind = mention.get("type") if isinstance(mention, Mapping) else None
            where = f"comment.mentions[{index}]"
            if not isinstance(code, str) or not code:
                errors[f"{where}.code"] = [MSG_REQUIRED_PARAM]
            elif kind not in ENTITY_TYPES:
                errors[f"{where}.type"] = [MSG_FORMAT]
            elif (kind, code) not in self.entities:
                errors[f"{where}.code"] = [MSG_UNKNOWN_ENTITY.format(code=code)]
            else:
                codes.append((code, str(kind)))
        if errors:
            raise _invalid(errors)
        stored = self._comments.setdefault((app.app_id, record_id), [])
        prefix = " ".join(code for code, _ in codes) + " \n" if codes else ""
        comment = StoredComment(
            id=len(stored) + 1,  # per record, from 1 (kintone's sample answers "id": 3)
            text=prefix + text,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            mentions=tuple(codes),
        )
        stored.append(comment)
        return comment.id

    def revision(self, app: int, record_id: int) -> int:
        return self._records[app][record_id].revision

    def add_record(self, app: int, record: Mapping[str, Any]) -> int:
        """Add a record directly, fields in request shape ``{code: {"value": …}}``."""
        return int(self._direct(app, _Item(record=record, insert=True))["id"])

    def edit_record(self, app: int, record_id: int, record: Mapping[str, Any]) -> int:
        """Edit as another user would (kintone's rules apply); returns the new revision."""
        return int(self._direct(app, _Item(record=record, record_id=record_id))["revision"])

    def _direct(self, app: int, item: _Item) -> dict[str, Any]:
        try:
            [result] = self._write(self.apps[app], [item])
        except _RejectError as reject:
            raise ValueError(f"kintone would refuse this: {reject.code} {reject.errors}") from None
        return result

    def request_count(
        self, app: int | None = None, *, method: str | None = None, path: str | None = None
    ) -> int:
        return sum(
            1
            for r in self.requests
            if (app is None or r.app == app)
            and (method is None or r.method == method)
            and (path is None or r.path.endswith(path))
        )

    # --- request handling ---------------------------------------------------------------

    def authenticate(self, request: web.Request) -> list[ApiToken]:
        """The request's API tokens, as kintone checks them before anything else."""
        header = request.headers.get("X-Cybozu-API-Token", "")
        if not header.strip():
            raise _RejectError(401, "CB_AU01", "Log in to kintone to use this API.")
        given = [t.strip() for t in header.split(",")]
        tokens = [self.tokens.get(t) for t in given]
        if any(t is None for t in tokens):
            raise _RejectError(
                400,
                "GAIA_IA02",
                "The specified API token does not match the API token generated via an app.",
            )
        known = [t for t in tokens if t is not None]
        apps = [t.app for t in known]
        if len(set(apps)) != len(apps):
            raise _RejectError(
                400, "GAIA_DA03", "You cannot specify a duplicate API token for the same app."
            )
        return known

    def authorize(self, request: web.Request, app_id: int, *needed: str) -> App:
        """kintone's checks, in order: tokens, app, guest space, token ↔ app, permission."""
        known = self.authenticate(request)
        app = self.apps.get(app_id)
        if app is None:
            raise _RejectError(
                404,
                "GAIA_AP01",
                f"The app (ID: {app_id}) not found. The app may have been deleted.",
            )
        space = request.match_info.get("space")
        if app.guest_space_id is not None and space is None:
            raise _RejectError(
                400,
                "GAIA_IL23",
                'You need to send a request to the URL: "/k/guest/<Space ID>/v1/..." '
                "to execute apps in Guest Spaces.",
            )
        if space is not None and int(space) != app.guest_space_id:
            raise _RejectError(403, "CB_NO02", "No privilege to proceed.")
        token = next((t for t in known if t.app == app_id), None)
        if token is None:
            raise _RejectError(
                403, "GAIA_AP15", f"The API token does not match the app (ID: {app_id})."
            )
        if not all(getattr(token, permission) for permission in needed):
            raise _RejectError(
                403, "GAIA_NO01", "Using this API token, you cannot run the specified API."
            )
        return app

    def _write(self, app: App, items: list[_Item], prefix: str = "record") -> list[dict[str, Any]]:
        """Apply items all or nothing (kintone's bulk APIs roll back on any failure)."""
        stage = _Stage(self, app)
        errors: dict[str, list[str]] = {}
        planned: list[tuple[StoredRecord, str]] = []
        for index, item in enumerate(items):
            where = prefix if prefix == "record" else f"{prefix}[{index}]"
            target, operation = stage.locate(item)
            stale = target is not None and item.revision not in (None, -1, target.revision)
            if stale:  # -1 or no revision: not checked, as kintone documents
                raise _RejectError(
                    409,
                    "GAIA_CO02",
                    "The revision is not the latest. Someone may update a record after you "
                    "opened it.",
                )
            parsed = _parse_record(app, item.record, where, errors, stage.attach)
            if target is None:
                record = StoredRecord(stage.new_id(), 1, _blank(app))
                if item.key is not None:
                    record.values[item.key[0]] = item.key[1]
            else:
                record = copy.deepcopy(target)
                record.revision += 1
            _apply(app, record, parsed, self._new_row_id)
            _check_required(app, record, where, errors)
            stage.check_unique(record, where, errors)
            stage.put(record)
            planned.append((record, operation))
        if errors:
            raise _invalid(errors)
        stage.commit()
        return [{"id": r.id, "revision": r.revision, "operation": op} for r, op in planned]

    def _new_row_id(self) -> str:
        self._next_row_id += 1
        return str(self._next_row_id)

    def _fault(self, path: str = "") -> _Fault | None:
        for fault in self._faults:
            if fault.path is None or path.endswith(fault.path):
                self._faults.remove(fault)
                return fault
        if self._failure_rate and self._rng.random() < self._failure_rate:
            return _Fault(self._rng.choice(self._failure_statuses))
        return None


@dataclass
class _Item:
    record: Mapping[str, Any]
    record_id: int | None = None
    key: tuple[str, str] | None = None  # updateKey (field, normalised value)
    revision: int | None = None
    insert: bool = False  # add a record (POST), or add when nothing matches (upsert)


class _Stage:
    """Records touched by one request, applied together on commit, with their index changes."""

    def __init__(self, domain: KintoneDomain, app: App) -> None:
        self.domain = domain
        self.app = app
        self.records = domain._records[app.app_id]
        self.index = domain._index[app.app_id]
        self.touched: dict[int, StoredRecord] = {}
        self.overlay: dict[tuple[str, str], int | None] = {}
        self.next_id = domain._next_record_id[app.app_id]
        self.attached: dict[str, str] = {}  # temporary key → download key, kept on commit

    def attach(self, value: Any, where: str, errors: dict[str, list[str]]) -> list[Any] | None:
        """A FILE field's value ``[{"fileKey": temporary key}, …]`` as stored, or None (the
        error noted) when it is malformed; an unknown key refuses the whole request."""
        if value is None:
            value = []
        keys = [v.get("fileKey") for v in value] if isinstance(value, list) else None
        if keys is None or not all(
            isinstance(v, Mapping) and isinstance(k, str) for v, k in zip(value, keys, strict=True)
        ):
            errors.setdefault(f"{where}.value", []).append(MSG_FORMAT)
            return None
        stored = []
        for key in keys:
            upload = self.domain.uploads.get(key) if isinstance(key, str) else None
            if upload is None:  # guess: kintone's answer to a key it does not know
                raise _RejectError(400, "GAIA_BL01", f"The specified file (id: {key}) not found.")
            download = self.attached.setdefault(key, uuid.uuid4().hex + uuid.uuid4().hex[:18])
            stored.append(upload.describe(download))
        return stored

    def new_id(self) -> int:
        record_id = self.next_id
        self.next_id += 1
        return record_id

    def get(self, record_id: int) -> StoredRecord | None:
        return self.touched.get(record_id) or self.records.get(record_id)

    def find(self, code: str, value: str) -> StoredRecord | None:
        """The record holding ``value`` in the unique field ``code``, if any."""
        if (code, value) in self.overlay:
            record_id = self.overlay[(code, value)]
        else:
            record_id = self.index.get(code, {}).get(value)
        return self.get(record_id) if record_id is not None else None

    def locate(self, item: _Item) -> tuple[StoredRecord | None, str]:
        if item.key is not None:
            found = self.find(*item.key)
            if found is not None:
                return found, "UPDATE"
            if item.insert:
                return None, "INSERT"
            raise _RejectError(
                404, "GAIA_RE20", 'No records match the conditions specified in the "updateKey".'
            )
        if item.record_id is not None:
            found = self.get(item.record_id)
            if found is not None:
                return found, "UPDATE"
            if not item.insert:
                raise _RejectError(
                    404, "GAIA_RE01", f"The specified record (ID: {item.record_id}) is not found."
                )
        return None, "INSERT"

    def check_unique(self, record: StoredRecord, where: str, errors: dict[str, list[str]]) -> None:
        for code in self.index:
            value = record.values.get(code)
            other = self.find(code, value) if value else None
            if other is not None and other.id != record.id:
                errors.setdefault(f"{where}.{code}.value", []).append(MSG_UNIQUE)

    def put(self, record: StoredRecord) -> None:
        previous = self.get(record.id)
        for code in self.index:
            old = previous.values.get(code) if previous is not None else None
            new = record.values.get(code)
            if old == new:
                continue
            if old:
                holder = self.find(code, old)
                if holder is not None and holder.id == record.id:
                    self.overlay[(code, old)] = None
            if new:
                self.overlay[(code, new)] = record.id
        self.touched[record.id] = record

    def commit(self) -> None:
        for upload, download in self.attached.items():  # guess: a temporary key attaches once
            self.domain.files[download] = dataclasses.replace(
                self.domain.uploads.pop(upload), app=self.app.app_id
            )
        self.records.update(self.touched)
        for (code, value), record_id in self.overlay.items():
            if record_id is None:
                self.index[code].pop(value, None)
            else:
                self.index[code][value] = record_id
        self.domain._next_record_id[self.app.app_id] = self.next_id


# --- values ---------------------------------------------------------------------------------


def _blank(app: App) -> dict[str, Any]:
    return {code: _empty(spec) for code, spec in app.fields.items()}


def _empty(spec: Field) -> Any:
    return [] if spec.type in LIST_TYPES or spec.type in ("SUBTABLE", "FILE") else ""


def _number(value: Any) -> str | None:
    """kintone's normalised number text ("1.5e1" → "15"), "" for empty, None if not a number."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _scalar(spec: Field, value: Any) -> str | None:
    """The stored text of a scalar field, or None when kintone would refuse the value."""
    if spec.type == "NUMBER":
        return _number(value)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    if not text:
        return ""
    if spec.type == "DATETIME":
        if not _DATETIME.fullmatch(text):
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if spec.type == "DATE" and not _DATE.fullmatch(text):
        return None
    if spec.type == "TIME" and not _TIME.fullmatch(text):
        return None
    return text


Attach = Callable[[Any, str, dict[str, list[str]]], "list[Any] | None"]


def _parse_record(
    app: App, record: Any, where: str, errors: dict[str, list[str]], attach: Attach
) -> dict[str, Any]:
    """The request's known fields as stored values; refusals go to ``errors`` in kintone's
    key shape (``record.code.value``, ``record[code].value`` for numbers, rows by index)."""
    if record is None:
        return {}
    if not isinstance(record, Mapping):
        errors.setdefault(where, []).append(MSG_FORMAT)
        return {}
    parsed: dict[str, Any] = {}
    for code, cell in record.items():
        spec = app.fields.get(code)
        if spec is None:
            continue  # kintone ignores field codes the app does not have
        value = cell.get("value") if isinstance(cell, Mapping) else None
        if not isinstance(cell, Mapping):
            errors.setdefault(f"{where}.{code}.value", []).append(MSG_FORMAT)
        elif spec.type == "SUBTABLE":
            parsed[code] = _parse_rows(spec, value, f"{where}.{code}", errors, attach)
        elif spec.type == "FILE":
            files = attach(value, f"{where}.{code}", errors)
            if files is not None:
                parsed[code] = files
        elif spec.type in LIST_TYPES:
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors.setdefault(f"{where}.{code}.values", []).append(MSG_FORMAT)
            else:
                parsed[code] = list(value)
        elif spec.type in SCALAR_TYPES:
            text = _scalar(spec, value)
            if text is not None:
                parsed[code] = text
            elif spec.type == "NUMBER":
                errors.setdefault(f"{where}[{code}].value", []).append(MSG_NUMBER)
            else:
                message = MSG_DATETIME if spec.type == "DATETIME" else MSG_FORMAT
                errors.setdefault(f"{where}.{code}.value", []).append(message)
        # Other types (calculated, system fields, …) cannot be written: left as they are.
    return parsed


def _parse_rows(
    spec: Field, rows: Any, where: str, errors: dict[str, list[str]], attach: Attach
) -> list[tuple[str | None, dict[str, Any]]]:
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        errors.setdefault(f"{where}.value", []).append(MSG_FORMAT)
        return []
    parsed: list[tuple[str | None, dict[str, Any]]] = []
    for index, row in enumerate(rows):
        at = f"{where}.value[{index}].value"
        if not isinstance(row, Mapping) or not isinstance(row.get("value", {}), Mapping):
            errors.setdefault(f"{where}.value[{index}]", []).append(MSG_FORMAT)
            continue
        row_id = row.get("id")
        values: dict[str, Any] = {}
        for code, cell in (row.get("value") or {}).items():
            inner = spec.fields.get(code)
            if inner is None:
                continue
            value = cell.get("value") if isinstance(cell, Mapping) else None
            if inner.type == "NUMBER":
                # Inside a table kintone stores a non-number as "" instead of refusing it.
                values[code] = _number(value) or ""
            elif inner.type in LIST_TYPES:
                values[code] = list(value) if isinstance(value, list) else []
            elif inner.type == "FILE":
                files = attach(value, f"{at}.{code}", errors)
                if files is not None:
                    values[code] = files
            else:
                text = _scalar(inner, value)
                if text is None:
                    message = MSG_DATETIME if inner.type == "DATETIME" else MSG_FORMAT
                    errors.setdefault(f"{at}.{code}.value", []).append(message)
                else:
                    values[code] = text
        parsed.append((None if row_id in (None, "") else str(row_id), values))
    return parsed


def _apply(
    app: App, record: StoredRecord, parsed: Mapping[str, Any], new_row_id: Callable[[], str]
) -> None:
    """Write parsed values into the record, with kintone's SUBTABLE replacement semantics."""
    for code, value in parsed.items():
        if app.fields[code].type != "SUBTABLE":
            record.values[code] = value
            continue
        old = {row["id"]: row for row in record.values.get(code) or []}
        rows = []
        for row_id, values in value:
            if row_id is not None and row_id in old:
                merged = dict(old[row_id]["value"])
                merged.update(values)  # inner fields not sent keep their values
                rows.append({"id": row_id, "value": merged})
            else:  # no id, or an id kintone does not know: a new row with a new id
                blank = {c: _empty(f) for c, f in app.fields[code].fields.items()}
                rows.append({"id": new_row_id(), "value": {**blank, **values}})
        record.values[code] = rows  # existing rows left out are deleted


def _check_required(
    app: App, record: StoredRecord, where: str, errors: dict[str, list[str]]
) -> None:
    for code, spec in app.fields.items():
        if spec.required and spec.type != "SUBTABLE" and not record.values.get(code):
            suffix = ".values" if spec.type in LIST_TYPES else ".value"
            errors.setdefault(f"{where}.{code}{suffix}", []).append(MSG_REQUIRED)


def _render(app: App, record: StoredRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code, spec in app.fields.items():
        value = record.values.get(code, _empty(spec))
        if spec.type == "SUBTABLE":
            value = [
                {
                    "id": row["id"],
                    "value": {
                        inner_code: {
                            "type": inner.type,
                            "value": copy.deepcopy(row["value"].get(inner_code, _empty(inner))),
                        }
                        for inner_code, inner in spec.fields.items()
                    },
                }
                for row in value
            ]
        out[code] = {"type": spec.type, "value": copy.deepcopy(value)}
    out["$id"] = {"type": "__ID__", "value": str(record.id)}
    out["$revision"] = {"type": "__REVISION__", "value": str(record.revision)}
    return out


def _property(code: str, spec: Field) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": spec.type, "code": code, "label": spec.label or code}
    prop["noLabel"] = False
    if spec.type == "SUBTABLE":
        prop["fields"] = {c: _property(c, f) for c, f in spec.fields.items()}
        return prop
    prop["required"] = spec.required
    if spec.type in UNIQUE_TYPES:
        prop["unique"] = spec.unique
    prop["defaultValue"] = [] if spec.type in LIST_TYPES else ""
    return prop


# --- HTTP -----------------------------------------------------------------------------------


def _error_response(reject: _RejectError) -> web.Response:
    body: dict[str, Any] = {
        "code": reject.code,
        "id": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(20)),
        "message": reject.message,
    }
    if reject.errors:
        body["errors"] = reject.errors
    response = web.Response(
        status=reject.status, body=orjson.dumps(body), content_type="application/json"
    )
    response[CODE_KEY] = reject.code
    return response


def _fault_response(fault: _Fault) -> web.Response:
    reasons = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
    response = web.Response(status=fault.status, text=reasons.get(fault.status, "Error"))
    if fault.retry_after is not None:
        response.headers["Retry-After"] = f"{fault.retry_after:g}"
    return response


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise _RejectError(400, "CB_IJ01", "Invalid JSON string.") from None
    if not isinstance(data, dict):
        raise _RejectError(400, "CB_IJ01", "Invalid JSON string.")
    return data


def _positive_int(value: Any, name: str) -> int:
    return _whole_number(value, name, minimum=1)


def _whole_number(value: Any, name: str, *, minimum: int, default: int | None = None) -> int:
    """A parameter that is a whole number of at least ``minimum``; ``default`` when absent
    (None: the parameter is required)."""
    if value is None or value == "":
        if default is None:
            raise _invalid({name: [MSG_REQUIRED_PARAM]})
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise _invalid({name: ["must be an integer"]}) from None
    if number < minimum:
        raise _invalid({name: [f"must be greater than or equal to {minimum}"]})
    return number


def _revision(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        raise _invalid({"revision": ["must be an integer"]}) from None


def _peek_app(request: web.Request, raw: bytes) -> int | None:
    value: Any = request.query.get("app")
    if value is None and raw:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        value = data.get("app") if isinstance(data, dict) else None
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def init_app(domain: KintoneDomain) -> web.Application:
    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log and count every request; enforce the concurrency limit; add latency/faults."""
        raw = await request.read()
        tokens = tuple(
            t.strip() for t in request.headers.get("X-Cybozu-API-Token", "").split(",") if t
        )
        response: web.StreamResponse | None = None
        status = 500
        try:
            if domain.in_flight >= domain.concurrency_limit:
                response = _fault_response(_Fault(429))
                return response
            domain.in_flight += 1
            domain.max_in_flight = max(domain.max_in_flight, domain.in_flight)
            try:
                if domain.latency_s:
                    await asyncio.sleep(domain.latency_s)
                fault = domain._fault(request.path)
                if fault is not None and not fault.after_apply:
                    await asyncio.sleep(fault.hold_s)
                    response = _fault_response(fault)
                    return response
                try:
                    response = await handler(request)
                except _RejectError as reject:
                    response = _error_response(reject)
                except web.HTTPException as exc:  # no such API or method: aiohttp's answer
                    status = exc.status
                    raise
                if fault is not None:
                    await asyncio.sleep(fault.hold_s)
                    response = _fault_response(fault)  # done, but the answer is lost
                return response
            finally:
                domain.in_flight -= 1
        finally:
            status = response.status if response is not None else status
            code = response.get(CODE_KEY) if response is not None else None
            domain.requests.append(
                LoggedRequest(
                    request.method, request.path, _peek_app(request, raw), status, code, tokens
                )
            )

    async def get_record(request: web.Request) -> web.Response:
        app_id = _positive_int(request.query.get("app"), "app")
        app = domain.authorize(request, app_id, "view")
        record_id = _positive_int(request.query.get("id"), "id")
        record = domain._records[app.app_id].get(record_id)
        if record is None:
            raise _RejectError(
                404, "GAIA_RE01", f"The specified record (ID: {record_id}) is not found."
            )
        return _json({"record": _render(app, record)})

    async def post_record(request: web.Request) -> web.Response:
        body = await _body(request)
        app = domain.authorize(request, _positive_int(body.get("app"), "app"), "add")
        [result] = domain._write(app, [_Item(record=body.get("record") or {}, insert=True)])
        return _json({"id": str(result["id"]), "revision": str(result["revision"])})

    async def put_record(request: web.Request) -> web.Response:
        body = await _body(request)
        app = domain.authorize(request, _positive_int(body.get("app"), "app"), "edit")
        item = _update_item(app, body, "", upsert=False)
        [result] = domain._write(app, [item])
        return _json({"revision": str(result["revision"])})

    async def put_records(request: web.Request) -> web.Response:
        body = await _body(request)
        app_id = _positive_int(body.get("app"), "app")
        upsert = body.get("upsert") is True
        app = domain.authorize(request, app_id, "edit", *(("add",) if upsert else ()))
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise _invalid({"records": [MSG_REQUIRED_PARAM]})
        if len(records) > MAX_RECORDS_PER_REQUEST:
            raise _invalid({"records": [MSG_TOO_MANY]})
        items = [
            _update_item(app, item, f"records[{i}].", upsert=upsert)
            for i, item in enumerate(records)
        ]
        results = domain._write(app, items, prefix="records")
        out = []
        for result in results:
            row = {"id": str(result["id"]), "revision": str(result["revision"])}
            if upsert:
                row["operation"] = result["operation"]
            out.append(row)
        return _json({"records": out})

    async def post_records(request: web.Request) -> web.Response:
        body = await _body(request)
        app = domain.authorize(request, _positive_int(body.get("app"), "app"), "add")
        records = body.get("records")
        if not isinstance(records, list) or not records:
            raise _invalid({"records": [MSG_REQUIRED_PARAM]})
        if len(records) > MAX_RECORDS_PER_REQUEST:
            raise _invalid({"records": [MSG_TOO_MANY_ADD]})
        items = [_Item(record=r or {}, insert=True) for r in records]
        results = domain._write(app, items, prefix="records")
        return _json(
            {
                "ids": [str(r["id"]) for r in results],
                "revisions": [str(r["revision"]) for r in results],
            }
        )

    async def get_records(request: web.Request) -> web.Response:
        """GET records.json: ``app``, ``query``, ``fields[0..99]``, ``totalCount`` as URL query
        parameters (cybozu.dev, 複数のレコードを取得する)."""
        app = domain.authorize(request, _positive_int(request.query.get("app"), "app"), "view")
        wanted = _fields_param(request.query)
        try:
            query = kintone_query.parse_query(request.query.get("query", ""), _query_fields(app))
        except kintone_query.QueryError as exc:
            errors = {"query": {"messages": [exc.message]}} if exc.code == "CB_VA01" else None
            raise _RejectError(exc.status, exc.code, exc.message, errors) from None
        stored = domain._records[app.app_id]
        ids, total = query.run([(rid, record.values) for rid, record in stored.items()])
        records = [_only(_render(app, stored[rid]), wanted) for rid in ids]
        count = str(total) if request.query.get("totalCount", "").lower() == "true" else None
        return _json({"records": records, "totalCount": count})

    async def get_form_fields(request: web.Request) -> web.Response:
        app = domain.authorize(request, _positive_int(request.query.get("app"), "app"), "view")
        properties = {code: _property(code, spec) for code, spec in app.fields.items()}
        return _json({"properties": properties, "revision": str(app.revision)})

    async def upload_file(request: web.Request) -> web.Response:
        """POST file.json: multipart, the part named ``file`` with its filename; no permission
        needed, only a token kintone knows (cybozu.dev "ファイルをアップロードする")."""
        domain.authenticate(request)
        upload = _multipart_file(request.headers.get("Content-Type", ""), await request.read())
        if upload is None:  # guess: kintone's answer to a request without the part
            raise _invalid({"file": [MSG_REQUIRED_PARAM]})
        file_key = str(uuid.uuid4())
        domain.uploads[file_key] = upload
        return _json({"fileKey": file_key})

    async def download_file(request: web.Request) -> web.StreamResponse:
        """GET file.json?fileKey=: a file attached to a record, with view permission on its
        app (cybozu.dev "ファイルをダウンロードする")."""
        file_key = request.query.get("fileKey", "")
        stored = domain.files.get(file_key)
        if stored is None or stored.app is None:  # guess: as an unknown key on attaching
            domain.authenticate(request)
            raise _RejectError(404, "GAIA_BL01", f"The specified file (id: {file_key}) not found.")
        domain.authorize(request, stored.app, "view")
        return web.Response(body=stored.data, content_type=stored.content_type)

    def _stored_record(app: App, record_id: int) -> None:
        if record_id not in domain._records[app.app_id]:
            raise _RejectError(
                404, "GAIA_RE01", f"The specified record (ID: {record_id}) is not found."
            )

    async def post_comment(request: web.Request) -> web.Response:
        """POST record/comment.json: needs only the view permission (cybozu.dev)."""
        body = await _body(request)
        app = domain.authorize(request, _positive_int(body.get("app"), "app"), "view")
        record_id = _positive_int(body.get("record"), "record")
        comment = body.get("comment")
        if not isinstance(comment, Mapping):
            raise _invalid({"comment": [MSG_REQUIRED_PARAM]})
        text = comment.get("text")
        if not isinstance(text, str) or not text:
            raise _invalid({"comment.text": [MSG_REQUIRED_PARAM]})
        if len(text) > MAX_COMMENT_CHARS:
            raise _invalid({"comment.text": [MSG_TEXT_TOO_LONG]})
        _stored_record(app, record_id)
        comment_id = domain._add_comment(app, record_id, text, comment.get("mentions"))
        return _json({"id": str(comment_id)})

    async def get_comments(request: web.Request) -> web.Response:
        """GET record/comments.json, parameters in the URL's query."""
        query = request.query
        app = domain.authorize(request, _positive_int(query.get("app"), "app"), "view")
        record_id = _positive_int(query.get("record"), "record")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _invalid({"order": [MSG_FORMAT]})
        offset = _whole_number(query.get("offset"), "offset", minimum=0, default=0)
        limit = _whole_number(query.get("limit"), "limit", minimum=0, default=MAX_COMMENTS_PER_READ)
        if limit > MAX_COMMENTS_PER_READ:
            raise _invalid({"limit": [MSG_LIMIT]})
        _stored_record(app, record_id)
        stored = domain._comments.get((app.app_id, record_id), [])
        ordered = stored if order == "asc" else stored[::-1]
        page = ordered[offset : offset + limit]
        before, after = offset > 0 and bool(stored), offset + len(page) < len(stored)
        # "older"/"newer": comments with lower/higher ids than the ones returned.
        older, newer = (before, after) if order == "asc" else (after, before)
        return _json({"comments": [_comment(c) for c in page], "older": older, "newer": newer})

    web_app = web.Application(middlewares=[gate], client_max_size=MAX_UPLOAD_BYTES)
    for prefix in ("/k/v1", r"/k/guest/{space:\d+}/v1"):
        web_app.router.add_post(f"{prefix}/file.json", upload_file)
        web_app.router.add_get(f"{prefix}/file.json", download_file)
        web_app.router.add_get(f"{prefix}/record.json", get_record)
        web_app.router.add_post(f"{prefix}/record.json", post_record)
        web_app.router.add_put(f"{prefix}/record.json", put_record)
        web_app.router.add_post(f"{prefix}/records.json", post_records)
        web_app.router.add_get(f"{prefix}/records.json", get_records)
        web_app.router.add_put(f"{prefix}/records.json", put_records)
        web_app.router.add_get(f"{prefix}/app/form/fields.json", get_form_fields)
        web_app.router.add_post(f"{prefix}/record/comment.json", post_comment)
        web_app.router.add_get(f"{prefix}/record/comments.json", get_comments)
    return web_app


def _multipart_file(content_type: str, body: bytes) -> StoredFile | None:
    """The part named ``file`` of a multipart/form-data body, with its filename, or None."""
    if not content_type.startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") != "file":
            continue
        name = part.get_filename()
        payload = part.get_payload(decode=True)
        if not name or not isinstance(payload, bytes):
            return None
        return StoredFile(name, part.get_content_type(), payload)
    return None


def _comment(comment: StoredComment) -> dict[str, Any]:
    return {
        "id": str(comment.id),
        "text": comment.text,
        "createdAt": comment.created_at,
        "creator": dict(API_TOKEN_USER),
        "mentions": [{"code": code, "type": kind} for code, kind in comment.mentions],
    }


_FIELDS_PARAM = re.compile(r"fields\[([0-9]{1,2})\]")


def _fields_param(query: Mapping[str, str]) -> list[str] | None:
    """``fields[0]``…``fields[99]`` in index order; None when absent (every field)."""
    indexed = []
    for key, value in query.items():
        match = _FIELDS_PARAM.fullmatch(key)
        if match:
            indexed.append((int(match.group(1)), value))
    return [value for _, value in sorted(indexed)] if indexed else None


def _only(record: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
    if wanted is None:
        return record
    return {code: cell for code, cell in record.items() if code in wanted}


def _query_fields(app: App) -> dict[str, kintone_query.Field]:
    fields: dict[str, kintone_query.Field] = {}
    for code, spec in app.fields.items():
        if spec.type == "SUBTABLE":
            for inner_code, inner in spec.fields.items():
                fields[inner_code] = kintone_query.Field(inner.type, table=code)
        else:
            fields[code] = kintone_query.Field(spec.type)
    return fields


def _update_item(app: App, body: Mapping[str, Any], where: str, *, upsert: bool) -> _Item:
    """An update by ``id`` or ``updateKey`` (exactly one), with its optional ``revision``."""
    if not isinstance(body, Mapping):
        raise _invalid({where.rstrip(".") or "records": [MSG_FORMAT]})
    has_id = body.get("id") not in (None, "")
    update_key = body.get("updateKey")
    if has_id == (update_key is not None):
        raise _invalid({f"{where}id": ["Specify either id or updateKey."]})
    revision = _revision(body.get("revision"))
    record = body.get("record") or {}
    if has_id:
        return _Item(
            record=record,
            record_id=_positive_int(body.get("id"), f"{where}id"),
            revision=revision,
            insert=upsert,
        )
    if not isinstance(update_key, Mapping):
        raise _invalid({f"{where}updateKey": [MSG_FORMAT]})
    code = str(update_key.get("field") or "")
    spec = app.fields.get(code)
    if spec is None or spec.type not in UPDATE_KEY_TYPES or not spec.unique:
        # kintone accepts only a SINGLE_LINE_TEXT or NUMBER field that prohibits duplicates.
        raise _invalid(
            {f"{where}updateKey.field": ["Specify a field that prohibits duplicate values."]}
        )
    key = _scalar(spec, update_key.get("value"))
    if not key:
        raise _invalid({f"{where}updateKey.value": [MSG_REQUIRED_PARAM]})
    if isinstance(record, Mapping) and code in record:
        sent = record[code].get("value") if isinstance(record[code], Mapping) else None
        if _scalar(spec, sent) != key:
            raise _invalid({f"{where}record.{code}.value": ["Differs from updateKey.value."]})
    return _Item(record=record, key=(code, key), revision=revision, insert=upsert)


# --- serving --------------------------------------------------------------------------------


class KintoneStandin(LocalServer):
    """Serve a ``KintoneDomain`` on 127.0.0.1 on a free port, for tests and benchmarks."""

    def __init__(self, domain: KintoneDomain | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.domain = domain or KintoneDomain()

    def make_app(self) -> web.Application:
        return init_app(self.domain)


# --- the apps calltrail writes to, with its default field codes ---------------------------

#: The call history columns (docs/kintone.md, "The app's fields"), default field codes.
CALL_HISTORY_FIELDS: Mapping[str, Field] = {
    "通話日時": Field("DATETIME"),
    "通話番号": Field("SINGLE_LINE_TEXT"),
    "発着信": Field("DROP_DOWN"),
    "通話結果": Field("SINGLE_LINE_TEXT"),
    "通話時間": Field("NUMBER"),
    "通話料金": Field("NUMBER"),
    "担当者": Field("SINGLE_LINE_TEXT"),
    "CallSid": Field("SINGLE_LINE_TEXT"),
}


#: The conversation's columns (docs/kintone.md, "The conversation on the record").
CONVERSATION_FIELDS: Mapping[str, Field] = {
    "通話内容": Field("MULTI_LINE_TEXT"),
    "録音": Field("FILE"),
}


def add_customer_app(
    domain: KintoneDomain, app_id: int, token: str, records: int = 0, *, conversation: bool = False
) -> None:
    """A customer app set up for subtable mode, an API token (view, edit), some customers.
    ``conversation``: the history table also has the transcript and recording columns."""
    columns = {**CALL_HISTORY_FIELDS, **(CONVERSATION_FIELDS if conversation else {})}
    domain.add_app(
        app_id,
        {
            "顧客名": Field("SINGLE_LINE_TEXT"),
            "電話番号": Field("SINGLE_LINE_TEXT"),
            "LINEユーザーID": Field("SINGLE_LINE_TEXT"),
            "通話履歴": Field("SUBTABLE", fields=columns),
        },
    )
    domain.add_token(token, app_id, view=True, edit=True)
    for i in range(records):
        domain.add_record(app_id, {"顧客名": {"value": f"顧客{i + 1}"}})


def add_call_log_app(
    domain: KintoneDomain, app_id: int, token: str, *, conversation: bool = False
) -> None:
    """A call-log app set up for app mode (unique CallSid), an API token (view, add, edit).
    ``conversation``: with the transcript and recording fields."""
    domain.add_app(
        app_id,
        {
            **CALL_HISTORY_FIELDS,
            **(CONVERSATION_FIELDS if conversation else {}),
            "CallSid": Field("SINGLE_LINE_TEXT", unique=True),
            "顧客レコード番号": Field("NUMBER"),
        },
    )
    domain.add_token(token, app_id, view=True, add=True, edit=True)


# --- the dev domain ``calltrail dev`` serves ---------------------------------------------

DEV_CUSTOMER_APP = 12  # the app_id of ``calltrail simulate``'s outbound calls
DEV_CUSTOMER_RECORDS = 400  # their record ids are 1..400
DEV_TOKEN = "dev-kintone-token-placeholder"  # noqa: S105 - a placeholder, not a secret
#: The users and groups comments may mention, as (kind, code); MISSED_CALL_NOTIFY names some.
DEV_ENTITIES = (("USER", "sato"), ("USER", "suzuki"), ("GROUP", "sales"))
DEV_MISSED_CALL_NOTIFY = "sato,GROUP:sales"


def seed_dev_domain(domain: KintoneDomain | None = None) -> KintoneDomain:
    """The dev kintone: the customer app simulated calls use, set up for subtable mode with
    calltrail's default field codes (the conversation's columns too) and a token (view, edit);
    its first records are
    ``DEV_CUSTOMERS`` with their numbers as typed (and some LINE user ids), the rest nameless
    customers that outbound calls land on; the users and groups of ``DEV_ENTITIES``."""
    domain = domain or KintoneDomain()
    add_customer_app(
        domain, DEV_CUSTOMER_APP, DEV_TOKEN, records=DEV_CUSTOMER_RECORDS, conversation=True
    )
    for record_id, customer in enumerate(DEV_CUSTOMERS, start=1):
        cells = {"顧客名": {"value": customer.name}, "電話番号": {"value": customer.phone}}
        if customer.line_user_id:
            cells["LINEユーザーID"] = {"value": customer.line_user_id}
        domain.edit_record(DEV_CUSTOMER_APP, record_id, cells)
    for kind, code in DEV_ENTITIES:
        domain.add_entity(code, kind)
    return domain


def main(argv: list[str] | None = None) -> None:
    """Serve the dev domain until SIGINT/SIGTERM (``calltrail dev`` starts this)."""
    serve_until_stopped(
        "the kintone stand-in, dev domain", lambda: init_app(seed_dev_domain()), argv
    )


if __name__ == "__main__":
    main()
