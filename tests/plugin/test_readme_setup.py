"""The README's "Try the three steps locally first", followed as a newcomer would: the kintone
stand-in it starts (``python -m tests.plugin.harness``), the settings page filled in with what
the README says, then a call placed from the record page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from services.devtools.dev import DEV_PLACEHOLDERS
from tests.plugin.harness import __main__ as stand_in
from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import BUTTON, open_record, standin, wait_ready
from tests.plugin.values import TOKEN_KEY

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
STEPS = README[README.index("**Try the three steps locally first**") : README.index("## Receiving")]


@pytest.fixture
def demo(plugin_zip: Path) -> Iterator[tuple[KintoneHarness, Tenant]]:
    harness, tenant = stand_in.start(plugin_zip)
    try:
        yield harness, tenant
    finally:
        harness.stop()


def test_the_readme_names_the_stand_in_and_the_dev_key() -> None:
    assert ".venv/bin/python -m tests.plugin.harness --gateway http://127.0.0.1:8080" in STEPS
    assert "make plugin" in STEPS
    # The key the README tells a newcomer to type is the one `make run` gives the gateway.
    assert f"the key `{DEV_PLACEHOLDERS['CALLTRAIL_TOKEN_KEY']}`" in STEPS
    assert "`http://127.0.0.1:8080/token`" in STEPS


def test_following_the_readme_places_a_call_from_the_record_page(
    page: Page, demo: tuple[KintoneHarness, Tenant], gateway_url: str
) -> None:
    harness, tenant = demo
    assert tenant.config == {}, "the app starts with the plugin added but not set up"
    # The settings page: token URL, key and phone field as the README says (this suite's
    # gateway listens elsewhere than `make run`'s and has its own key).
    page.goto(harness.url(tenant, "config"))
    page.fill("input[name=tokenUrl]", f"{gateway_url}/token")
    page.fill("input[name=apiKey]", TOKEN_KEY)
    (field,) = re.findall(r"choose (.+?) as the phone number field", STEPS)
    page.select_option("select[name=phoneField]", label=field)
    page.click("#calltrail-save")
    page.wait_for_url("**/plugins?saved=1")
    # The record page: the button is ready and calls the record's number.
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_function("() => window.__twilioStandin.log.connects.length === 1")
    first = tenant.records[0]
    assert "株式会社サンプル商事" in STEPS
    assert first["company"]["value"] == "株式会社サンプル商事"
    assert standin(page)["connects"] == [
        {"To": first["phone"]["value"], "AppId": str(tenant.app_id), "RecordId": "101"}
    ]
