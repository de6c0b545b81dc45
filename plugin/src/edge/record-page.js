// The record detail page, desktop and mobile: where the panel goes and what it is told on every
// app.record.detail.show / mobile.app.record.detail.show (cybozu.dev "レコード詳細画面を表示した後
// のイベント"; it fires again on next/previous record and after a save).

import { languageOf } from '../core/i18n.js';
import { tokenUrlProblem } from '../core/settings.js';
import { createCallPanel } from './call-panel.js';
import { deviceManagerForPage } from './device-manager.js';

export function startRecordPage({ kintone, pluginId, Twilio, mobile = false, doc = document }) {
  const config = kintone.plugin.app.getConfig(pluginId) || {};
  const lang = languageOf(kintone.getLoginUser());
  const configured = tokenUrlProblem(config.tokenUrl) === null && Boolean(config.phoneField);
  const app = mobile ? kintone.mobile.app : kintone.app;
  const eventName = mobile ? 'mobile.app.record.detail.show' : 'app.record.detail.show';
  let panel = null;

  function mountPoint() {
    const space = config.spaceElementId ? app.record.getSpaceElement(config.spaceElementId) : null;
    if (space) return space;
    return mobile ? app.getHeaderSpaceElement() : app.record.getHeaderMenuSpaceElement();
  }

  kintone.events.on(eventName, (event) => {
    if (panel === null) {
      const manager = deviceManagerForPage({ kintone, pluginId, tokenUrl: config.tokenUrl, Twilio });
      panel = createCallPanel({ doc, lang, manager });
      if (configured) manager.start();
      else panel.problem('notConfigured');
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
