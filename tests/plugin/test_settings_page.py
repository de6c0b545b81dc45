"""The plugin settings page: the key only through setProxyConfig, validation that says what to
fix, drop-downs read from the app's form."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

from tests.plugin.conftest import Recorded
from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import open_record, wait_ready
from tests.plugin.values import TOKEN_KEY

KEY_HEADER = "X-Calltrail-Key"


@pytest.fixture
def fresh(harness: KintoneHarness, plugin_id: str) -> Tenant:
    """An app where the plugin was just added: nothing saved yet."""
    return harness.new_tenant(plugin_id)


def open_settings(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    page.goto(harness.url(tenant, "config"))
    page.wait_for_selector("select[name=phoneField] option[value=phone]", state="attached")


def fill(page: Page, url: str, key: str, phone: str = "phone", space: str = "") -> None:
    page.fill("input[name=tokenUrl]", url)
    page.fill("input[name=apiKey]", key)
    page.select_option("select[name=phoneField]", phone)
    page.select_option("select[name=spaceElementId]", space)


def saved(page: Page) -> None:
    page.wait_for_url("**/plugins?saved=1")


def options(page: Page, name: str) -> list[str]:
    return page.eval_on_selector_all(f"select[name={name}] option", "os => os.map(o => o.value)")


def test_first_setup_saves_the_key_only_through_set_proxy_config(
    page: Page, harness: KintoneHarness, fresh: Tenant, gateway_url: str, recorded: Recorded
) -> None:
    token_url = f"{gateway_url}/token"
    open_settings(page, harness, fresh)
    assert page.text_content("#calltrail-key-status") == "キーはまだ保存されていません。"
    fill(page, token_url, TOKEN_KEY, space="calltrail_button")
    page.click("#calltrail-save")
    saved(page)
    assert fresh.proxy_config == {
        (token_url, "POST"): {"headers": {KEY_HEADER: TOKEN_KEY}, "data": {}}
    }
    assert fresh.config == {
        "tokenUrl": token_url,
        "phoneField": "phone",
        "spaceElementId": "calltrail_button",
        "lineUserIdField": "",  # optional (issue 11): no LINE lookup
    }
    assert TOKEN_KEY not in json.dumps(fresh.config_writes)
    for request in recorded.requests:
        assert TOKEN_KEY not in json.dumps(request["headers"]), request["url"]
        if TOKEN_KEY in request["body"]:  # the one save to kintone's server, in the body
            assert request["url"].endswith("/api/proxy-config")
    # And the record page now gets its token through the saved proxy entry.
    open_record(page, harness, fresh)
    wait_ready(page)


def test_a_stored_key_is_never_shown_and_blank_keeps_it(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    open_settings(page, harness, tenant)
    assert page.text_content("#calltrail-key-status") == (
        "キーは保存済みです。変更しない場合は空欄のままにしてください。"
    )
    assert page.input_value("input[name=apiKey]") == ""
    assert TOKEN_KEY not in page.content()
    assert page.input_value("input[name=tokenUrl]") == tenant.config["tokenUrl"]
    assert page.input_value("select[name=phoneField]") == "phone"
    assert page.input_value("select[name=spaceElementId]") == "calltrail_button"
    before = dict(tenant.proxy_config)
    page.select_option("select[name=phoneField]", "contact")
    page.click("#calltrail-save")
    saved(page)
    assert tenant.proxy_config == before
    assert tenant.proxy_config_writes == []
    assert tenant.config["phoneField"] == "contact"


def test_a_new_url_clears_the_old_proxy_entry(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    old_url = tenant.config["tokenUrl"]
    new_url = "https://calltrail.example.com/token"
    open_settings(page, harness, tenant)
    page.fill("input[name=tokenUrl]", new_url)
    page.click("#calltrail-save")  # key left blank: the stored one moves to the new URL
    saved(page)
    assert tenant.proxy_config[(old_url, "POST")]["headers"] == {}
    assert tenant.proxy_config[(new_url, "POST")]["headers"] == {KEY_HEADER: TOKEN_KEY}
    assert tenant.config["tokenUrl"] == new_url


def test_a_new_key_replaces_the_stored_one(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    open_settings(page, harness, tenant)
    page.fill("input[name=apiKey]", "a-new-key-0123")
    page.click("#calltrail-save")
    saved(page)
    stored = tenant.proxy_config[(tenant.config["tokenUrl"], "POST")]
    assert stored["headers"] == {KEY_HEADER: "a-new-key-0123"}


@pytest.mark.parametrize(
    ("url", "key", "field", "message"),
    [
        ("http://calltrail.example.com/token", TOKEN_KEY, "tokenUrl", "https:// で始めて"),
        ("https://calltrail.example.com/", TOKEN_KEY, "tokenUrl", "/token で終わる"),
        ("https://calltrail.example.com/token", "", "apiKey", "キーを入力してください"),
        ("", TOKEN_KEY, "tokenUrl", "トークン URL を入力してください"),
    ],
)
def test_first_setup_refuses_bad_input_and_says_what_to_fix(
    page: Page, harness: KintoneHarness, fresh: Tenant, url: str, key: str, field: str, message: str
) -> None:
    open_settings(page, harness, fresh)
    fill(page, url, key)
    page.click("#calltrail-save")
    page.wait_for_selector(f"#calltrail-error-{field}:has-text('{message}')")
    assert page.get_attribute(f"[name={field}]", "aria-invalid") == "true"
    assert message in page.text_content("#calltrail-config-message")
    page.wait_for_timeout(200)
    assert fresh.config_writes == []
    assert fresh.proxy_config_writes == []
    assert "/config" in page.url


def test_no_phone_field_chosen_is_refused(
    page: Page, harness: KintoneHarness, fresh: Tenant
) -> None:
    open_settings(page, harness, fresh)
    fill(page, "https://calltrail.example.com/token", TOKEN_KEY, phone="")
    page.click("#calltrail-save")
    page.wait_for_selector("#calltrail-error-phoneField:has-text('電話番号のフィールドを選んで')")
    assert fresh.config_writes == []


def test_drop_downs_come_from_the_form(page: Page, harness: KintoneHarness, fresh: Tenant) -> None:
    open_settings(page, harness, fresh)
    # Fields that can hold a number (text, link, number); no memo, no record number.
    assert sorted(options(page, "phoneField")) == [
        "",
        "company",
        "contact",
        "employees",
        "line_user_id",
        "phone",
        "website",
    ]
    # Blank spaces with an element ID (one is inside a group), or the header ("").
    assert options(page, "spaceElementId") == ["", "calltrail_button", "side"]
    # The LINE user id field: single-line text fields only, or none ("").
    assert sorted(options(page, "lineUserIdField")) == [
        "",
        "company",
        "contact",
        "line_user_id",
        "phone",
    ]
    assert "先頭の 0 が消えます" in page.text_content(
        "select[name=phoneField] option[value=employees]"
    )


def test_english_for_english_administrators(
    page: Page, harness: KintoneHarness, fresh: Tenant
) -> None:
    fresh.user = {**fresh.user, "language": "en"}
    open_settings(page, harness, fresh)
    assert page.text_content(".calltrail-config-title") == "calltrail settings"
    fill(page, "http://calltrail.example.com/token", "")
    page.click("#calltrail-save")
    page.wait_for_selector("#calltrail-error-tokenUrl:has-text('must start with https://')")
    assert "Enter the key" in page.text_content("#calltrail-error-apiKey")


def test_the_line_user_id_field_is_saved_and_settings_without_it_still_load(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """Settings saved before issue 11 have no lineUserIdField: the page shows "使わない"."""
    assert "lineUserIdField" not in tenant.config
    open_settings(page, harness, tenant)
    assert page.input_value("select[name=lineUserIdField]") == ""
    assert page.text_content("select[name=lineUserIdField] option[value='']") == "使わない"
    page.select_option("select[name=lineUserIdField]", "line_user_id")
    page.click("#calltrail-save")
    saved(page)
    assert tenant.config["lineUserIdField"] == "line_user_id"
    assert tenant.config["phoneField"] == "phone"
    open_settings(page, harness, tenant)
    assert page.input_value("select[name=lineUserIdField]") == "line_user_id"
