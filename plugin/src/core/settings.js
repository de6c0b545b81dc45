// The settings page's rules, pure: what a token URL may be, which fields can hold a phone
// number, where the button can go, and what a save must fix first.

// lineUserIdField (issue 11, optional): the customer's LINE user id field, for the incoming-call
// lookup of LINE calls; '' (or absent, as older settings are) = no LINE lookup.
export const CONFIG_KEYS = Object.freeze(['tokenUrl', 'phoneField', 'spaceElementId', 'lineUserIdField']);
export const PROXY_METHOD = 'POST';
export const KEY_HEADER = 'X-Calltrail-Key';

// Field types (kintone "フォームの設計情報を取得する" field types) whose value can be a phone
// number. NUMBER drops a leading 0, so the page warns about it next to the option.
export const PHONE_FIELD_TYPES = Object.freeze(['SINGLE_LINE_TEXT', 'LINK', 'NUMBER']);

const LOCAL_HOSTS = new Set(['127.0.0.1']);

/** null when the URL is acceptable, else the i18n key of what to fix. */
export function tokenUrlProblem(raw) {
  const value = typeof raw === 'string' ? raw.trim() : '';
  if (value === '') return 'urlMissing';
  let url;
  try {
    url = new URL(value);
  } catch {
    return 'urlInvalid';
  }
  if (url.username || url.password) return 'urlCredentials';
  const local = url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !local) return 'urlNotHttps';
  if (url.search || url.hash) return 'urlQuery';
  if (!url.pathname.endsWith('/token')) return 'urlNotToken';
  return null;
}

/** The app's top-level fields that can hold a phone number: [{code, label, type}], by label. */
export function phoneFields(properties) {
  return Object.values(properties ?? {})
    .filter((f) => f && PHONE_FIELD_TYPES.includes(f.type))
    .map((f) => ({ code: f.code, label: f.label ?? f.code, type: f.type }))
    .sort((a, b) => a.label.localeCompare(b.label) || a.code.localeCompare(b.code));
}

/** The app's top-level single-line text fields (a LINE user id's home): [{code, label, type}]. */
export function textFields(properties) {
  return Object.values(properties ?? {})
    .filter((f) => f && f.type === 'SINGLE_LINE_TEXT')
    .map((f) => ({ code: f.code, label: f.label ?? f.code, type: f.type }))
    .sort((a, b) => a.label.localeCompare(b.label) || a.code.localeCompare(b.code));
}

/** Element IDs of the form's Blank space fields (SPACER with an elementId), in form order. */
export function blankSpaces(layout) {
  const out = [];
  const walk = (rows) => {
    for (const row of rows ?? []) {
      if (row.type === 'GROUP') walk(row.layout);
      for (const field of row.fields ?? []) {
        if (field.type === 'SPACER' && field.elementId) out.push(field.elementId);
      }
    }
  };
  walk(layout);
  return out;
}

/**
 * Problems of a save, [{name, key}] (name: the input's name; key: the i18n message key).
 * form: {tokenUrl, apiKey, phoneField, spaceElementId, lineUserIdField}; context: {keySet (a key
 * is stored for the new URL), urlChanged, previousKeySet (a key is stored for the old URL),
 * fieldCodes, spaceIds, textFieldCodes}.
 */
export function settingsProblems(form, context) {
  const problems = [];
  const urlKey = tokenUrlProblem(form.tokenUrl);
  if (urlKey) problems.push({ name: 'tokenUrl', key: urlKey });
  const apiKey = typeof form.apiKey === 'string' ? form.apiKey.trim() : '';
  // A blank key keeps the stored one; after a URL change the old URL's key moves to the new one.
  const hasStoredKey = context.keySet || (context.urlChanged && context.previousKeySet);
  if (apiKey === '' && !hasStoredKey) problems.push({ name: 'apiKey', key: 'keyMissing' });
  if (apiKey !== '' && !/^[\x21-\x7e]+$/.test(apiKey)) {
    problems.push({ name: 'apiKey', key: 'keyInvalid' });
  }
  if (!form.phoneField) problems.push({ name: 'phoneField', key: 'phoneMissing' });
  else if (!(context.fieldCodes ?? []).includes(form.phoneField)) {
    problems.push({ name: 'phoneField', key: 'phoneUnknown' });
  }
  if (form.spaceElementId && !(context.spaceIds ?? []).includes(form.spaceElementId)) {
    problems.push({ name: 'spaceElementId', key: 'spaceUnknown' });
  }
  if (form.lineUserIdField && !(context.textFieldCodes ?? []).includes(form.lineUserIdField)) {
    problems.push({ name: 'lineUserIdField', key: 'lineFieldUnknown' });
  }
  return problems;
}

/** The config to store with setConfig: exactly the contract's keys, all strings. */
export function configToStore(form) {
  return {
    tokenUrl: form.tokenUrl.trim(),
    phoneField: String(form.phoneField ?? ''),
    spaceElementId: String(form.spaceElementId ?? ''),
    lineUserIdField: String(form.lineUserIdField ?? ''),
  };
}
