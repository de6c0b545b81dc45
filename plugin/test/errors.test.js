import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorClass, errorClassOf, knownCodes } from '../src/core/errors.js';
import { LANGUAGES, languageOf, messageKeys, t } from '../src/core/i18n.js';

test('the brief\'s codes land in their class', () => {
  for (const code of [31401, 31402, 31208]) assert.equal(errorClassOf({ code }), ErrorClass.MICROPHONE);
  for (const code of [31005, 31009, 53000]) assert.equal(errorClassOf({ code }), ErrorClass.NETWORK);
  for (const code of [20101, 20104, 31204, 31205]) assert.equal(errorClassOf({ code }), ErrorClass.TOKEN);
  assert.equal(errorClassOf({ code: 31486 }), ErrorClass.CALLEE);
});

test('unknown codes and non-errors are UNKNOWN', () => {
  assert.equal(errorClassOf({ code: 12345 }), ErrorClass.UNKNOWN);
  assert.equal(errorClassOf(null), ErrorClass.UNKNOWN);
  assert.equal(errorClassOf(new Error('x')), ErrorClass.UNKNOWN);
  assert.equal(errorClassOf({ code: '31401' }), ErrorClass.MICROPHONE);
});

test('every class has one short message in each language', () => {
  for (const lang of LANGUAGES) {
    for (const cls of Object.values(ErrorClass)) {
      const text = t(lang, cls, 31999);
      assert.ok(text.length > 5 && text.length < 120, `${lang}/${cls}: ${text}`);
    }
  }
  assert.notEqual(t('ja', 'microphone'), t('en', 'microphone'));
  assert.ok(knownCodes().length >= 20);
});

test('both languages have the same keys; other languages fall back to English', () => {
  assert.deepEqual(messageKeys('ja').sort(), messageKeys('en').sort());
  assert.equal(t('zh', 'call'), t('en', 'call'));
  assert.throws(() => t('en', 'nope'));
});

test('the language follows kintone\'s user setting, or the browser for "auto"', () => {
  assert.equal(languageOf({ language: 'ja' }), 'ja');
  assert.equal(languageOf({ language: 'en' }), 'en');
  assert.equal(languageOf({ language: 'zh' }), 'en');
  assert.equal(languageOf({ language: 'auto' }, 'ja-JP'), 'ja');
  assert.equal(languageOf({ language: 'auto' }, 'en-US'), 'en');
  assert.equal(languageOf(null), 'en');
});
