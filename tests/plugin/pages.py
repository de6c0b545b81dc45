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


# --- the incoming-call panel ------------------------------------------------------------------
PANEL = "#calltrail-incoming"

INCOMING_JS = """() => {
  const panels = document.querySelectorAll('#calltrail-incoming');
  const calls = [...document.querySelectorAll('#calltrail-incoming .calltrail-incoming-call')];
  return {
    panels: panels.length,
    calls: calls.map((c) => ({
      state: c.dataset.state,
      kind: c.dataset.kind,
      lookup: c.dataset.lookup ?? null,
      caller: c.querySelector('.calltrail-caller').textContent,
      lookupText: c.querySelector('.calltrail-incoming-lookup').textContent,
      records: [...c.querySelectorAll('a.calltrail-record')].map((a) => ({
        id: a.dataset.recordId, href: a.getAttribute('href'), text: a.textContent})),
      message: c.querySelector('.calltrail-message').textContent,
      timer: c.querySelector('.calltrail-timer').textContent,
      status: c.querySelector('.calltrail-state').textContent,
      buttons: [...c.querySelectorAll('button')].filter((b) => !b.hidden)
        .map((b) => b.className.replace('calltrail-', '')),
    })),
  };
}"""


def incoming_panel(page: Page) -> dict[str, Any]:
    return page.evaluate(INCOMING_JS)


def ring(page: Page, params: dict[str, str], from_: str = "") -> int:
    """An inbound call reaches this page's Device; returns the Call's index for call_at()."""
    index = page.evaluate(
        "([params, from]) => window.__twilioStandin.incoming({params, from})", [params, from_]
    )
    assert index is not None, "the Device is not registered: the call would not ring here"
    return int(index)


def ring_and_time(page: Page, params: dict[str, str], selector: str) -> float:
    """Ring, and the ms from the Device's 'incoming' until `selector` is on the page."""
    return float(
        page.evaluate(
            """([params, selector]) => new Promise((resolve) => {
              const start = performance.now();
              const seen = () => document.querySelector(selector);
              const observer = new MutationObserver(() => {
                if (seen()) { observer.disconnect(); resolve(performance.now() - start); }
              });
              observer.observe(document.body, {subtree: true, childList: true, attributes: true});
              window.__twilioStandin.incoming({params, from: params.caller || ''});
              if (seen()) { observer.disconnect(); resolve(performance.now() - start); }
            })""",
            [params, selector],
        )
    )


def call_at(page: Page, index: int, action: str, *args: Any) -> Any:
    """The far end of call `index`: _cancel, _remoteHangUp; or read its log."""
    script = "([i, action, args]) => window.__twilioStandin.call(i)[action](...args)"
    return page.evaluate(script, [index, action, list(args)])


def call_log(page: Page, index: int) -> dict[str, int]:
    return page.evaluate("(i) => window.__twilioStandin.call(i).log", index)


def wait_registered(page: Page) -> None:
    page.wait_for_function("() => window.__twilioStandin._device?.state === 'registered'")


def wait_lookup_done(page: Page, count: int = 1) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('.calltrail-incoming-call[data-lookup]').length >= n",
        arg=count,
    )
