"""The kintone plugin in a real browser: Debian's Chromium driven by Playwright, kintone played by
the harness (harness/server.py), tokens from the real gateway process, Twilio's SDK played by
harness/twilio_standin.js (one test loads the real SDK)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

from services.devtools.broker import LocalBroker
from tests.e2e.conftest import start_gateway
from tests.plugin.harness.server import KintoneHarness, Tenant, make_record, plugin_id_of
from tests.plugin.values import RING_IDENTITIES, RING_USER_ID, TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin"
ZIP = PLUGIN / "dist" / "calltrail.zip"
CHROMIUM = "/usr/bin/chromium"
# The flags this machine's closed network needs (machines/python-svc.md): no background calls.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SOURCES = ("src", "static", "scripts", "package.json", "package-lock.json")


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = PLUGIN / name
        files = path.rglob("*") if path.is_dir() else [path]
        newest = max([newest, *(f.stat().st_mtime for f in files if f.is_file())])
    return newest


@pytest.fixture(scope="session")
def plugin_zip() -> Path:
    """dist/calltrail.zip, built (as `make plugin` does) when missing or older than its sources."""
    if not ZIP.exists() or ZIP.stat().st_mtime < _newest_source():
        if not (PLUGIN / "node_modules" / ".package-lock.json").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PLUGIN, check=True)
        subprocess.run(["npm", "run", "--silent", "build"], cwd=PLUGIN, check=True)
        subprocess.run(["npm", "run", "--silent", "pack"], cwd=PLUGIN, check=True)
    return ZIP


@pytest.fixture(scope="session")
def plugin_id(plugin_zip: Path) -> str:
    with zipfile.ZipFile(plugin_zip) as z:
        return plugin_id_of(z.read("PUBKEY"))


@pytest.fixture(scope="session")
def manifest(plugin_zip: Path) -> dict[str, Any]:
    from tests.plugin.harness.server import plugin_files

    return json.loads(plugin_files(plugin_zip)["manifest.json"])


@contextmanager
def _gateway(
    kafka_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory, **settings: object
) -> Iterator[str]:
    """A real gateway process. Its rate limits are raised: the suite asks for many tokens from
    one address and a few identities, which the limits exist to stop. Its ring group
    (RING_IDENTITIES, CONTRACT §9) is the one user of the incoming-call tests."""
    service, base = start_gateway(
        kafka_broker.bootstrap,
        f"test.plugin.{uuid.uuid4().hex[:8]}",
        tmp_path_factory.mktemp("plugin-gateway"),
        token_rate_per_identity=10_000,
        token_rate_per_address=10_000,
        ring_identities=RING_IDENTITIES,
        **settings,
    )
    try:
        yield base
    finally:
        service.stop()


@pytest.fixture(scope="session")
def gateway_url(
    kafka_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One real gateway process for the session (nothing recorded)."""
    with _gateway(kafka_broker, tmp_path_factory) as base:
        yield base


@pytest.fixture(scope="session")
def recording_gateway_url(
    kafka_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second gateway that records and transcribes (CONTRACT §11): its tokens say
    "recording": true. Started only by the tests that use it."""
    with _gateway(kafka_broker, tmp_path_factory, recording="dual", transcription="on") as base:
        yield base


@pytest.fixture(scope="session")
def harness(plugin_zip: Path, manifest: dict[str, Any]) -> Iterator[KintoneHarness]:
    server = KintoneHarness(plugin_zip, manifest["config"]["required_params"]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Package-scoped: Playwright's sync API keeps an event loop running in the main thread while
    it is open, which makes every later asyncio test of the session (tests/unit, after
    tests/plugin) fail with "Runner.run() cannot be called from a running event loop"."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Recorded:
    """Every request the browser sent, with its headers and body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def add(self, request: Request) -> None:
        self.requests.append(
            {
                "url": request.url,
                "method": request.method,
                "headers": request.all_headers(),
                "body": request.post_data or "",
            }
        )


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 640})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def recorded(context: BrowserContext) -> Recorded:
    rec = Recorded()
    context.on("request", rec.add)
    return rec


@pytest.fixture
def page(context: BrowserContext, recorded: Recorded) -> Page:
    page = context.new_page()
    page.set_default_timeout(5_000)
    return page


def configured_tenant(harness: KintoneHarness, plugin_id: str, gateway_url: str) -> Tenant:
    """A configured app: settings saved, the key stored in kintone's proxy config."""
    token_url = f"{gateway_url}/token"
    tenant = harness.new_tenant(
        plugin_id,
        config={"tokenUrl": token_url, "phoneField": "phone", "spaceElementId": "calltrail_button"},
    )
    tenant.set_proxy_config(token_url, "POST", {"X-Calltrail-Key": TOKEN_KEY})
    return tenant


def ringing_tenant(harness: KintoneHarness, plugin_id: str, gateway_url: str) -> Tenant:
    """A configured app whose user is in the gateway's ring group, with customers whose numbers
    are written the ways people write them, and the LINE user id field set."""
    token_url = f"{gateway_url}/token"
    tenant = harness.new_tenant(
        plugin_id,
        config={
            "tokenUrl": token_url,
            "phoneField": "phone",
            "spaceElementId": "calltrail_button",
            "lineUserIdField": "line_user_id",
        },
        records=inbound_records(),
    )
    tenant.user = {**tenant.user, "id": RING_USER_ID, "code": "takahashi", "name": "高橋 誠"}
    tenant.set_proxy_config(token_url, "POST", {"X-Calltrail-Key": TOKEN_KEY})
    return tenant


@pytest.fixture
def tenant(harness: KintoneHarness, plugin_id: str, gateway_url: str) -> Tenant:
    return configured_tenant(harness, plugin_id, gateway_url)


@pytest.fixture
def ringing(harness: KintoneHarness, plugin_id: str, gateway_url: str) -> Tenant:
    return ringing_tenant(harness, plugin_id, gateway_url)


LINE_USER_ID = "U" + "4af4980629" * 3 + "ab"


def inbound_records() -> list[dict[str, Any]]:
    """Customers, newest last; 106 shares only its last group with 102."""
    return [
        make_record(101, "株式会社サンプル商事", "03-1234-5678", "山田 太郎"),
        make_record(102, "有限会社みなと製作所", "090-1111-2222", "鈴木 一郎"),
        make_record(103, "合同会社番号なし", "", "田中 次郎"),
        make_record(104, "ハイフンなし工業", "09033334444", "伊藤 三郎"),
        make_record(105, "国際表記貿易", "+81 80 5555 6666", "渡辺 四郎"),
        make_record(106, "末尾だけ同じ商店", "03-9999-2222", "中村 五郎"),
        make_record(107, "スペース区切り社", "080 7777 8888", "小林 六郎"),
        make_record(108, "LINE のお客様", "", "加藤 七子", line_user_id=LINE_USER_ID),
        make_record(109, "括弧書き物産", "(045) 123-4567", "吉田 八郎"),
        make_record(110, "全角入力商会", "０９０－２２２２－３３３３", "山本 九郎"),
        make_record(111, "二つの番号社", "携帯 070-4444-5555 / 会社 03-1111-0000", "井上 十郎"),
    ]


def screenshot_dir() -> Path | None:
    """Screenshots for the README, only when CALLTRAIL_SCREENSHOTS=<dir> (make screenshots)."""
    target = os.environ.get("CALLTRAIL_SCREENSHOTS")
    if not target:
        return None
    path = Path(target)
    if not path.is_absolute():
        path = ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path
