// The incoming caller's lookup, pure: which caller is a number, the forms and the query, the
// escaping (nothing a caller sends can end a string or widen the query), the narrowing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  callerLabel,
  firstSingleLineText,
  isFieldCode,
  lineQuery,
  lookupPlan,
  matchedRecords,
  normalizePhone,
  parseCaller,
  phoneForms,
  phoneQuery,
  quote,
  wordGroups,
  recordUrl,
  samePhone,
  titleFieldOf,
} from '../src/core/lookup.js';
import { isLineUserId, Kind, PARAM, readIncoming } from '../src/core/incoming-params.js';

const LINE_ID = `U${'0123456789abcdef'.repeat(2)}`;

test('numbers parse to E.164 and the Japanese national form; others do not parse', () => {
  assert.deepEqual(parseCaller('+819011112222'), { e164: '+819011112222', national: '09011112222', last: '2222' });
  assert.deepEqual(parseCaller('03-1234-5678'), { e164: '+81312345678', national: '0312345678', last: '5678' });
  assert.deepEqual(parseCaller('+14155550100'), { e164: '+14155550100', national: null, last: '0100' });
  assert.equal(parseCaller('+81120123456').last, '456'); // 0120-123-456
  for (const junk of ['anonymous', 'Anonymous', '+266696687', 'sip:U1@line.sip.twilio.com', 'client:kintone_7', '', '  ', '+81 90"1111-2222', '090-1111-2222" or phone like "1', '12345', null, undefined, 42]) {
    assert.equal(parseCaller(junk), null, String(junk));
  }
});

test('the caller is shown grouped for reading, or as given', () => {
  assert.equal(callerLabel('+819011112222'), '090-1111-2222');
  assert.equal(callerLabel('+81312345678'), '03-1234-5678');
  assert.equal(callerLabel('+81451234567'), '045-123-4567');
  assert.equal(callerLabel('+815012345678'), '050-1234-5678');
  assert.equal(callerLabel('+81120123456'), '0120-123-456');
  assert.equal(callerLabel('+14155550100'), '+14155550100');
  assert.equal(callerLabel('anonymous'), 'anonymous');
  assert.equal(callerLabel('+266696687'), '+266696687');
  assert.equal(callerLabel('sip:x@y'), 'sip:x@y');
  assert.equal(callerLabel('x'.repeat(100)).length, 65);
});

test('the forms cover the ways a number is written, the unsplit ones included', () => {
  const mobile = phoneForms(parseCaller('+819011112222'));
  for (const form of ['+819011112222', '09011112222', '090-1111-2222', '090 1111 2222', '+81 90 1111 2222', '+81-90-1111-2222', '+81 9011112222', '090-11112222', '(090)1111-2222']) {
    assert.ok(mobile.includes(form), form);
  }
  assert.equal(new Set(mobile).size, mobile.length);
  const tokyo = phoneForms(parseCaller('+81312345678'));
  for (const form of ['0312345678', '03-1234-5678', '03 1234 5678', '+81 3 1234 5678', '(03)1234-5678', '03-12345678']) {
    assert.ok(tokyo.includes(form), form);
  }
  assert.ok(phoneForms(parseCaller('+81451234567')).includes('045-123-4567'));
  // Every form normalises back to the caller: none widens the match.
  for (const caller of ['+819011112222', '+81312345678', '+81451234567', '+14155550100']) {
    const parsed = parseCaller(caller);
    for (const form of phoneForms(parsed)) assert.ok(samePhone(form, parsed), `${caller} ${form}`);
  }
});

test('the phone query: in over the forms, or like on the groups after the first', () => {
  const q = phoneQuery('phone', parseCaller('+819011112222'));
  assert.match(q, /^\(phone in \("\+819011112222", .*"090-1111-2222".*\) or \(phone like "1111" and phone like "2222"\)\) order by \$id asc limit 500$/);
  assert.ok(q.includes('"０９０－１１１１－２２２２"'));
  // A landline's area code is 2 to 5 digits: one alternative per split.
  assert.deepEqual(wordGroups(parseCaller('+81312345678')), [['234', '5678'], ['1234', '5678'], ['34', '5678'], ['4', '5678']]);
  assert.deepEqual(wordGroups(parseCaller('+81120123456')), [['123', '456']]);
  assert.deepEqual(wordGroups(parseCaller('+14155550100')), [['0100']]);
  assert.equal(phoneQuery('phone', null), null);
  assert.equal(phoneQuery('phone" or x', parseCaller('+819011112222')), null);
});

test('quotes and backslashes never end a query string', () => {
  assert.equal(quote('a"b'), '"a\\"b"');
  assert.equal(quote('a\\'), '"a\\\\"');
  assert.equal(quote('\\") or $id > "0'), '"\\\\\\") or $id > \\"0"');
  // Whatever goes in, the literal is one string: unescaped quotes only at both ends.
  for (const value of ['"', '\\', '\\"', '") or phone like ("', 'U" or "1" = "1', '"\\"\\\\"']) {
    const literal = quote(value);
    const inner = literal.slice(1, -1);
    assert.ok(!/(^|[^\\])(\\\\)*"/.test(inner), literal);
    assert.equal(inner.replace(/\\(.)/g, '$1'), value);
  }
  const q = lineQuery('line_id', 'U" or $id > "0');
  assert.equal(q, 'line_id = "U\\" or $id > \\"0" order by $id asc limit 500');
});

test('field codes with query syntax are refused', () => {
  for (const good of ['phone', '電話番号', 'LINEユーザーID', 'a_b$1', '電話・携帯']) assert.ok(isFieldCode(good), good);
  for (const bad of ['', 'a b', 'a"b', 'a)', 'x=1', 'a,b', null]) assert.ok(!isFieldCode(bad), String(bad));
  assert.equal(lineQuery('', LINE_ID), null);
  assert.equal(lineQuery('line_id', ''), null);
});

test('written numbers normalise: digits only, +81 and a leading 0 alike', () => {
  assert.equal(normalizePhone('090-1111-2222'), '09011112222');
  assert.equal(normalizePhone('+81 90 1111 2222'), '09011112222');
  assert.equal(normalizePhone('+81(0)90-1111-2222'), '09011112222');
  assert.equal(normalizePhone('(03) 1234-5678'), '0312345678');
  assert.equal(normalizePhone('０９０－１１１１－２２２２'), '09011112222');
  assert.equal(normalizePhone('+1 (415) 555-0100'), '+14155550100');
  assert.equal(normalizePhone(''), '');
  assert.equal(normalizePhone(null), '');
  const parsed = parseCaller('+819011112222');
  assert.ok(samePhone('090 1111 2222', parsed));
  assert.ok(!samePhone('03-9999-2222', parsed)); // shares only the last group
  assert.ok(!samePhone('090-1111-22221', parsed));
  assert.ok(!samePhone('', parsed));
  // Among other text, as the recorder also accepts.
  assert.ok(samePhone('090-1111-2222 (携帯)', parsed));
  assert.ok(samePhone('会社 03-1234-5678 / 携帯 090-1111-2222', parsed));
  assert.ok(!samePhone('会社 03-1234-5678 / 携帯 090-1111-2223', parsed));
});

test('matched records: those whose value matches, with their ids', () => {
  const parsed = parseCaller('+819011112222');
  const records = [
    { $id: { value: '1' }, phone: { value: '090-1111-2222' } },
    { $id: { value: '2' }, phone: { value: '03-9999-2222' } },
    { $id: { value: '3' }, phone: { value: '+81 90 1111 2222' } },
    { $id: { value: 'x' }, phone: { value: '09011112222' } },
    { phone: { value: '09011112222' } },
  ];
  assert.deepEqual(matchedRecords(records, 'phone', (v) => samePhone(v, parsed)), [
    { id: '1', label: '090-1111-2222' },
    { id: '3', label: '+81 90 1111 2222' },
  ]);
  assert.deepEqual(matchedRecords(undefined, 'phone', () => true), []);
});

test('a record is named by the label field, else by the value it matched', () => {
  const parsed = parseCaller('+819011112222');
  const row = (id, phone, company) => ({ $id: { value: id }, phone: { value: phone }, company: { value: company } });
  const records = [row('1', '090-1111-2222', ' 株式会社サンプル '), row('2', '09011112222', ''), row('3', '090 1111 2222', null)];
  assert.deepEqual(matchedRecords(records, 'phone', (v) => samePhone(v, parsed), 'company'), [
    { id: '1', label: '株式会社サンプル' },
    { id: '2', label: '09011112222' },
    { id: '3', label: '090 1111 2222' },
  ]);
  assert.deepEqual(matchedRecords(records, 'phone', () => true, 'missing')[0], { id: '1', label: '090-1111-2222' });
});

test('the title field: the app settings\' code, else the layout\'s first single-line text', () => {
  assert.equal(titleFieldOf({ titleField: { selectionMode: 'MANUAL', code: '会社名' } }), '会社名');
  for (const settings of [{}, null, { titleField: { selectionMode: 'AUTO', code: '' } }, { titleField: { code: 'a" or 1' } }]) {
    assert.equal(titleFieldOf(settings), null, JSON.stringify(settings));
  }
  const layout = {
    layout: [
      { type: 'ROW', fields: [{ type: 'LINK', code: 'web' }, { type: 'SPACER', elementId: 'x' }] },
      { type: 'SUBTABLE', code: 't', fields: [{ type: 'SINGLE_LINE_TEXT', code: 'in_table' }] },
      { type: 'GROUP', code: 'g', layout: [{ type: 'ROW', fields: [{ type: 'SINGLE_LINE_TEXT', code: '担当者' }] }] },
      { type: 'ROW', fields: [{ type: 'SINGLE_LINE_TEXT', code: '会社名' }] },
    ],
  };
  assert.equal(firstSingleLineText(layout), '担当者');
  assert.equal(firstSingleLineText({ layout: [] }), null);
  assert.equal(firstSingleLineText(undefined), null);
});

test('record links: desktop, mobile, guest space', () => {
  assert.equal(recordUrl('/k/12/', 12, '101'), '/k/12/show#record=101');
  assert.equal(recordUrl('/k/m/12/', 12, '101', true), '/k/m/12/show?record=101');
  assert.equal(recordUrl('/k/guest/5/12/', 12, '101'), '/k/guest/5/12/show#record=101');
});

test('the custom parameters: caller, kind, line_user_id; From when caller is absent', () => {
  assert.deepEqual(PARAM, { CALLER: 'caller', KIND: 'kind', LINE_USER_ID: 'line_user_id' });
  const from = (map) => (name) => map.get(name);
  assert.deepEqual(readIncoming(from(new Map([['caller', '+819011112222'], ['kind', 'number']])), 'client:x'), {
    kind: Kind.NUMBER, caller: '+819011112222', lineUserId: null,
  });
  assert.deepEqual(readIncoming(from(new Map()), '+81312345678'), { kind: 'number', caller: '+81312345678', lineUserId: null });
  assert.deepEqual(readIncoming(from(new Map([['caller', ''], ['kind', 'line'], ['line_user_id', LINE_ID]])), 'sip:x@y'), {
    kind: 'line', caller: '', lineUserId: LINE_ID,
  });
  // A LINE call without caller: the SIP URI in From is not a caller.
  assert.equal(readIncoming(from(new Map([['kind', 'line']])), 'sip:x@y').caller, '');
  assert.equal(readIncoming(from(new Map([['line_user_id', 'U123" or 1']])), '').lineUserId, null);
  assert.ok(isLineUserId(LINE_ID));
  assert.ok(!isLineUserId(LINE_ID.toUpperCase()));
  assert.ok(!isLineUserId(`${LINE_ID};x`));
});

test('the lookup plan: LINE id field for LINE calls, the phone field for numbers, else nothing', () => {
  const config = { phoneField: 'phone', lineUserIdField: 'line' };
  const line = lookupPlan({ kind: 'line', caller: '', lineUserId: LINE_ID }, config);
  assert.equal(line.field, 'line');
  assert.equal(line.query, `line = "${LINE_ID}" order by $id asc limit 500`);
  assert.ok(line.match(` ${LINE_ID} `));
  assert.ok(!line.match(`${LINE_ID}x`));
  assert.equal(lookupPlan({ kind: 'line', caller: '', lineUserId: LINE_ID }, { phoneField: 'phone', lineUserIdField: '' }), null);
  assert.equal(lookupPlan({ kind: 'line', caller: '', lineUserId: null }, config), null);
  const num = lookupPlan({ kind: 'number', caller: '+819011112222', lineUserId: null }, config);
  assert.equal(num.field, 'phone');
  assert.ok(num.match('090-1111-2222'));
  assert.ok(!num.match('03-9999-2222'));
  for (const caller of ['anonymous', '+266696687', 'sip:a@b', '', '090"1111']) {
    assert.equal(lookupPlan({ kind: 'number', caller, lineUserId: null }, config), null, caller);
  }
  assert.equal(lookupPlan({ kind: 'number', caller: '+819011112222', lineUserId: null }, { phoneField: 'a b' }), null);
});
