// Every page of the customer app the plugin runs on, desktop and mobile (cybozu.dev "イベント":
// app.record.index.show / mobile.app.record.index.show after a list view is shown — again on
// paging and filtering —, app.record.detail.show / mobile.app.record.detail.show after a record
// is shown — again on next/previous record and after a save).
//
// Once per page load, on the first of these events: the page's one Device manager (its token
// says whether this user is rung for inbound calls; then it registers the Device) and the
// incoming-call panel. On record views, also the call button (issue 9), told about every record.

import { languageOf } from '../core/i18n.js';
import { tokenUrlProblem } from '../core/settings.js';
import { createCallPanel } from './call-panel.js';
import { deviceManagerForPage } from './device-manager.js';
import { createIncomingPanel } from './incoming-panel.js';

export function startPage({ kintone, pluginId, Twilio, mobile = false, doc = document }) {
  const config = kintone.plugin.app.getConfig(pluginId) || {};
  const lang = languageOf(kintone.getLoginUser());
  const configured = tokenUrlProblem(config.tokenUrl) === null && Boolean(config.phoneField);
  const app = mobile ? kintone.mobile.app : kintone.app;
  const prefix = mobile ? 'mobile.' : '';
  let manager = null;
  let panel = null;

  function mountPoint() {
    const space = config.spaceElementId ? app.record.getSpaceElement(config.spaceElementId) : null;
    if (space) return space;
    return mobile ? app.getHeaderSpaceElement() : app.record.getHeaderMenuSpaceElement();
  }

  /** The first event of the page load starts everything the page keeps. */
  function startOnce() {
    if (manager !== null) return;
    manager = deviceManagerForPage({ kintone, pluginId, tokenUrl: config.tokenUrl, Twilio });
    createIncomingPanel({ doc, lang, manager, kintone, config, appId: () => app.getId(), mobile });
    if (configured) manager.start();
  }

  kintone.events.on(`${prefix}app.record.index.show`, (event) => {
    startOnce();
    return event;
  });

  kintone.events.on(`${prefix}app.record.detail.show`, (event) => {
    startOnce();
    if (panel === null) {
      panel = createCallPanel({ doc, lang, manager });
      if (!configured) panel.problem('notConfigured');
    }
    const field = event.record ? event.record[config.phoneField] : undefined;
    panel.show({
      appId: event.appId ?? app.getId(),
      recordId: event.recordId ?? app.record.getId(),
      phone: field ? field.value : null,
      phoneLabel: config.phoneField || '',
      mountPoint: mountPoint(),
    });
    return event;
  });
}
