"""kintone, played for the plugin's browser tests: pages, the JavaScript API's server side, and
the plugin proxy's relay.

What kintone keeps on its servers stays here, server side: the plugin's config and its proxy
config (the ``X-Calltrail-Key``). ``kintone.plugin.app.proxy`` reaches :meth:`_proxy`, which, as
kintone's server does, adds the stored headers to the plugin's request and forwards it to the
token URL (the real gateway in the tests). The pages load the plugin's files from the signed zip
``make plugin`` builds, so the tests run what ships; ``js/twilio.min.js`` is swapped for the
Voice SDK stand-in unless a tenant asks for the real SDK.

The records API (``GET /k/v1/records.json``) answers from the tenant's records with kintone's
query language as the kintone stand-in plays it (services/devtools/kintone_query.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import json
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from services.devtools import kintone_query

HERE = Path(__file__).parent
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}
# Headers kintone's proxy does not pass on from the browser's request or the answer.
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


def plugin_id_of(pubkey: bytes) -> str:
    """The plugin id as Cybozu's packer derives it: sha256 of PUBKEY, 32 hex digits as a–p."""
    return "".join("abcdefghijklmnop"[int(c, 16)] for c in hashlib.sha256(pubkey).hexdigest()[:32])


def plugin_files(zip_path: Path) -> dict[str, bytes]:
    """The files inside the plugin zip's contents.zip."""
    with zipfile.ZipFile(zip_path) as outer:
        inner = outer.read("contents.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as contents:
        return {name: contents.read(name) for name in contents.namelist()}


def default_fields() -> dict[str, dict[str, Any]]:
    fields = [
        ("company", "SINGLE_LINE_TEXT", "会社名"),
        ("phone", "SINGLE_LINE_TEXT", "電話番号"),
        ("contact", "SINGLE_LINE_TEXT", "担当者"),
        ("website", "LINK", "Web サイト"),
        ("employees", "NUMBER", "従業員数"),
        ("memo", "MULTI_LINE_TEXT", "メモ"),
        ("record_no", "RECORD_NUMBER", "レコード番号"),
        ("line_user_id", "SINGLE_LINE_TEXT", "LINEユーザーID"),
    ]
    return {code: {"type": t, "code": code, "label": label} for code, t, label in fields}


def default_layout() -> list[dict[str, Any]]:
    return [
        {"type": "ROW", "fields": [{"type": "SINGLE_LINE_TEXT", "code": "company"}]},
        {
            "type": "ROW",
            "fields": [
                {"type": "SINGLE_LINE_TEXT", "code": "phone"},
                {"type": "SINGLE_LINE_TEXT", "code": "contact"},
            ],
        },
        {"type": "ROW", "fields": [{"type": "SPACER", "elementId": "calltrail_button"}]},
        {"type": "ROW", "fields": [{"type": "LINK", "code": "website"}, {"type": "SPACER"}]},
        {"type": "ROW", "fields": [{"type": "MULTI_LINE_TEXT", "code": "memo"}]},
        {
            "type": "GROUP",
            "code": "details",
            "layout": [{"type": "ROW", "fields": [{"type": "SPACER", "elementId": "side"}]}],
        },
    ]


def make_record(
    record_id: int, company: str, phone: str, contact: str, line_user_id: str = ""
) -> dict[str, Any]:
    return {
        "$id": {"type": "__ID__", "value": str(record_id)},
        "record_no": {"type": "RECORD_NUMBER", "value": str(record_id)},
        "company": {"type": "SINGLE_LINE_TEXT", "value": company},
        "phone": {"type": "SINGLE_LINE_TEXT", "value": phone},
        "contact": {"type": "SINGLE_LINE_TEXT", "value": contact},
        "website": {"type": "LINK", "value": "https://example.co.jp"},
        "employees": {"type": "NUMBER", "value": "42"},
        "memo": {"type": "MULTI_LINE_TEXT", "value": ""},
        "line_user_id": {"type": "SINGLE_LINE_TEXT", "value": line_user_id},
    }


def default_records() -> list[dict[str, Any]]:
    return [
        make_record(101, "株式会社サンプル商事", "03-1234-5678", "山田 太郎"),
        make_record(102, "有限会社みなと製作所", "090-1111-2222", "鈴木 一郎"),
        make_record(103, "合同会社番号なし", "", "田中 次郎"),
    ]


@dataclass
class Tenant:
    """One kintone environment of one test: an app, its records, the plugin's stored settings."""

    id: str
    plugin_id: str
    config: dict[str, str] = field(default_factory=dict)
    user: dict[str, str] = field(
        default_factory=lambda: {
            "id": "7",
            "code": "sato",
            "name": "佐藤 花子",
            "email": "sato@example.com",
            "language": "ja",
        }
    )
    app_id: int = 12
    app_name: str = "顧客リスト"
    fields: dict[str, dict[str, Any]] = field(default_factory=default_fields)
    layout: list[dict[str, Any]] = field(default_factory=default_layout)
    records: list[dict[str, Any]] = field(default_factory=default_records)
    record_index: int = 0
    real_sdk: bool = False
    sdk_supported: bool = True  # the stand-in's Twilio.Device.isSupported
    proxy_delay_s: float = 0.0
    # Set: token requests wait at kintone's relay until the test sets it (a slow token).
    proxy_gate: threading.Event | None = None
    # kintone's server side
    proxy_config: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    proxy_log: list[dict[str, Any]] = field(default_factory=list)
    config_writes: list[dict[str, str]] = field(default_factory=list)
    # GET /k/v1/records.json requests (their params), and how the next ones answer
    records_queries: list[dict[str, Any]] = field(default_factory=list)
    records_status: int = 200
    # The app's record title (GET /k/v1/app/settings.json → titleField); None: a kintone that
    # does not say (the field was added to the API in July 2024), so the plugin reads the layout.
    title_field: dict[str, str] | None = field(
        default_factory=lambda: {"selectionMode": "MANUAL", "code": "company"}
    )
    # Every REST request the page made: (method, path), for counting.
    rest_log: list[tuple[str, str]] = field(default_factory=list)
    proxy_config_writes: list[dict[str, Any]] = field(default_factory=list)

    def set_proxy_config(self, url: str, method: str, headers: dict[str, str]) -> None:
        self.proxy_config[(url, method)] = {"headers": dict(headers), "data": {}}

    def tokens_requested(self) -> int:
        return len(self.proxy_log)


class KintoneHarness:
    """The harness server, on its own thread and event loop, for sync Playwright tests."""

    def __init__(self, zip_path: Path, required_params: list[str], port: int = 0) -> None:
        self.port = port
        self.files = plugin_files(zip_path)
        self.manifest = json.loads(self.files["manifest.json"])
        self.required_params = required_params
        self.tenants: dict[str, Tenant] = {}
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> KintoneHarness:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        app = web.Application()
        r = app.router
        r.add_get("/harness/{name}", self._harness_file)
        r.add_get("/t/{tid}/record", self._record_page)
        r.add_get("/t/{tid}/mobile", self._record_page)
        r.add_get("/t/{tid}/index", self._record_page)
        r.add_get("/t/{tid}/mobile-index", self._record_page)
        r.add_get("/t/{tid}/config", self._config_page)
        r.add_get("/t/{tid}/plugins", self._plugin_list)
        r.add_get("/t/{tid}/state.js", self._state_js)
        r.add_get("/t/{tid}/plugin/{path:.+}", self._plugin_file)
        r.add_get("/t/{tid}/api/config", self._get_config)
        r.add_post("/t/{tid}/api/config", self._set_config)
        r.add_get("/t/{tid}/api/proxy-config", self._get_proxy_config)
        r.add_post("/t/{tid}/api/proxy-config", self._set_proxy_config)
        r.add_post("/t/{tid}/api/proxy", self._proxy)
        r.add_route("*", "/t/{tid}/api/rest/{path:.+}", self._rest)
        r.add_post("/upstream/status/{code}/token", self._upstream_status)
        r.add_post("/upstream/html/token", self._upstream_html)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._client:
            await self._client.close()
        if self._runner:
            await self._runner.cleanup()

    # --- tenants -------------------------------------------------------------------------
    def new_tenant(self, plugin_id: str, tenant_id: str | None = None, **kwargs: Any) -> Tenant:
        tenant = Tenant(id=tenant_id or uuid.uuid4().hex[:12], plugin_id=plugin_id, **kwargs)
        self.tenants[tenant.id] = tenant
        return tenant

    def url(self, tenant: Tenant, page: str = "record") -> str:
        return f"{self.base_url}/t/{tenant.id}/{page}"

    def upstream(self, what: str) -> str:
        """A token URL that answers badly: 'status/429', 'status/503', 'html'."""
        return f"{self.base_url}/upstream/{what}/token"

    def _tenant(self, request: web.Request) -> Tenant:
        tenant = self.tenants.get(request.match_info["tid"])
        if tenant is None:
            raise web.HTTPNotFound()
        return tenant

    # --- pages ---------------------------------------------------------------------------
    async def _harness_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in {"kintone.js", "twilio_standin.js"}:
            raise web.HTTPNotFound()
        return web.Response(body=(HERE / name).read_bytes(), content_type="text/javascript")

    async def _plugin_file(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        path = request.match_info["path"]
        if path == "js/twilio.min.js" and not tenant.real_sdk:
            body = (HERE / "twilio_standin.js").read_bytes()
        elif path in self.files:
            body = self.files[path]
        else:
            raise web.HTTPNotFound()
        content_type = CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _state_js(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        page = request.query.get("page", "record")
        state = {
            "tenant": tenant.id,
            "page": page,
            "mobile": page.startswith("mobile"),
            "pluginId": tenant.plugin_id,
            "appId": tenant.app_id,
            "appName": tenant.app_name,
            "user": tenant.user,
            "fields": tenant.fields,
            "layout": tenant.layout,
            "records": tenant.records,
            "recordIndex": tenant.record_index,
            "requiredParams": self.required_params,
            "twilioSupported": tenant.sdk_supported,
        }
        body = f"window.__KINTONE_STATE__ = {json.dumps(state, ensure_ascii=False)};"
        return web.Response(text=body, content_type="text/javascript")

    def _scripts(self, tenant: Tenant, page: str, plugin_js: list[str]) -> str:
        tags = [
            f'<script src="/t/{tenant.id}/state.js?page={page}"></script>',
            '<script src="/harness/kintone.js"></script>',
        ]
        tags += [f'<script src="/t/{tenant.id}/plugin/{js}"></script>' for js in plugin_js]
        return "\n".join(tags)

    def _css(self, tenant: Tenant, css: list[str]) -> str:
        return "\n".join(f'<link rel="stylesheet" href="/t/{tenant.id}/plugin/{c}">' for c in css)

    async def _record_page(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        page = request.path.rsplit("/", 1)[1]
        mobile = page.startswith("mobile")
        part = self.manifest["mobile" if mobile else "desktop"]
        body = RECORD_PAGE.format(
            lang=html.escape(tenant.user["language"]),
            title=html.escape(tenant.app_name),
            css=self._css(tenant, part.get("css", [])),
            scripts=self._scripts(tenant, page, part["js"]),
            viewport='<meta name="viewport" content="width=device-width">' if mobile else "",
        )
        return web.Response(text=body, content_type="text/html")

    async def _config_page(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        config = self.manifest["config"]
        body = CONFIG_PAGE.format(
            lang=html.escape(tenant.user["language"]),
            title=html.escape(tenant.app_name),
            css=self._css(tenant, config.get("css", [])),
            config_html=self.files[config["html"]].decode(),
            scripts=self._scripts(tenant, "config", config["js"]),
        )
        return web.Response(text=body, content_type="text/html")

    async def _plugin_list(self, request: web.Request) -> web.Response:
        saved = request.query.get("saved") == "1"
        text = "設定を保存しました。" if saved else ""
        body = f'<!doctype html><meta charset="utf-8"><title>plugins</title><p id=saved>{text}</p>'
        return web.Response(text=body, content_type="text/html")

    # --- kintone's server side -----------------------------------------------------------
    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._tenant(request).config)

    async def _set_config(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        config = await request.json()
        tenant.config = dict(config)
        tenant.config_writes.append(dict(config))
        return web.json_response({})

    async def _get_proxy_config(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        key = (request.query["url"], request.query["method"])
        return web.json_response(tenant.proxy_config.get(key))

    async def _set_proxy_config(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        body = await request.json()
        headers = {str(k): str(v) for k, v in (body.get("headers") or {}).items()}
        tenant.proxy_config[(body["url"], body["method"])] = {
            "headers": headers,
            "data": body.get("data") or {},
        }
        tenant.proxy_config_writes.append({"url": body["url"], "headers": sorted(headers)})
        return web.json_response({})

    async def _proxy(self, request: web.Request) -> web.Response:
        """kintone.plugin.app.proxy: add the stored headers and data, forward, relay the answer."""
        tenant = self._tenant(request)
        body = await request.json()
        if body["pluginId"] != tenant.plugin_id:
            return web.json_response({"failed": True, "body": '{"code":"GAIA_PL18"}'})
        if tenant.proxy_delay_s:
            await asyncio.sleep(tenant.proxy_delay_s)
        if tenant.proxy_gate is not None:
            await asyncio.to_thread(tenant.proxy_gate.wait, 30)
        url, method = body["url"], body["method"]
        stored = tenant.proxy_config.get((url, method), {"headers": {}, "data": {}})
        headers = {k: v for k, v in body["headers"].items() if k.lower() not in HOP_HEADERS}
        headers.update(stored["headers"])  # the stored ones win (cybozu.dev setProxyConfig)
        data = body["data"]
        payload = json.dumps({**data, **stored["data"]}) if isinstance(data, dict) else str(data)
        assert self._client is not None
        entry: dict[str, Any] = {"url": url, "method": method, "headers": dict(headers)}
        tenant.proxy_log.append(entry)
        try:
            async with self._client.request(
                method, url, headers=headers, data=payload.encode()
            ) as answer:
                text = await answer.text()
                entry["status"] = answer.status
                answer_headers = {
                    k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS
                }
                return web.json_response(
                    {"body": text, "status": answer.status, "headers": answer_headers}
                )
        except aiohttp.ClientError:
            entry["status"] = None
            return web.json_response({"failed": True, "body": '{"code":"GAIA_PR01"}'})

    async def _rest(self, request: web.Request) -> web.Response:
        """The kintone REST API subset the plugin uses (form fields and layout, records)."""
        tenant = self._tenant(request)
        path = "/" + request.match_info["path"]
        method = request.headers.get("X-Harness-Method", request.method)
        params = json.loads(request.query.get("q", "{}")) if method == "GET" else {}
        tenant.rest_log.append((method, path))
        if method == "GET" and str(params.get("app")) != str(tenant.app_id):
            return web.json_response(
                {"code": "GAIA_AP01", "message": "指定したアプリが存在しません。"}, status=404
            )
        if method == "GET" and path in {
            "/k/v1/app/form/fields.json",
            "/k/v1/preview/app/form/fields.json",
        }:
            return web.json_response({"properties": tenant.fields, "revision": "3"})
        if method == "GET" and path in {
            "/k/v1/app/form/layout.json",
            "/k/v1/preview/app/form/layout.json",
        }:
            return web.json_response({"layout": tenant.layout, "revision": "3"})
        if method == "GET" and path == "/k/v1/app/settings.json":
            # cybozu.dev "アプリの一般設定を取得する": name, description, icon, theme, revision,
            # and since July 2024 titleField {selectionMode: AUTO | MANUAL, code}. Guess: with
            # AUTO kintone names the field it picked in `code`; the plugin reads any code given.
            settings: dict[str, Any] = {
                "name": tenant.app_name,
                "description": "",
                "icon": {"type": "PRESET", "key": "APP72"},
                "theme": "WHITE",
                "revision": "3",
            }
            if tenant.title_field is not None:
                settings["titleField"] = tenant.title_field
            return web.json_response(settings)
        if method == "GET" and path == "/k/v1/record.json":
            for record in tenant.records:
                if record["$id"]["value"] == str(params.get("id")):
                    return web.json_response({"record": record})
            return web.json_response({"code": "GAIA_RE01", "message": "no record"}, status=404)
        if method == "GET" and path == "/k/v1/records.json":
            return self._records(tenant, params)
        return web.json_response({"code": "CB_NO02", "message": "not in the harness"}, status=404)

    def _records(self, tenant: Tenant, params: dict[str, Any]) -> web.Response:
        """GET /k/v1/records.json: app, query, fields, totalCount (cybozu.dev "複数のレコードを
        取得する"); the query as the kintone stand-in plays it (services/devtools/kintone_query)."""
        tenant.records_queries.append(dict(params))
        if tenant.records_status != 200:
            body = {"code": "GAIA_TM12", "message": "too many requests"}
            return web.json_response(body, status=tenant.records_status)
        wanted = params.get("fields")
        form = {
            code: kintone_query.Field(prop["type"])
            for code, prop in tenant.fields.items()
            if prop.get("type") != "SUBTABLE"
        }
        try:
            query = kintone_query.parse_query(str(params.get("query", "")), form)
        except kintone_query.QueryError as error:
            body = {"code": error.code, "message": error.message}
            return web.json_response(body, status=error.status)
        by_id = {int(record["$id"]["value"]): record for record in tenant.records}
        ids, total = query.run(
            [
                (rid, {code: cell.get("value") for code, cell in record.items()})
                for rid, record in by_id.items()
            ]
        )
        records = [
            {code: cell for code, cell in by_id[rid].items() if wanted is None or code in wanted}
            for rid in ids
        ]
        count = str(total) if str(params.get("totalCount", "")).lower() == "true" else None
        return web.json_response({"records": records, "totalCount": count})

    # --- token URLs that answer badly ----------------------------------------------------
    async def _upstream_status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": "1"} if code == 429 else {}
        return web.json_response({"error": "nope"}, status=code, headers=headers)

    async def _upstream_html(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>Sign in</title><p>Please sign in", content_type="text/html"
        )


RECORD_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">{viewport}<title>{title}</title>
<style>
body {{ margin: 0; font-family: "Noto Sans JP", sans-serif; background: #f7f9fa; color: #333; }}
.harness-bar {{ display: flex; align-items: center; gap: 8px; padding: 8px 16px;
  background: #fff; border-bottom: 1px solid #e3e7e8; min-height: 48px; }}
.harness-bar h1 {{ font-size: 16px; margin: 0 16px 0 0; }}
#record-header-menu-space {{ flex: 1; }}
#record-gaia {{ margin: 16px; padding: 16px; background: #fff; border: 1px solid #e3e7e8; }}
.harness-row {{ display: flex; gap: 16px; margin-bottom: 12px; }}
.harness-field {{ min-width: 220px; }}
.harness-label {{ font-size: 12px; color: #888; }}
.harness-value {{ font-size: 14px; min-height: 20px; padding: 4px 0; }}
.harness-spacer {{ min-height: 8px; }}
.harness-group {{ border: 1px solid #e3e7e8; }}
</style>
{css}
</head><body>
<div class="harness-bar"><h1 id="record-title"></h1>
<div id="record-header-menu-space"></div><div id="list-header-menu-space"></div>
<button type="button" id="harness-previous" onclick="__harness.previous()">◀</button>
<button type="button" id="harness-next" onclick="__harness.next()">▶</button></div>
<div id="record-gaia"></div>
{scripts}
<script>window.addEventListener("load", () => __harness.boot());</script>
</body></html>
"""

CONFIG_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title} — プラグインの設定</title>
<style>
body {{ margin: 0; font-family: "Noto Sans JP", sans-serif; background: #fff; color: #333; }}
.harness-bar {{ padding: 12px 24px; background: #f7f9fa; border-bottom: 1px solid #e3e7e8; }}
#plugin-config {{ padding: 0 24px; }}
</style>
{css}
</head><body>
<div class="harness-bar">{title} › アプリの設定 › プラグイン › calltrail</div>
<div id="plugin-config">{config_html}</div>
{scripts}
</body></html>
"""
