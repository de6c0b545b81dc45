"""The call button on the record page (CONTRACT §8), with the walkthrough's faults as
regression tests."""

from __future__ import annotations

import jwt
from playwright.sync_api import Page

from tests.conftest import API_KEY, API_SECRET, APP_SID
from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import button, open_record, standin, wait_ready


def test_button_gets_ready_with_a_real_token(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    state = button(page)
    assert state["count"] == 1
    assert state["parent"] == "calltrail_button"
    assert state["text"] == "電話をかける"
    assert state["label"] == "03-1234-5678 に電話をかける"
    devices = standin(page)["devices"]
    assert devices == [{"identity": "kintone_7", "edge": "tokyo"}]
    token = page.evaluate("() => window.__twilioStandin._device.token")
    claims = jwt.decode(token, API_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert claims["iss"] == API_KEY
    assert claims["grants"]["identity"] == "kintone_7"
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == APP_SID
    assert tenant.proxy_log[0]["headers"]["X-Calltrail-Key"]  # added by kintone's server
