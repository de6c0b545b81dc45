// A stand-in for kintone's JavaScript API, as cybozu.dev documents it, for the plugin's browser
// tests. Page state comes from window.__KINTONE_STATE__ (written by the harness server); what
// kintone keeps on its servers (plugin config, proxy config) lives in the harness server, reached
// with fetch/XHR like kintone's own pages reach kintone.
(function () {
  'use strict';
  const S = window.__KINTONE_STATE__;
  const base = `/t/${S.tenant}/api`;
  const handlers = new Map();
  let index = S.recordIndex || 0;

  function jsonFetch(path, body) {
    return fetch(base + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest' },
      body: JSON.stringify(body),
    });
  }
  function syncGet(path) {
    // getConfig/getProxyConfig are synchronous in kintone: a synchronous XHR plays that.
    const xhr = new XMLHttpRequest();
    xhr.open('GET', base + path, false);
    xhr.send();
    return JSON.parse(xhr.responseText);
  }
  function onlyOn(pages, name) {
    if (!pages.includes(S.page)) throw new Error(`${name} is not available on this screen`);
  }
  const clone = (v) => JSON.parse(JSON.stringify(v));
  const record = () => S.records[index];

  const listPage = S.page === 'index' || S.page === 'mobile-index';
  let listOffset = 0;
  const LIST_SIZE = 20;

  // --- the list view: a table of the records, drawn again on every page of the list ----------
  function renderList() {
    const host = document.getElementById('record-gaia');
    host.replaceChildren();
    const table = document.createElement('table');
    table.className = 'harness-list';
    for (const rec of S.records.slice(listOffset, listOffset + LIST_SIZE)) {
      const row = document.createElement('tr');
      for (const code of ['$id', 'company', 'phone', 'contact']) {
        const cell = document.createElement('td');
        cell.textContent = rec[code] ? String(rec[code].value ?? '') : '';
        row.append(cell);
      }
      table.append(row);
    }
    host.append(table);
    document.getElementById('record-title').textContent = `${S.appName} — 一覧`;
  }

  // --- the record view: kintone renders the form again on every record it shows ------------
  function renderRecord() {
    const host = document.getElementById('record-gaia');
    if (!host) return;
    if (listPage) return renderList();
    host.replaceChildren();
    const rec = record();
    const walk = (rows, into) => {
      for (const row of rows) {
        if (row.type === 'GROUP') {
          const group = document.createElement('fieldset');
          group.className = 'harness-group';
          walk(row.layout, group);
          into.append(group);
          continue;
        }
        const line = document.createElement('div');
        line.className = 'harness-row';
        for (const f of row.fields || []) {
          const cell = document.createElement('div');
          if (f.type === 'SPACER') {
            cell.className = 'harness-spacer';
            if (f.elementId) cell.dataset.elementId = f.elementId;
          } else if (f.code) {
            cell.className = 'harness-field';
            const label = document.createElement('div');
            label.className = 'harness-label';
            label.textContent = (S.fields[f.code] || {}).label || f.code;
            const value = document.createElement('div');
            value.className = 'harness-value';
            value.dataset.code = f.code;
            value.textContent = rec[f.code] ? String(rec[f.code].value ?? '') : '';
            cell.append(label, value);
          }
          line.append(cell);
        }
        into.append(line);
      }
    };
    walk(S.layout, host);
    const title = document.getElementById('record-title');
    if (title) title.textContent = `${S.appName} — ${rec.$id.value}`;
  }

  async function fire(type, extra = {}) {
    const rec = record();
    const event = listPage
      ? // app.record.index.show: the view and the page of records shown (cybozu.dev)
        { type, appId: S.appId, viewId: 5520, viewName: '（すべて）', viewType: 'list', records: clone(S.records.slice(listOffset, listOffset + LIST_SIZE)), offset: listOffset, size: LIST_SIZE, date: null, ...extra }
      : { type, appId: S.appId, recordId: Number(rec.$id.value), record: clone(rec), ...extra };
    window.__harness.fired.push({ type, at: performance.now() });
    let current = event;
    for (const handler of handlers.get(type) || []) {
      const out = handler(current);
      current = out && typeof out.then === 'function' ? await out : out || current;
    }
    return current;
  }
  const detailShow = () => fire(S.mobile ? 'mobile.app.record.detail.show' : 'app.record.detail.show');
  const indexShow = () => fire(S.mobile ? 'mobile.app.record.index.show' : 'app.record.index.show');

  function spaceElement(id) {
    return document.querySelector(`#record-gaia [data-element-id="${CSS.escape(id)}"]`);
  }

  const app = {
    getId: () => S.appId,
    record: {
      getId: () => Number(record().$id.value),
      get: () => ({ record: clone(record()) }),
      getSpaceElement: (id) => spaceElement(id),
      getHeaderMenuSpaceElement: () => document.getElementById('record-header-menu-space'),
    },
    getHeaderMenuSpaceElement: () => document.getElementById('list-header-menu-space'),
  };
  const mobileApp = {
    getId: app.getId,
    record: { getId: app.record.getId, get: app.record.get, getSpaceElement: app.record.getSpaceElement },
    getHeaderSpaceElement: () => document.getElementById('record-header-menu-space'),
  };

  function api(path, method, params, success, failure) {
    const query = method === 'GET' ? `?q=${encodeURIComponent(JSON.stringify(params || {}))}` : '';
    const promise = fetch(`${base}/rest${path}${query}`, {
      method: method === 'GET' ? 'GET' : 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest', 'X-Harness-Method': method },
      body: method === 'GET' ? undefined : JSON.stringify(params || {}),
    }).then(async (r) => {
      const body = await r.json();
      if (!r.ok) throw body;
      return body;
    });
    if (success) promise.then(success, failure || (() => {}));
    else return promise;
  }
  api.url = (path, detectGuestSpace) => (path.endsWith('.json') ? path : `${path}.json`);

  function proxy(pluginId, url, method, headers, data, success, failure) {
    if (pluginId !== S.pluginId) throw new Error('unknown plugin id');
    const promise = jsonFetch('/proxy', { pluginId, url, method, headers, data }).then(async (r) => {
      const answer = await r.json();
      window.__harness.proxyAnswers += 1; // the plugin's own continuation runs right after
      if (answer.failed) throw answer.body; // kintone: rejected with the response body (string)
      return [answer.body, answer.status, answer.headers];
    });
    if (success) promise.then((a) => success(...a), failure || (() => {}));
    else return promise;
  }

  window.kintone = {
    $PLUGIN_ID: S.pluginId,
    events: {
      on(types, handler) {
        for (const type of [].concat(types)) {
          if (!handlers.has(type)) handlers.set(type, []);
          handlers.get(type).push(handler);
        }
      },
      off(types, handler) {
        for (const type of [].concat(types)) {
          handlers.set(type, (handlers.get(type) || []).filter((h) => handler && h !== handler));
        }
        return true;
      },
    },
    getLoginUser: () => clone(S.user),
    getUiVersion: () => 2,
    app,
    mobile: { app: mobileApp },
    api,
    plugin: {
      app: {
        getConfig(pluginId) {
          if (pluginId !== S.pluginId) return null;
          return syncGet('/config');
        },
        setConfig(config, success) {
          onlyOn(['config'], 'setConfig');
          for (const [k, v] of Object.entries(config)) {
            if (typeof v !== 'string') throw new Error(`setConfig: ${k} is not a string`);
          }
          for (const name of S.requiredParams) {
            if (!config[name]) throw new Error(`setConfig: required ${name} is empty`);
          }
          jsonFetch('/config', config).then(() => {
            if (success) success();
            else window.location.assign(`/t/${S.tenant}/plugins?saved=1`);
          });
        },
        getProxyConfig(url, method) {
          onlyOn(['config'], 'getProxyConfig');
          return syncGet(`/proxy-config?url=${encodeURIComponent(url)}&method=${encodeURIComponent(method)}`);
        },
        setProxyConfig(url, method, headers, data, success) {
          onlyOn(['config'], 'setProxyConfig');
          jsonFetch('/proxy-config', { url, method, headers, data }).then(() => {
            if (success) success();
            else window.location.assign(`/t/${S.tenant}/plugins?saved=1`);
          });
        },
        proxy,
      },
    },
  };

  // Test controls: what a user does in kintone's own UI.
  window.__harness = {
    fired: [],
    readyAt: null,
    proxyAnswers: 0,
    boot() {
      renderRecord();
      if (S.page === 'record' || S.page === 'mobile') return detailShow();
      if (listPage) return indexShow();
    },
    /** The list's next page (kintone fires index.show again), or the same page filtered. */
    nextPage() {
      listOffset = listOffset + LIST_SIZE < S.records.length ? listOffset + LIST_SIZE : 0;
      renderList();
      return indexShow();
    },
    next() {
      index = (index + 1) % S.records.length;
      renderRecord();
      return detailShow();
    },
    previous() {
      index = (index - 1 + S.records.length) % S.records.length;
      renderRecord();
      return detailShow();
    },
    save() {
      renderRecord();
      return detailShow();
    },
    show: detailShow,
  };

  // When the call button first becomes enabled (for the detail.show → ready figure).
  new MutationObserver(() => {
    const b = document.getElementById('calltrail-call');
    if (b && !b.disabled && window.__harness.readyAt === null) window.__harness.readyAt = performance.now();
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['disabled'] });
})();
