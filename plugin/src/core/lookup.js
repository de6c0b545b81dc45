// Finding an incoming caller's customer records with kintone's records query (cybozu.dev
// "複数のレコードを取得する", GET /k/v1/records.json, its query language). Pure.
//
// kintone's `like` on text matches whole words, not substrings: letters and digits in a run are
// one word; `-`, spaces, parentheses and most symbols split words; `+`, `_` and `#` do not. So
// "09011112222" is not found by `like "2222"`, while "090-1111-2222" is. The query is therefore
// `in (…)` over the forms a number is commonly written in (which catches the unsplit ones) or
// `like` on its groups after the first, all of them (which catches the split ones, and keeps
// numbers that merely end alike from crowding the caller out of one answer's records), and the
// answer is then narrowed to the records whose number normalises to the caller's. The recorder
// looks customers up the same way (services/recorder/domain/customer_lookup.py, with
// libphonenumber's area codes; the browser, without them, tries each split of a landline).

import { Kind } from './incoming-params.js';

// Twilio's caller ids for a withheld number ("+266696687" spells ANONYMOUS on a keypad).
const ANONYMOUS = new Set(['anonymous', 'restricted', 'unknown', 'private', 'unavailable', '+266696687']);
const MAX_SHOWN = 64;
export const LOOKUP_LIMIT = 500; // kintone's maximum for one records GET

/**
 * The caller's number: {e164, national, last} (national: the 0-prefixed Japanese number, JP
 * numbers only, else null; last: the last group used with `like`), or null when the caller is
 * anonymous, a SIP URI or anything else that is not a phone number.
 */
export function parseCaller(raw) {
  if (typeof raw !== 'string') return null;
  const trimmed = raw.trim();
  if (trimmed === '' || ANONYMOUS.has(trimmed.toLowerCase())) return null;
  const compact = trimmed.replace(/^tel:/i, '').replace(/[\s\-().]/g, '');
  let e164;
  if (/^\+[1-9]\d{7,14}$/.test(compact)) e164 = compact;
  else if (/^0[1-9]\d{8,9}$/.test(compact)) e164 = `+81${compact.slice(1)}`;
  else return null;
  if (ANONYMOUS.has(e164)) return null;
  let national = null;
  if (e164.startsWith('+81')) {
    const rest = e164.slice(3);
    if (rest.length === 9 || rest.length === 10) national = `0${rest}`;
  }
  const digits = national ?? e164.slice(1);
  const lastLength = national && /^0(120|800)/.test(national) && national.length === 10 ? 3 : 4;
  return { e164, national, last: digits.slice(-lastLength) };
}

/** The 0-prefixed national number in the groups people write it in. */
function groupsOf(national) {
  const n = national;
  if (/^0800/.test(n) && n.length === 11) return [[4, 3, 4]];
  if (n.length === 11) return [[3, 4, 4]]; // 090/080/070/050-xxxx-xxxx
  if (/^0120/.test(n)) return [[4, 3, 3]];
  // Landlines: the area code is 2 to 5 digits with the 0, the subscriber number 4.
  return [[3, 3, 4], [2, 4, 4], [4, 2, 4], [5, 1, 4]];
}

function split(n, sizes) {
  const out = [];
  let at = 0;
  for (const size of sizes) {
    out.push(n.slice(at, at + size));
    at += size;
  }
  return out;
}

/** Where a plain Japanese number's groups usually fall, for reading ("090-1234-5678"). */
export function formatNational(national) {
  if (/^0[36]\d{8}$/.test(national)) return split(national, [2, 4, 4]).join('-'); // Tokyo, Osaka
  return split(national, groupsOf(national)[0]).join('-');
}

/** The caller as the panel shows it: a Japanese number grouped, else E.164, else as given. */
export function callerLabel(raw) {
  const parsed = parseCaller(raw);
  if (parsed && parsed.national) return formatNational(parsed.national);
  if (parsed) return parsed.e164;
  const shown = typeof raw === 'string' ? raw.trim() : '';
  return shown.length > MAX_SHOWN ? `${shown.slice(0, MAX_SHOWN)}…` : shown;
}

/** The forms a number is commonly written in (each distinct), for `in (…)`. */
export function phoneForms(parsed) {
  const forms = new Set([parsed.e164]);
  const n = parsed.national;
  if (n) {
    forms.add(n);
    const intl = n.slice(1);
    forms.add(`+81 ${intl}`);
    forms.add(`+81-${intl}`);
    forms.add(`+81(0)${intl}`);
    for (const sizes of groupsOf(n)) {
      const groups = split(n, sizes);
      const tail = groups.slice(1);
      for (const sep of ['-', ' ']) {
        forms.add(groups.join(sep));
        forms.add(`${groups[0]}${sep}${tail.join('')}`); // 090-12345678
        forms.add(`+81${sep}${[groups[0].slice(1), ...tail].join(sep)}`);
      }
      forms.add(`(${groups[0]})${tail.join('-')}`);
      forms.add(`${groups[0]}(${groups[1]})${groups[2]}`);
    }
    // Typed on a Japanese keyboard: full-width digits and hyphens.
    forms.add(toFullWidth(n));
    forms.add(toFullWidth(split(n, groupsOf(n)[0]).join('-')));
  }
  return [...forms];
}

function toFullWidth(text) {
  return text.replace(/[0-9]/g, (d) => String.fromCharCode(d.charCodeAt(0) + 0xfee0)).replace(/-/g, '－');
}

/** A kintone query string literal: `"` and `\` escaped, so a value can never end the string. */
export function quote(value) {
  return `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

// Field codes (kintone: letters, digits, `_`, `・`, `$`, full-width letters) never hold query
// syntax; a code that does is refused rather than put in a query.
const FIELD_CODE_RE = /^[^\s"'\\()=!<>,]+$/u;
export function isFieldCode(code) {
  return typeof code === 'string' && FIELD_CODE_RE.test(code);
}

/** The records query for a caller's number, or null when there is nothing to look up. */
export function phoneQuery(field, parsed) {
  if (!parsed || !isFieldCode(field)) return null;
  const forms = phoneForms(parsed).map(quote).join(', ');
  const words = wordGroups(parsed)
    .map((groups) => `(${groups.map((g) => `${field} like ${quote(g)}`).join(' and ')})`)
    .join(' or ');
  return `(${field} in (${forms}) or ${words}) order by $id asc limit ${LOOKUP_LIMIT}`;
}

/**
 * What `like` asks for: per way of grouping the number, its groups after the first (all must be
 * words of the value). A Japanese number has one grouping when its prefix says it (090, 050,
 * 0120 …), else one per area-code length; other numbers: the last four digits.
 */
export function wordGroups(parsed) {
  if (!parsed.national) return [[parsed.last]];
  return groupsOf(parsed.national).map((sizes) => split(parsed.national, sizes).slice(1));
}

/** The records query for a LINE user id, or null when there is nothing to look up. */
export function lineQuery(field, lineUserId) {
  if (!isFieldCode(field) || typeof lineUserId !== 'string' || lineUserId === '') return null;
  return `${field} = ${quote(lineUserId)} order by $id asc limit ${LOOKUP_LIMIT}`;
}

/**
 * A written number reduced to compare: digits only (full-width ones too), Japanese numbers as
 * their 0-prefixed national digits (+81 90…, +81 (0)90…), other international numbers as
 * "+digits". '' when there are no digits.
 */
export function normalizePhone(value) {
  if (value == null) return '';
  const s = String(value).normalize('NFKC').trim();
  const digits = s.replace(/\D/g, '');
  if (digits === '') return '';
  if (s.startsWith('+')) {
    if (digits.startsWith('810')) return digits.slice(2);
    if (digits.startsWith('81')) return `0${digits.slice(2)}`;
    return `+${digits}`;
  }
  return digits;
}

function callerKey(parsed) {
  return parsed.national ?? parsed.e164;
}

// A number written among other text: "090-1111-2222 (携帯)", "携帯 090-… / 会社 03-…".
const NUMBER_IN_TEXT = /\+?\d[\d\s\-()]{5,}\d/g;

/** Whether a record's phone value is the caller's number: as its whole value, or among text. */
export function samePhone(value, parsed) {
  if (!parsed || value == null) return false;
  const key = callerKey(parsed);
  if (normalizePhone(value) === key) return true;
  const text = String(value).normalize('NFKC').slice(0, 256);
  return (text.match(NUMBER_IN_TEXT) ?? []).some((part) => normalizePhone(part) === key);
}

/**
 * The records of a lookup answer to show: [{id, label}] in the answer's order. byField: the
 * field the lookup was made on; match(value): whether its value is the caller's; labelField:
 * the field that names a record (labelFieldOf), whose value is the label, or byField's value
 * when it is empty or unknown.
 */
export function matchedRecords(records, byField, match, labelField = null) {
  const out = [];
  for (const record of records ?? []) {
    const id = record && record.$id ? String(record.$id.value) : '';
    const value = record && record[byField] ? record[byField].value : null;
    if (!/^\d+$/.test(id) || !match(value)) continue;
    const name = labelField && record[labelField] ? record[labelField].value : null;
    const label = typeof name === 'string' && name.trim() !== '' ? name.trim() : value;
    out.push({ id, label: label == null ? '' : String(label) });
  }
  return out;
}

/**
 * The field that names the app's records: the record title of the app's settings
 * (GET /k/v1/app/settings.json → titleField.code, cybozu.dev "アプリの一般設定を取得する"), or
 * null when kintone gives none (older kintone, or no code). Then firstSingleLineText(layout).
 */
export function titleFieldOf(settings) {
  const code = settings && settings.titleField ? settings.titleField.code : null;
  return typeof code === 'string' && isFieldCode(code) ? code : null;
}

/**
 * The first single-line text field of the form, in the layout's order (GET
 * /k/v1/app/form/layout.json: rows, and the rows of groups; a table's fields name no record), or
 * null.
 */
export function firstSingleLineText(layout) {
  for (const row of (layout && layout.layout) ?? []) {
    if (row.type === 'ROW') {
      const field = (row.fields ?? []).find((f) => f.type === 'SINGLE_LINE_TEXT' && isFieldCode(f.code));
      if (field) return field.code;
    } else if (row.type === 'GROUP') {
      const inner = firstSingleLineText({ layout: row.layout });
      if (inner) return inner;
    }
  }
  return null;
}

/**
 * The record's page: /k/<app>/show#record=<id> (desktop), /k/m/<app>/show?record=<id> (mobile),
 * inside /k/guest/<space>/ when the page is in a guest space.
 */
export function recordUrl(pathname, appId, recordId, mobile = false) {
  const guest = /^\/k\/guest\/\d+\//.exec(String(pathname ?? ''));
  const base = guest ? guest[0] : '/k/';
  const app = encodeURIComponent(String(appId));
  const id = encodeURIComponent(String(recordId));
  return mobile ? `${base}m/${app}/show?record=${id}` : `${base}${app}/show#record=${id}`;
}

/**
 * The lookup for one incoming call (readIncoming's {kind, caller, lineUserId}) under the plugin
 * settings: {query, field, match(value)} or null when there is nothing to look up (an anonymous
 * or unparseable caller, a LINE call without an id or without lineUserIdField, no field set).
 */
export function lookupPlan(info, config) {
  if (info.kind === Kind.LINE || info.lineUserId) {
    const field = config.lineUserIdField;
    const query = info.lineUserId && field ? lineQuery(field, info.lineUserId) : null;
    if (query) return { query, field, match: (value) => String(value ?? '').trim() === info.lineUserId };
    if (info.kind === Kind.LINE) return null;
  }
  const parsed = parseCaller(info.caller);
  const query = config.phoneField ? phoneQuery(config.phoneField, parsed) : null;
  return query ? { query, field: config.phoneField, match: (value) => samePhone(value, parsed) } : null;
}
