"""「録音中」 on the page while a recorded call is up (CONTRACT §11): the gateway's token answer
says "recording", and only then."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Page

from tests.plugin.conftest import configured_tenant, ringing_tenant
from tests.plugin.harness.server import KintoneHarness
from tests.plugin.pages import (
    BUTTON,
    PANEL,
    call_at,
    call_control,
    open_record,
    ring,
    wait_ready,
    wait_registered,
)

RECORDING = "#calltrail-recording"
INCOMING_RECORDING = f"{PANEL} .calltrail-recording"


def test_an_outbound_call_says_recording_from_the_answer_until_it_ends(
    page: Page, harness: KintoneHarness, plugin_id: str, recording_gateway_url: str
) -> None:
    tenant = configured_tenant(harness, plugin_id, recording_gateway_url)
    open_record(page, harness, tenant)
    wait_ready(page)
    assert page.is_hidden(RECORDING)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    assert page.is_hidden(RECORDING)  # ringing: Twilio records from the answer
    call_control(page, "_answer")
    page.wait_for_selector(RECORDING, state="visible")
    assert page.text_content(RECORDING) == "録音中"
    call_control(page, "_remoteHangUp")
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])")
    assert page.is_hidden(RECORDING)


def test_english_users_read_recording(
    context: BrowserContext, harness: KintoneHarness, plugin_id: str, recording_gateway_url: str
) -> None:
    tenant = configured_tenant(harness, plugin_id, recording_gateway_url)
    tenant.user = {**tenant.user, "language": "en"}
    page = context.new_page()
    page.set_default_timeout(5_000)
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    call_control(page, "_answer")
    page.wait_for_selector(RECORDING, state="visible")
    assert page.text_content(RECORDING) == "Recording"


def test_an_answered_incoming_call_says_recording_until_it_ends(
    page: Page, harness: KintoneHarness, plugin_id: str, recording_gateway_url: str
) -> None:
    tenant = ringing_tenant(harness, plugin_id, recording_gateway_url)
    open_record(page, harness, tenant, "index")
    wait_registered(page)
    index = ring(page, {"caller": "+81312345678", "kind": "number"}, "+81312345678")
    page.wait_for_selector(f"{PANEL} .calltrail-answer")
    assert page.is_hidden(INCOMING_RECORDING)  # ringing
    page.click(f"{PANEL} .calltrail-answer")
    page.wait_for_selector(INCOMING_RECORDING, state="visible")
    assert page.text_content(INCOMING_RECORDING) == "録音中"
    call_at(page, index, "_remoteHangUp")
    page.wait_for_selector(PANEL, state="detached")


def test_nothing_is_said_when_the_gateway_does_not_record(
    page: Page, harness: KintoneHarness, plugin_id: str, gateway_url: str
) -> None:
    tenant = configured_tenant(harness, plugin_id, gateway_url)
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    call_control(page, "_answer")
    page.wait_for_function(
        "() => document.getElementById('calltrail-state').textContent === '通話中'"
    )
    assert page.is_hidden(RECORDING)
