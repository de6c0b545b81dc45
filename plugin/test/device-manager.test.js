// The Device manager against a fake kintone proxy, a fake Device and a manual clock: the edge's
// timing rules without a browser (the browser tests run the same code in Chromium).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDeviceManager } from '../src/edge/device-manager.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';

function clock() {
  let now = 0;
  let seq = 0;
  const pending = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) { const id = ++seq; pending.set(id, { at: now + ms, fn }); return id; },
    clearTimeout(id) { pending.delete(id); },
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        const next = [...pending.entries()].sort((a, b) => a[1].at - b[1].at)[0];
        if (!next || next[1].at > until) break;
        pending.delete(next[0]);
        now = next[1].at;
        next[1].fn();
        await new Promise((r) => setImmediate(r));
      }
      now = until;
      await new Promise((r) => setImmediate(r));
    },
  };
}

function setup(answers, { registerError = null } = {}) {
  const requests = [];
  const devices = [];
  const kintone = {
    getLoginUser: () => ({ id: '7', language: 'ja' }),
    plugin: { app: { proxy: async (...args) => { requests.push(args); return answers(requests.length); } } },
  };
  class Device {
    constructor(token, options) { this.token = token; this.options = options; this.updates = []; this.handlers = {}; this.registers = 0; devices.push(this); }
    register() { this.registers += 1; return registerError ? Promise.reject(registerError) : Promise.resolve(); }
    on(name, fn) { this.handlers[name] = fn; }
    updateToken(token) { this.updates.push(token); }
    connect(options) { return Promise.resolve({ options }); }
  }
  Device.isSupported = true;
  const timers = clock();
  const events = [];
  const manager = createDeviceManager({ kintone, pluginId: 'pid', tokenUrl: 'https://gw.example.com/token', Twilio: { Device }, timers, now: timers.now, random: () => 0 });
  manager.subscribe((e) => events.push(e));
  return { manager, requests, devices, timers, events };
}

const ok = (ttl = 600, extra = {}) => [JSON.stringify({ token: JWT, ttl, edge: 'tokyo', identity: 'kintone_7', ...extra }), 200, {}];

test('one request, as kintone_<id> through the plugin proxy; the Device gets the edge', async () => {
  const { manager, requests, devices, events, timers } = setup(() => ok());
  manager.start();
  manager.start();
  await timers.advance(0);
  assert.equal(requests.length, 1);
  assert.deepEqual(requests[0], ['pid', 'https://gw.example.com/token', 'POST', { 'Content-Type': 'application/json' }, { identity: 'kintone_7' }]);
  assert.equal(devices.length, 1);
  assert.deepEqual(devices[0].options, { edge: 'tokyo' });
  assert.deepEqual(events.map((e) => e.type), ['ready']);
});

test('renewal at ttl - min(60 s, ttl/4), handed to the same Device', async () => {
  const { manager, requests, devices, timers } = setup(() => ok(600));
  manager.start();
  await timers.advance(0);
  await timers.advance(539_999);
  assert.equal(requests.length, 1);
  await timers.advance(1);
  assert.equal(requests.length, 2);
  assert.equal(devices.length, 1);
  assert.equal(devices[0].updates.length, 1);
});

test('a refused key: unavailable, then retries at 5 s, 10 s, 20 s — no loop', async () => {
  const { manager, requests, events, timers } = setup(() => ['{"error":"x"}', 401, {}]);
  manager.start();
  await timers.advance(0);
  assert.deepEqual(events.at(-1), { type: 'unavailable', problem: { key: 'keyRefused', args: [] } });
  await timers.advance(4_999);
  assert.equal(requests.length, 1);
  await timers.advance(1);
  assert.equal(requests.length, 2);
  await timers.advance(10_000);
  assert.equal(requests.length, 3);
  await timers.advance(19_999);
  assert.equal(requests.length, 3);
  await timers.advance(1);
  assert.equal(requests.length, 4);
});

test('a failed renewal keeps the still-valid token usable, then expires it', async () => {
  const { manager, events, timers } = setup((n) => (n === 1 ? ok(600) : ['', 503, {}]));
  manager.start();
  await timers.advance(0);
  await timers.advance(540_000);
  assert.equal(events.at(-1).type, 'problem'); // still ready, with a message
  await timers.advance(60_000);
  assert.equal(events.at(-1).type, 'unavailable');
});

test('a proxy failure is "unreachable"', async () => {
  const { manager, events, timers } = setup(() => { throw new Error('<html>'); });
  manager.start();
  await timers.advance(0);
  assert.deepEqual(events.at(-1).problem, { key: 'unreachable', args: [] });
});

test('incoming: true registers the Device once per page load, across renewals', async () => {
  const { manager, devices, events, timers } = setup(() => ok(600, { incoming: true }));
  manager.start();
  await timers.advance(0);
  assert.equal(devices[0].registers, 1);
  assert.equal(manager.registered, true);
  await timers.advance(540_000); // renewal: updateToken, no second register()
  assert.equal(devices[0].updates.length, 1);
  assert.equal(devices[0].registers, 1);
  assert.deepEqual(events.map((e) => e.type), ['ready', 'registered', 'ready']);
});

test('incoming false or missing: never registered', async () => {
  for (const extra of [{ incoming: false }, {}, { incoming: 'true' }]) {
    const { manager, devices, timers } = setup(() => ok(600, extra));
    manager.start();
    await timers.advance(0);
    assert.equal(devices[0].registers, 0, JSON.stringify(extra));
    assert.equal(manager.registered, false);
  }
});

test('a failed registration is one problem message', async () => {
  const { manager, devices, events, timers } = setup(() => ok(600, { incoming: true }), { registerError: Object.assign(new Error('x'), { code: 31005 }) });
  manager.start();
  await timers.advance(0);
  assert.equal(devices[0].registers, 1);
  assert.deepEqual(events.at(-1), { type: 'problem', problem: { key: 'network', args: [31005] } });
});

test('ready says whether calls are recorded, as the last token answered', async () => {
  let recording = true;
  const { manager, events, timers } = setup(() => ok(600, { recording }));
  manager.start();
  await timers.advance(0);
  assert.deepEqual(events.at(-1), { type: 'ready', recording: true });
  assert.equal(manager.recording, true);
  recording = false;
  await timers.advance(600_000);
  assert.deepEqual(events.at(-1), { type: 'ready', recording: false });
  assert.equal(manager.recording, false);
});
