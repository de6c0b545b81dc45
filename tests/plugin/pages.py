"""Small helpers the plugin's browser tests share."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.plugin.harness.server import KintoneHarness, Tenant

BUTTON = "#calltrail-call"


def open_record(page: Page, harness: KintoneHarness, tenant: Tenant, kind: str = "record") -> None:
    page.goto(harness.url(tenant, kind))
    page.wait_for_function("() => window.__harness && window.__harness.fired.length > 0")


def wait_ready(page: Page) -> None:
    page.wait_for_selector(f"{BUTTON}:not([disabled])")


def standin(page: Page) -> dict[str, Any]:
    """What the Voice SDK stand-in counted."""
    return page.evaluate(
        """() => {
          const s = window.__twilioStandin;
          return {connects: s.log.connects.map((c) => c.params), disconnects: s.log.disconnects,
                  devices: s.log.devices, tokenUpdates: s.log.tokenUpdates.length,
                  registers: s.log.registers};
        }"""
    )


BUTTON_STATE_JS = """() => {
  const all = document.querySelectorAll('#calltrail-call');
  const b = all[0];
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  const space = b && b.closest('[data-element-id]');
  const header = b && b.closest('#record-header-menu-space');
  return {
    count: all.length,
    disabled: b ? b.disabled : null,
    text: b ? b.textContent : null,
    label: b ? b.getAttribute('aria-label') : null,
    action: b ? b.dataset.action : null,
    reason: text('calltrail-reason'),
    message: text('calltrail-message'),
    messages: document.querySelectorAll('#calltrail-message').length,
    state: text('calltrail-state'),
    timer: text('calltrail-timer'),
    parent: space ? space.dataset.elementId : header ? 'header' : null,
  };
}"""


def button(page: Page) -> dict[str, Any]:
    return page.evaluate(BUTTON_STATE_JS)


def call_control(page: Page, action: str, *args: Any) -> None:
    """The far end of the last call: _answer, _remoteHangUp, _cancel, _reject, _fail(code)."""
    script = "([action, args]) => window.__twilioStandin.lastCall()[action](...args)"
    page.evaluate(script, [action, list(args)])
