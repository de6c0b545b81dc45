"""A smoke test with the real Voice SDK (js/twilio.min.js as shipped) and Twilio unreachable:
the page loads, the button gets ready, and a click ends in one clear message."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Page, Route, WebSocketRoute

from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import BUTTON, button, open_record, wait_ready

TWILIO = re.compile(r"^(https?|wss?)://([^/]*\.)?twilio\.com(:\d+)?/")


def test_real_sdk_with_twilio_blocked(
    context: BrowserContext, page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    blocked: list[str] = []

    def abort(route: Route) -> None:
        blocked.append(route.request.url)
        route.abort("internetdisconnected")

    def refuse(ws: WebSocketRoute) -> None:
        blocked.append(ws.url)
        ws.close(code=1006, reason="blocked by the test")

    context.route(TWILIO, abort)
    context.route_web_socket(TWILIO, refuse)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tenant.real_sdk = True
    open_record(page, harness, tenant)
    assert page.evaluate("() => typeof Twilio.Device === 'function' && !window.__twilioStandin")
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector("#calltrail-message:not(:empty)", timeout=20_000)
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])", timeout=20_000)
    page.wait_for_timeout(1500)  # the SDK may go on retrying: still one message
    state = button(page)
    print(f"\nreal SDK, Twilio blocked: {state['message']!r}; blocked {blocked[:3]}")
    assert state["messages"] == 1
    assert state["message"] in {
        "ネットワークにつながりません。接続を確認して、もう一度お試しください。",
        "マイクが使えません。ブラウザーのマイクの許可を確認してください。",
    }
    assert dialogs == []
    assert errors == []
