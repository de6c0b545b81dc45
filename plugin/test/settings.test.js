import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blankSpaces, configToStore, phoneFields, settingsProblems, textFields, tokenUrlProblem } from '../src/core/settings.js';

test('token URLs: https ending in /token, or http on 127.0.0.1', () => {
  assert.equal(tokenUrlProblem('https://calltrail.example.com/token'), null);
  assert.equal(tokenUrlProblem(' https://example.com/calltrail/token '), null);
  assert.equal(tokenUrlProblem('http://127.0.0.1:8080/token'), null);
  assert.equal(tokenUrlProblem('http://calltrail.example.com/token'), 'urlNotHttps');
  assert.equal(tokenUrlProblem('http://localhost.evil.com/token'), 'urlNotHttps');
  assert.equal(tokenUrlProblem('ftp://example.com/token'), 'urlNotHttps');
  assert.equal(tokenUrlProblem('https://example.com/tokens'), 'urlNotToken');
  assert.equal(tokenUrlProblem('https://example.com/'), 'urlNotToken');
  assert.equal(tokenUrlProblem('https://example.com/token?x=1'), 'urlQuery');
  assert.equal(tokenUrlProblem('https://u:p@example.com/token'), 'urlCredentials');
  assert.equal(tokenUrlProblem('example.com/token'), 'urlInvalid');
  assert.equal(tokenUrlProblem(''), 'urlMissing');
  assert.equal(tokenUrlProblem(undefined), 'urlMissing');
});

const properties = {
  tel: { type: 'SINGLE_LINE_TEXT', code: 'tel', label: '電話番号' },
  link: { type: 'LINK', code: 'link', label: 'Link' },
  num: { type: 'NUMBER', code: 'num', label: 'Number' },
  memo: { type: 'MULTI_LINE_TEXT', code: 'memo', label: 'Memo' },
  rec: { type: 'RECORD_NUMBER', code: 'rec', label: 'Record number' },
  table: { type: 'SUBTABLE', code: 'table', fields: { t: { type: 'SINGLE_LINE_TEXT', code: 't' } } },
};

test('phone fields: the types that can hold a number, top level only', () => {
  assert.deepEqual(phoneFields(properties).map((f) => f.code).sort(), ['link', 'num', 'tel']);
  assert.deepEqual(phoneFields(undefined), []);
});

test('blank spaces, including inside groups, in form order', () => {
  const layout = [
    { type: 'ROW', fields: [{ type: 'SINGLE_LINE_TEXT', code: 'tel' }, { type: 'SPACER', elementId: 'call' }] },
    { type: 'ROW', fields: [{ type: 'SPACER', elementId: '' }, { type: 'LABEL', label: 'x' }] },
    { type: 'SUBTABLE', code: 'table', fields: [] },
    { type: 'GROUP', code: 'g', layout: [{ type: 'ROW', fields: [{ type: 'SPACER', elementId: 'inner' }] }] },
  ];
  assert.deepEqual(blankSpaces(layout), ['call', 'inner']);
});

const context = { keySet: false, urlChanged: false, previousKeySet: false, fieldCodes: ['tel'], spaceIds: ['call'] };
const good = { tokenUrl: 'https://gw.example.com/token', apiKey: 'k-123', phoneField: 'tel', spaceElementId: 'call' };

test('a complete first setup has no problems', () => {
  assert.deepEqual(settingsProblems(good, context), []);
  assert.deepEqual(settingsProblems({ ...good, spaceElementId: '' }, context), []);
});

test('first setup refuses an empty key and a non-https URL', () => {
  const problems = settingsProblems({ ...good, apiKey: '  ', tokenUrl: 'http://gw.example.com/token' }, context);
  assert.deepEqual(problems, [{ name: 'tokenUrl', key: 'urlNotHttps' }, { name: 'apiKey', key: 'keyMissing' }]);
});

test('a blank key keeps the stored one; after a URL change the old one counts', () => {
  assert.deepEqual(settingsProblems({ ...good, apiKey: '' }, { ...context, keySet: true }), []);
  assert.deepEqual(settingsProblems({ ...good, apiKey: '' }, { ...context, urlChanged: true, previousKeySet: true }), []);
  assert.deepEqual(settingsProblems({ ...good, apiKey: '' }, { ...context, urlChanged: true, keySet: true }), []);
  assert.equal(settingsProblems({ ...good, apiKey: '' }, { ...context, urlChanged: true }).length, 1);
});

test('fields and spaces must exist; keys are printable ASCII', () => {
  assert.deepEqual(settingsProblems({ ...good, phoneField: '' }, context), [{ name: 'phoneField', key: 'phoneMissing' }]);
  assert.deepEqual(settingsProblems({ ...good, phoneField: 'gone' }, context), [{ name: 'phoneField', key: 'phoneUnknown' }]);
  assert.deepEqual(settingsProblems({ ...good, spaceElementId: 'gone' }, context), [{ name: 'spaceElementId', key: 'spaceUnknown' }]);
  assert.deepEqual(settingsProblems({ ...good, apiKey: 'a b' }, context), [{ name: 'apiKey', key: 'keyInvalid' }]);
});

test('setConfig gets exactly the contract keys, never the key', () => {
  const stored = configToStore({ ...good, tokenUrl: ' https://gw.example.com/token ' });
  assert.deepEqual(Object.keys(stored).sort(), ['lineUserIdField', 'phoneField', 'spaceElementId', 'tokenUrl']);
  assert.equal(stored.lineUserIdField, ''); // older forms without it store '' (no LINE lookup)
  assert.equal(stored.tokenUrl, 'https://gw.example.com/token');
  assert.ok(!JSON.stringify(stored).includes('k-123'));
});

test('the LINE user id field: optional, a single-line text field of the form', () => {
  const properties = {
    line: { type: 'SINGLE_LINE_TEXT', code: 'line', label: 'LINEユーザーID' },
    memo: { type: 'MULTI_LINE_TEXT', code: 'memo', label: 'メモ' },
    n: { type: 'NUMBER', code: 'n', label: '数' },
  };
  assert.deepEqual(textFields(properties).map((f) => f.code), ['line']);
  const ctx = { ...context, textFieldCodes: ['line'] };
  assert.deepEqual(settingsProblems({ ...good, lineUserIdField: '' }, ctx), []);
  assert.deepEqual(settingsProblems({ ...good, lineUserIdField: 'line' }, ctx), []);
  assert.deepEqual(settingsProblems({ ...good, lineUserIdField: 'memo' }, ctx), [{ name: 'lineUserIdField', key: 'lineFieldUnknown' }]);
  assert.equal(configToStore({ ...good, lineUserIdField: 'line' }).lineUserIdField, 'line');
});
