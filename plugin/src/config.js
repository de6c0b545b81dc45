// The plugin settings page (administrators only). The key goes only to
// kintone.plugin.app.setProxyConfig (cybozu.dev "外部APIの実行に必要な情報をプラグインへ保存する"):
// kintone's servers add it to the plugin's proxied requests. setConfig gets tokenUrl,
// phoneField, spaceElementId and lineUserIdField, nothing else (CONTRACT §8, §9).

import { ct } from './core/config-i18n.js';
import { languageOf } from './core/i18n.js';
import {
  blankSpaces,
  configToStore,
  KEY_HEADER,
  PROXY_METHOD,
  phoneFields,
  settingsProblems,
  textFields,
} from './core/settings.js';

const PLUGIN_ID = kintone.$PLUGIN_ID;
const lang = languageOf(kintone.getLoginUser());
const stored = kintone.plugin.app.getConfig(PLUGIN_ID) || {};
const $ = (id) => document.getElementById(id);
const form = $('calltrail-config-form');
const inputs = {
  tokenUrl: form.elements.namedItem('tokenUrl'),
  apiKey: form.elements.namedItem('apiKey'),
  phoneField: form.elements.namedItem('phoneField'),
  spaceElementId: form.elements.namedItem('spaceElementId'),
  lineUserIdField: form.elements.namedItem('lineUserIdField'),
};
let fieldCodes = [];
let spaceIds = [];
let textFieldCodes = [];

/** Whether kintone holds a key for this URL. The value itself is never put on the page. */
function keyStoredFor(url) {
  if (!url) return false;
  const proxy = kintone.plugin.app.getProxyConfig(url, PROXY_METHOD);
  return Boolean(proxy && proxy.headers && proxy.headers[KEY_HEADER]);
}

function storedKeyFor(url) {
  const proxy = url ? kintone.plugin.app.getProxyConfig(url, PROXY_METHOD) : null;
  return (proxy && proxy.headers && proxy.headers[KEY_HEADER]) || '';
}

function setProxyConfig(url, headers) {
  // With a callback kintone stays on this page (without one it leaves for the plugin list).
  return new Promise((resolve) => {
    kintone.plugin.app.setProxyConfig(url, PROXY_METHOD, headers, {}, () => resolve());
  });
}

function option(value, text) {
  const node = document.createElement('option');
  node.value = value;
  node.textContent = text;
  return node;
}

function renderTexts() {
  $('calltrail-config').setAttribute('lang', lang);
  for (const node of document.querySelectorAll('#calltrail-config [data-text]')) {
    node.textContent = ct(lang, node.dataset.text);
  }
  $('calltrail-key-status').textContent = ct(lang, keyStoredFor(stored.tokenUrl) ? 'keySet' : 'keyNotSet');
}

function fillSelects(properties, layout) {
  const fields = phoneFields(properties);
  fieldCodes = fields.map((f) => f.code);
  spaceIds = blankSpaces(layout);
  const phone = inputs.phoneField;
  phone.replaceChildren(option('', ct(lang, 'choose')));
  for (const f of fields) {
    const warning = f.type === 'NUMBER' ? ` — ${ct(lang, 'numberWarning')}` : '';
    phone.append(option(f.code, `${f.label} (${f.code})${warning}`));
  }
  if (stored.phoneField && !fieldCodes.includes(stored.phoneField)) {
    phone.append(option(stored.phoneField, ct(lang, 'missingField', stored.phoneField)));
  }
  phone.value = stored.phoneField || '';
  const space = inputs.spaceElementId;
  space.replaceChildren(option('', ct(lang, 'header')));
  for (const id of spaceIds) space.append(option(id, ct(lang, 'space', id)));
  if (stored.spaceElementId && !spaceIds.includes(stored.spaceElementId)) {
    space.append(option(stored.spaceElementId, ct(lang, 'missingField', stored.spaceElementId)));
  }
  space.value = stored.spaceElementId || '';
  const texts = textFields(properties);
  textFieldCodes = texts.map((f) => f.code);
  const line = inputs.lineUserIdField;
  line.replaceChildren(option('', ct(lang, 'noLineField')));
  for (const f of texts) line.append(option(f.code, `${f.label} (${f.code})`));
  if (stored.lineUserIdField && !textFieldCodes.includes(stored.lineUserIdField)) {
    line.append(option(stored.lineUserIdField, ct(lang, 'missingField', stored.lineUserIdField)));
  }
  line.value = stored.lineUserIdField || '';
}

function showProblems(problems) {
  for (const name of Object.keys(inputs)) {
    $(`calltrail-error-${name}`).textContent = '';
    inputs[name].removeAttribute('aria-invalid');
  }
  const message = $('calltrail-config-message');
  message.replaceChildren();
  if (problems.length === 0) return;
  message.append(ct(lang, 'fix'));
  const list = document.createElement('ul');
  for (const { name, key } of problems) {
    const text = ct(lang, key);
    const error = $(`calltrail-error-${name}`);
    error.textContent = error.textContent ? `${error.textContent} ${text}` : text;
    inputs[name].setAttribute('aria-invalid', 'true');
    const item = document.createElement('li');
    item.textContent = text;
    list.append(item);
  }
  message.append(list);
  inputs[problems[0].name].focus();
}

async function save(event) {
  event.preventDefault();
  const values = {
    tokenUrl: inputs.tokenUrl.value.trim(),
    apiKey: inputs.apiKey.value.trim(),
    phoneField: inputs.phoneField.value,
    spaceElementId: inputs.spaceElementId.value,
    lineUserIdField: inputs.lineUserIdField.value,
  };
  const oldUrl = stored.tokenUrl || '';
  const urlChanged = oldUrl !== '' && oldUrl !== values.tokenUrl;
  const problems = settingsProblems(values, {
    keySet: keyStoredFor(values.tokenUrl),
    urlChanged,
    previousKeySet: urlChanged && keyStoredFor(oldUrl),
    fieldCodes,
    spaceIds,
    textFieldCodes,
  });
  showProblems(problems);
  if (problems.length > 0) return;
  const saveButton = $('calltrail-save');
  saveButton.disabled = true;
  saveButton.textContent = ct(lang, 'saving');
  // A blank key keeps the stored one: after a URL change, the old URL's key moves along.
  const key = values.apiKey || (urlChanged && !keyStoredFor(values.tokenUrl) ? storedKeyFor(oldUrl) : '');
  inputs.apiKey.value = '';
  if (urlChanged) {
    // kintone has no call to delete a proxy entry: overwriting it with no headers clears it.
    await setProxyConfig(oldUrl, {});
  }
  if (key) await setProxyConfig(values.tokenUrl, { [KEY_HEADER]: key });
  // No callback: kintone returns to the app's plugin list and says the settings were saved.
  kintone.plugin.app.setConfig(configToStore(values));
}

async function load() {
  renderTexts();
  inputs.tokenUrl.value = stored.tokenUrl || '';
  form.addEventListener('submit', save);
  $('calltrail-cancel').addEventListener('click', () => window.history.back());
  try {
    const app = kintone.app.getId();
    // The preview (test environment) form: an administrator may have just added the field.
    const [fields, layout] = await Promise.all([
      kintone.api(kintone.api.url('/k/v1/preview/app/form/fields.json', true), 'GET', { app }),
      kintone.api(kintone.api.url('/k/v1/preview/app/form/layout.json', true), 'GET', { app }),
    ]);
    fillSelects(fields.properties, layout.layout);
  } catch {
    $('calltrail-config-message').textContent = ct(lang, 'loadFailed');
  }
}

load();
