"""The pictures of the settings page, the record page and the incoming-call panel (README.md,
docs/kintone.md). The pages are checked on every run; the PNGs are written only when
CALLTRAIL_SCREENSHOTS=<dir> is set (`make screenshots`)."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.plugin.conftest import screenshot_dir
from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import (
    BUTTON,
    button,
    call_control,
    incoming_panel,
    open_record,
    ring,
    wait_lookup_done,
    wait_ready,
    wait_registered,
)


def test_settings_page_picture(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    url = "https://calltrail.example.com/token"  # as a production app would have it
    tenant.config = {**tenant.config, "tokenUrl": url}
    tenant.set_proxy_config(url, "POST", {"X-Calltrail-Key": "stored-on-kintone"})
    page.set_viewport_size({"width": 900, "height": 720})
    page.goto(harness.url(tenant, "config"))
    page.wait_for_selector("select[name=phoneField] option[value=phone]", state="attached")
    assert page.text_content("#calltrail-key-status").startswith("キーは保存済みです")
    target = screenshot_dir()
    if target:
        page.screenshot(path=str(target / "settings.png"), full_page=True)


def test_record_page_picture(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    page.set_viewport_size({"width": 900, "height": 420})
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    call_control(page, "_answer")
    page.wait_for_function("() => document.getElementById('calltrail-timer').textContent")
    assert button(page)["state"] == "通話中"
    target = screenshot_dir()
    if target:
        page.wait_for_function(
            "() => document.getElementById('calltrail-timer').textContent > '0:01'"
        )
        page.screenshot(path=str(target / "record.png"))


def test_incoming_panel_picture(page: Page, harness: KintoneHarness, ringing: Tenant) -> None:
    """A customer calls while the user looks at the customer list: one panel, the caller, the
    record it matches, Answer and Decline."""
    page.set_viewport_size({"width": 900, "height": 420})
    open_record(page, harness, ringing, "index")
    wait_registered(page)
    ring(page, {"caller": "+819011112222", "kind": "number"})
    wait_lookup_done(page)
    assert incoming_panel(page)["calls"][0]["records"][0]["id"] == "102"
    target = screenshot_dir()
    if target:
        page.screenshot(path=str(target / "incoming.png"))
