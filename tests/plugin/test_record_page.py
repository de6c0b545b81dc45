"""The call button on the record page (CONTRACT §8), with the walkthrough's faults as
regression tests."""

from __future__ import annotations

import threading

import jwt
import pytest
from playwright.sync_api import Page

from tests.plugin.harness.server import KintoneHarness, Tenant
from tests.plugin.pages import BUTTON, button, call_control, open_record, standin, wait_ready
from tests.plugin.values import API_KEY, API_SECRET, APP_SID


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


def test_clicks_before_the_token_arrives_do_nothing(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """Walkthrough fault 1: the button could be clicked before the phone was ready."""
    tenant.proxy_gate = threading.Event()  # the token is on its way until the test says
    open_record(page, harness, tenant)
    assert button(page)["disabled"] is True
    assert button(page)["text"] == "電話を準備中…"
    page.click(BUTTON, force=True, no_wait_after=True)  # a click on the disabled button
    # Even with `disabled` taken away (an extension, a race), clicks start nothing.
    page.evaluate(
        """() => { const b = document.getElementById('calltrail-call');
                   for (let i = 0; i < 3; i++) { b.removeAttribute('disabled'); b.click(); } }"""
    )
    assert standin(page)["devices"] == []  # the token is still on its way
    assert standin(page)["connects"] == []
    tenant.proxy_gate.set()
    wait_ready(page)
    assert standin(page)["connects"] == []


def test_three_detail_show_events_and_one_click_give_one_connect(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """Walkthrough fault 2: handlers were added on every event, so one click fired many."""
    open_record(page, harness, tenant)
    wait_ready(page)
    page.evaluate("() => window.__harness.next()")  # next record
    page.evaluate("() => window.__harness.previous()")  # previous record
    page.evaluate("() => window.__harness.save()")  # after a save
    assert page.evaluate("() => window.__harness.fired.length") == 4
    state = button(page)
    assert state["count"] == 1
    assert state["parent"] == "calltrail_button"  # moved into the re-rendered Blank space
    page.click(BUTTON)
    page.wait_for_function("() => window.__twilioStandin.log.connects.length > 0")
    page.wait_for_timeout(200)
    assert standin(page)["connects"] == [{"To": "03-1234-5678", "AppId": "12", "RecordId": "101"}]
    assert len(standin(page)["devices"]) == 1  # one Device per page load
    assert tenant.tokens_requested() == 1


def test_a_click_during_a_call_gives_one_disconnect(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """Walkthrough fault 3: one click fired connect and disconnect over and over."""
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']:not([disabled])")
    assert button(page)["text"] == "通話を終了"
    assert button(page)["label"] == "通話を終了"
    page.evaluate(
        """() => { const b = document.getElementById('calltrail-call'); b.click(); b.click();
                   b.click(); }"""
    )
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])")
    counts = standin(page)
    assert counts["disconnects"] == 1
    assert len(counts["connects"]) == 1


def test_the_number_and_ids_of_the_record_on_show_are_dialled(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click("#harness-next")
    page.wait_for_function("() => window.__harness.fired.length === 2")
    assert button(page)["label"] == "090-1111-2222 に電話をかける"
    page.click(BUTTON)
    page.wait_for_function("() => window.__twilioStandin.log.connects.length === 1")
    assert standin(page)["connects"] == [{"To": "090-1111-2222", "AppId": "12", "RecordId": "102"}]


@pytest.mark.parametrize("end", ["_remoteHangUp", "_cancel", "_reject", "_fail"])
def test_ready_again_when_the_call_ends(
    page: Page, harness: KintoneHarness, tenant: Tenant, end: str
) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    if end == "_fail":
        call_control(page, end, 31005)
    else:
        call_control(page, end)
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])")
    state = button(page)
    assert state["text"] == "電話をかける"
    assert state["state"] == ""
    assert standin(page)["disconnects"] == 0  # the far end ended it; we did not hang up
    if end == "_fail":
        assert (
            state["message"]
            == "ネットワークにつながりません。接続を確認して、もう一度お試しください。"
        )
    else:
        assert state["message"] == ""
    page.click(BUTTON)  # and it calls again
    page.wait_for_function("() => window.__twilioStandin.log.connects.length === 2")


def test_call_state_length_and_mute(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    open_record(page, harness, tenant)
    wait_ready(page)
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='hangup']")
    assert button(page)["state"] == "呼び出し中"
    assert page.is_hidden("#calltrail-mute")
    call_control(page, "_answer")
    page.wait_for_function(
        "() => document.getElementById('calltrail-timer').textContent === '0:01'"
    )
    assert button(page)["state"] == "通話中"
    page.click("#calltrail-mute")
    assert page.evaluate("() => window.__twilioStandin.lastCall().isMuted()") is True
    assert page.get_attribute("#calltrail-mute", "aria-pressed") == "true"
    assert page.text_content("#calltrail-mute") == "ミュート解除"
    page.click("#calltrail-mute")
    assert page.evaluate("() => window.__twilioStandin.lastCall().isMuted()") is False
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='call']")
    assert button(page)["timer"] == ""
    assert page.is_hidden("#calltrail-mute")


def test_sdk_errors_are_one_short_message_replaced_not_added(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_record(page, harness, tenant)
    wait_ready(page)
    for _ in range(5):  # the SDK retrying: the same error again and again
        page.evaluate("() => window.__twilioStandin.deviceError(31401)")
    state = button(page)
    assert state["message"] == "マイクが使えません。ブラウザーのマイクの許可を確認してください。"
    assert state["messages"] == 1
    page.evaluate("() => window.__twilioStandin.deviceError(53000)")
    assert button(page)["message"].startswith("ネットワークにつながりません")
    page.evaluate("() => window.__twilioStandin.deviceError(31486)")
    assert button(page)["message"] == "相手につながりませんでした（話し中・応答なし）。"
    page.evaluate("() => window.__twilioStandin.deviceError(39999)")
    assert button(page)["message"] == "通話でエラーが起きました（コード 39999）。"
    assert button(page)["disabled"] is False  # an SDK warning does not take the phone away
    # A connect the SDK refuses (microphone blocked) ends the attempt: ready again, one message.
    page.evaluate("() => { window.__twilioStandin.connectError = 31208; }")
    page.click(BUTTON)
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])")
    assert button(page)["message"].startswith("マイクが使えません")
    assert dialogs == []


def test_english_for_english_users(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    tenant.user = {**tenant.user, "language": "en"}
    open_record(page, harness, tenant)
    wait_ready(page)
    assert button(page)["text"] == "Call"
    assert button(page)["label"] == "Call 03-1234-5678"
    page.evaluate("() => window.__twilioStandin.deviceError(31402)")
    assert button(page)["message"].startswith("The microphone is blocked")


def test_no_phone_number_disables_and_says_why(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    tenant.record_index = 2  # 合同会社番号なし: no number
    open_record(page, harness, tenant)
    page.wait_for_function(
        "() => window.__twilioStandin && window.__twilioStandin.log.devices.length"
    )
    page.wait_for_timeout(100)
    state = button(page)
    assert state["disabled"] is True
    assert (
        state["reason"] == "このレコードには電話番号（phone）が入っていないため、発信できません。"
    )
    page.evaluate(
        """() => { const b = document.getElementById('calltrail-call');
                   b.removeAttribute('disabled'); b.click(); }"""
    )
    assert standin(page)["connects"] == []
    page.click("#harness-next")  # to a record with a number: ready
    wait_ready(page)
    assert button(page)["reason"] == ""


def test_header_menu_space_when_no_blank_space_is_set(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    tenant.config = {**tenant.config, "spaceElementId": ""}
    open_record(page, harness, tenant)
    wait_ready(page)
    assert button(page)["parent"] == "header"
    page.click("#harness-next")
    page.wait_for_function("() => window.__harness.fired.length === 2")
    assert button(page)["count"] == 1


def test_not_configured_says_so(page: Page, harness: KintoneHarness, tenant: Tenant) -> None:
    tenant.config = {}
    open_record(page, harness, tenant)
    page.wait_for_selector("#calltrail-message:has-text('設定が終わっていません')")
    assert button(page)["disabled"] is True
    assert tenant.tokens_requested() == 0


def test_a_device_error_while_connecting_ends_the_attempt(
    page: Page, harness: KintoneHarness, tenant: Tenant
) -> None:
    """The real SDK leaves connect() pending while its signalling fails (31005, retried): the
    page gives up on that attempt, and hangs up a Call that still arrives later."""
    open_record(page, harness, tenant)
    wait_ready(page)
    page.evaluate("() => { window.__twilioStandin.holdConnect = true; }")
    page.click(BUTTON)
    assert button(page)["text"] == "接続中…"
    page.evaluate("() => window.__twilioStandin.deviceError(31005)")
    page.wait_for_selector(f"{BUTTON}[data-action='call']:not([disabled])")
    assert button(page)["message"].startswith("ネットワークにつながりません")
    page.evaluate("() => window.__twilioStandin.releaseConnect()")  # the Call arrives late
    page.wait_for_function("() => window.__twilioStandin.log.disconnects === 1")
    assert button(page)["action"] == "call"
    assert len(standin(page)["connects"]) == 1
