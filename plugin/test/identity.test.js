import assert from 'node:assert/strict';
import { test } from 'node:test';
import { identityFor, isValidIdentity } from '../src/core/identity.js';

test('identity is kintone_<id> of the login user', () => {
  assert.equal(identityFor({ id: '7', code: 'sato' }), 'kintone_7');
  assert.equal(identityFor({ id: 12345 }), 'kintone_12345');
});

test('no identity without a usable id', () => {
  assert.equal(identityFor(null), null);
  assert.equal(identityFor({}), null);
  assert.equal(identityFor({ id: '' }), null);
  assert.equal(identityFor({ id: 'a b' }), null);
  assert.equal(identityFor({ id: '7<script>' }), null);
});

test('identity length follows the gateway rule (1..121)', () => {
  assert.ok(isValidIdentity('kintone_' + '1'.repeat(113)));
  assert.ok(!isValidIdentity('kintone_' + '1'.repeat(114)));
  assert.equal(identityFor({ id: '1'.repeat(114) }), null);
});
