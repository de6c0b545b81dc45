"""Tokens through kintone's proxy: the key stays on kintone's side, failures are one message and
a later retry (no loop), and the token is renewed before it expires."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page

from tests.plugin.conftest import Recorded
from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import BUTTON, button, call_control, open_record, standin, wait_ready
from tests.plugin.values import TOKEN_KEY


def frozen_clock(page: Page) -> None:
    """Page time stands still unless a test moves it (page.clock.fast_forward): a slow, shared
    machine cannot let a retry fire on its own and turn "no loop" checks into races."""
    start = datetime.now(UTC)
    page.clock.install(time=start)
    page.clock.pause_at(start + timedelta(seconds=2))


def wait_for_requests(tenant: Tenant, count: int, page: Page | None = None) -> None:
    """Until kintone's relay has forwarded `count` token requests (and, given the page, until the
    page has its answers: what it schedules next is then settled)."""
    deadline = time.monotonic() + 5.0
    while tenant.tokens_requested() < count:
        assert time.monotonic() < deadline, f"{tenant.tokens_requested()} token requests"
        time.sleep(0.05)
    if page is not None:
        page.wait_for_function(f"() => window.__harness.proxyAnswers >= {count}")


def test_the_key_never_reaches_the_browser(
    page: Page, harness: KintoneHarness, tenant: Tenant, recorded: Recorded
) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    call_control(page, "_answer")
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='call']")
    # kintone's server added it to the request it forwarded …
    assert tenant.proxy_log[0]["headers"]["X-Calltrail-Key"] == TOKEN_KEY
    # … and nothing the browser sent or holds carries it.
    assert recorded.requests
    for request in recorded.requests:
        assert TOKEN_KEY not in json.dumps(request["headers"]), request["url"]
        assert TOKEN_KEY not in request["body"], request["url"]
        assert "x-calltrail-key" not in {h.lower() for h in request["headers"]}
    assert TOKEN_KEY not in page.content()
    storage = page.evaluate(
        """() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage),
                 document.cookie, kintone.plugin.app.getConfig(kintone.$PLUGIN_ID)])"""
    )
    assert TOKEN_KEY not in storage
    assert set(tenant.config) == {"tokenUrl", "phoneField", "spaceElementId"}


def test_a_refused_key_is_one_message_then_a_later_retry(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """The real gateway answers 401 to a wrong key; fixing the key heals the page."""
    token_url = tenant.config["tokenUrl"]
    tenant.set_proxy_config(token_url, "POST", {"X-Calltrail-Key": "wrong-key"})
    frozen_clock(page)
    open_record(page, harness, tenant)
    page.wait_for_selector("#calltrail-message:has-text('キーを受け付けませんでした')")
    assert tenant.proxy_log[0]["status"] == 401
    assert button(page)["disabled"] is True
    page.wait_for_timeout(1500)
    assert tenant.tokens_requested() == 1  # no loop
    tenant.set_proxy_config(token_url, "POST", {"X-Calltrail-Key": TOKEN_KEY})
    page.clock.fast_forward(6_100)  # the first retry: 5 s + up to 20 % jitter
    wait_for_requests(tenant, 2, page)
    wait_ready(page)
    assert button(page)["message"] == ""
    assert len(standin(page)["devices"]) == 1


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ("status/429", "混み合っています"),
        ("status/503", "応答しません"),
        ("status/500", "応答しません"),
        ("html", "応答を読めませんでした"),
    ],
)
def test_a_bad_token_url_is_one_message_retried_with_backoff(
    page: Page, harness: KintoneHarness, tenant: Tenant, upstream: str, message: str
) -> None:
    tenant.config = {**tenant.config, "tokenUrl": harness.upstream(upstream)}
    frozen_clock(page)
    open_record(page, harness, tenant)
    page.wait_for_selector(f"#calltrail-message:has-text('{message}')")
    page.wait_for_timeout(1000)
    assert tenant.tokens_requested() == 1
    page.clock.fast_forward(6_100)
    wait_for_requests(tenant, 2, page)
    page.clock.fast_forward(6_100)  # the second retry waits 10 s: not yet
    page.wait_for_timeout(300)
    assert tenant.tokens_requested() == 2
    page.clock.fast_forward(6_100)
    wait_for_requests(tenant, 3, page)
    state = button(page)
    assert state["disabled"] is True
    assert state["messages"] == 1
    assert message in state["message"]
    assert standin(page)["devices"] == []


def test_the_token_is_renewed_before_it_expires(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """The gateway's ttl is 600 s: renewal at the latest min(60 s, ttl/4) = 60 s before."""
    frozen_clock(page)
    open_record(page, harness, tenant)
    wait_ready(page)
    page.clock.fast_forward(530_000)
    page.wait_for_timeout(200)
    assert tenant.tokens_requested() == 1
    page.clock.fast_forward(10_500)  # 540.5 s after the request
    wait_for_requests(tenant, 2, page)
    page.wait_for_function("() => window.__twilioStandin.log.tokenUpdates.length === 1")
    counts = standin(page)
    assert len(counts["devices"]) == 1  # the same Device, with a new token
    assert button(page)["disabled"] is False


def test_the_sdk_warning_also_renews(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    page.evaluate(  # twice in one turn: the second finds the first request in flight
        """() => { const d = window.__twilioStandin._device;
                   d.emit('tokenWillExpire'); d.emit('tokenWillExpire'); }"""
    )
    wait_for_requests(tenant, 2, page)
    page.wait_for_function("() => window.__twilioStandin.log.tokenUpdates.length === 1")
    page.wait_for_timeout(300)
    assert tenant.tokens_requested() == 2  # one request in flight at a time


def test_sdk_token_errors_renew_once_then_back_off(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    frozen_clock(page)
    open_record(page, harness, tenant)
    wait_ready(page)
    page.evaluate("() => window.__twilioStandin.deviceError(20104)")
    wait_for_requests(tenant, 2, page)  # the first refusal: a new token at once
    page.wait_for_function("() => window.__twilioStandin.log.tokenUpdates.length === 1")
    assert button(page)["message"] == ""  # the new token made the message untrue
    page.evaluate(  # the SDK refusing again and again
        "() => { for (let i = 0; i < 5; i++) window.__twilioStandin.deviceError(31205); }"
    )
    page.wait_for_timeout(500)
    assert "通話の認証に失敗しました" in button(page)["message"]
    assert tenant.tokens_requested() == 2  # later ones wait for the backoff (5 s + jitter)
    page.clock.fast_forward(6_100)
    wait_for_requests(tenant, 3, page)
    page.wait_for_timeout(500)
    assert tenant.tokens_requested() == 3  # one retry, not one per refusal
