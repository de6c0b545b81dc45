import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renewalDelayMs, renewalLeadMs, retryDelayMs, RETRY_MAX_MS } from '../src/core/renewal.js';

test('renewal starts min(60 s, ttl/4) before expiry', () => {
  assert.equal(renewalLeadMs(600), 60_000);
  assert.equal(renewalDelayMs(600), 540_000);
  assert.equal(renewalLeadMs(120), 30_000);
  assert.equal(renewalDelayMs(120), 90_000);
  assert.equal(renewalDelayMs(86_400), 86_340_000);
  assert.equal(renewalDelayMs(240), 180_000); // ttl/4 = 60 s: both rules agree
});

test('renewal is never after expiry, for every ttl the gateway allows', () => {
  for (let ttl = 1; ttl <= 86_400; ttl += 7) {
    const delay = renewalDelayMs(ttl);
    const lead = Math.min(60_000, (ttl * 1000) / 4);
    assert.ok(delay >= 0);
    assert.ok(delay <= ttl * 1000 - lead + 1e-9, `ttl ${ttl}`);
  }
});

test('a nonsense ttl renews at once', () => {
  assert.equal(renewalDelayMs(0), 0);
  assert.equal(renewalDelayMs(-5), 0);
  assert.equal(renewalDelayMs(Number.NaN), 0);
});

test('retries back off 5 s, 10 s, 20 s … up to 5 min', () => {
  assert.deepEqual([1, 2, 3, 4].map((n) => retryDelayMs(n)), [5_000, 10_000, 20_000, 40_000]);
  assert.equal(retryDelayMs(30), RETRY_MAX_MS);
  assert.equal(retryDelayMs(0), 5_000);
});

test('jitter adds at most 20 %, never past the cap', () => {
  assert.equal(retryDelayMs(1, null, 0.999), Math.round(5_000 * 1.1998));
  assert.equal(retryDelayMs(20, null, 0.999), RETRY_MAX_MS);
});

test('Retry-After wins when it asks for longer', () => {
  assert.equal(retryDelayMs(1, 30), 30_000);
  assert.equal(retryDelayMs(3, 2), 20_000);
  assert.equal(retryDelayMs(1, 100_000), RETRY_MAX_MS);
});
