import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTokenAnswer, TokenFailure } from '../src/core/token.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

test('a gateway answer becomes token, ttl, edge', () => {
  const body = JSON.stringify({ identity: 'kintone_7', token: JWT, ttl: 600, edge: 'tokyo', incoming: true });
  assert.deepEqual(parseTokenAnswer(body, 200, {}), {
    ok: true, token: JWT, ttl: 600, edge: 'tokyo', incoming: true, recording: false, identity: 'kintone_7',
  });
});

test('recording: only a literal true says calls are recorded', () => {
  const answer = (recording) => parseTokenAnswer(JSON.stringify({ token: JWT, ttl: 600, recording }), 200, {});
  assert.equal(answer(true).recording, true);
  assert.equal(answer(false).recording, false);
  assert.equal(answer('true').recording, false);
  assert.equal(answer(1).recording, false);
  assert.equal(parseTokenAnswer(JSON.stringify({ token: JWT, ttl: 600 }), 200, {}).recording, false); // an older gateway
});

test('statuses map to failures, with Retry-After', () => {
  assert.equal(parseTokenAnswer('{}', 401, {}).failure, TokenFailure.KEY_REFUSED);
  assert.equal(parseTokenAnswer('{}', 403, {}).failure, TokenFailure.KEY_REFUSED);
  const limited = parseTokenAnswer('{}', 429, { 'retry-after': '17' });
  assert.equal(limited.failure, TokenFailure.RATE_LIMITED);
  assert.equal(limited.retryAfterS, 17);
  assert.equal(parseTokenAnswer('', 502, {}).failure, TokenFailure.SERVER);
  assert.equal(parseTokenAnswer('', 400, {}).failure, TokenFailure.REJECTED);
});

test('HTML or a JSON without a token is a bad answer', () => {
  assert.equal(parseTokenAnswer('<!doctype html><p>login', 200, {}).failure, TokenFailure.BAD_ANSWER);
  assert.equal(parseTokenAnswer('{"token": 5, "ttl": 600}', 200, {}).failure, TokenFailure.BAD_ANSWER);
  assert.equal(parseTokenAnswer('{"token": "abc", "ttl": 600}', 200, {}).failure, TokenFailure.BAD_ANSWER);
  assert.equal(parseTokenAnswer(`{"token": "${JWT}"}`, 200, {}).failure, TokenFailure.BAD_ANSWER);
  assert.equal(parseTokenAnswer('null', 200, {}).failure, TokenFailure.BAD_ANSWER);
});

test('a failure never carries the body', () => {
  const result = parseTokenAnswer('secret-echo', 401, {});
  assert.ok(!JSON.stringify(result).includes('secret-echo'));
});
