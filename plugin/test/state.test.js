import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answered, Call, Device, formatDuration, initialState, recordingShown, reduce, view } from '../src/core/state.js';

function run(events, state = initialState) {
  const effects = [];
  for (const event of events) {
    const out = reduce(state, event);
    state = out.state;
    if (out.effect) effects.push(out.effect);
  }
  return { state, effects };
}

const ready = [{ type: 'record', phone: ' 03-1234-5678 ' }, { type: 'deviceReady' }];

test('clicks before the token do nothing', () => {
  const { state, effects } = run([{ type: 'record', phone: '0312345678' }, { type: 'click' }, { type: 'click' }]);
  assert.deepEqual(effects, []);
  assert.equal(state.call, Call.IDLE);
  assert.equal(view(state).disabled, true);
  assert.equal(view(state).labelKey, 'preparing');
});

test('a ready click connects once, to the trimmed number', () => {
  const { state, effects } = run([...ready, { type: 'click' }, { type: 'click' }, { type: 'click' }]);
  assert.deepEqual(effects, [{ kind: 'connect', to: '03-1234-5678' }]);
  assert.equal(state.call, Call.CONNECTING);
  assert.equal(view(state).disabled, true);
});

test('during a call a click disconnects once', () => {
  const { state, effects } = run([
    ...ready, { type: 'click' }, { type: 'connected' }, { type: 'click' }, { type: 'click' },
  ]);
  assert.deepEqual(effects.map((e) => e.kind), ['connect', 'disconnect']);
  assert.equal(state.call, Call.ENDING);
  assert.equal(view(state).action, 'hangup');
});

test('the button says which action a click does', () => {
  let { state } = run(ready);
  assert.equal(view(state).action, 'call');
  assert.equal(view(state).ariaKey, 'callTo');
  assert.deepEqual(view(state).ariaArgs, ['03-1234-5678']);
  ({ state } = run([{ type: 'click' }, { type: 'connected' }], state));
  assert.equal(view(state).action, 'hangup');
  assert.equal(view(state).labelKey, 'hangUp');
  assert.equal(view(state).disabled, false);
});

for (const how of ['disconnect', 'cancel', 'reject', 'error']) {
  test(`ready again after ${how}`, () => {
    const problem = how === 'error' ? { key: 'network' } : null;
    const { state } = run([...ready, { type: 'click' }, { type: 'connected' }, { type: 'accepted', now: 5 },
      { type: 'ended', problem }]);
    assert.equal(state.call, Call.IDLE);
    assert.equal(state.startedAt, null);
    assert.equal(view(state).disabled, false);
    assert.equal(view(state).action, 'call');
    assert.deepEqual(state.problem, problem);
  });
}

test('connect() failing ends the attempt: ready again', () => {
  const { state, effects } = run([...ready, { type: 'click' }, { type: 'ended', problem: { key: 'microphone' } }, { type: 'click' }]);
  assert.equal(effects.length, 2);
  assert.equal(state.call, Call.CONNECTING);
  assert.equal(state.problem, null); // a new attempt clears the old message
});

test('a late connected after the end is ignored', () => {
  const { state } = run([...ready, { type: 'click' }, { type: 'ended' }, { type: 'connected' }]);
  assert.equal(state.call, Call.IDLE);
});

test('no phone number: disabled, with the reason', () => {
  const { state, effects } = run([{ type: 'record', phone: '  ' }, { type: 'deviceReady' }, { type: 'click' }]);
  assert.deepEqual(effects, []);
  assert.equal(view(state).disabled, true);
  assert.equal(view(state).reasonKey, 'noPhone');
  assert.equal(run([{ type: 'record', phone: null }]).state.phone, null);
});

test('token trouble: disabled with the problem; a new token clears it', () => {
  let { state } = run([{ type: 'record', phone: '1' }, { type: 'deviceUnavailable', problem: { key: 'keyRefused' } }]);
  assert.equal(state.device, Device.UNAVAILABLE);
  assert.equal(view(state).disabled, true);
  assert.deepEqual(state.problem, { key: 'keyRefused' });
  ({ state } = run([{ type: 'deviceReady' }], state));
  assert.equal(state.problem, null);
  assert.equal(view(state).disabled, false);
});

test('answering starts the clock; mute is tracked and reset', () => {
  const { state } = run([...ready, { type: 'click' }, { type: 'connected' }, { type: 'accepted', now: 1000 }, { type: 'muted', muted: true }]);
  assert.equal(state.callStatus, 'open');
  assert.equal(state.startedAt, 1000);
  assert.equal(state.muted, true);
  assert.equal(run([{ type: 'ended' }], state).state.muted, false);
});

test('a record change during a call keeps the call', () => {
  const { state } = run([...ready, { type: 'click' }, { type: 'connected' }, { type: 'record', phone: '' }]);
  assert.equal(state.call, Call.ACTIVE);
  assert.equal(view(state).action, 'hangup');
});

test('unknown events are bugs', () => {
  assert.throws(() => reduce(initialState, { type: 'nope' }));
});

test('durations', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(65_400), '1:05');
  assert.equal(formatDuration(3_725_000), '1:02:05');
});

test('a new token clears token messages, not others', () => {
  let { state } = run([...ready, { type: 'problem', problem: { key: 'token', args: [20104] } }, { type: 'deviceReady' }]);
  assert.equal(state.problem, null);
  ({ state } = run([{ type: 'problem', problem: { key: 'rateLimited' } }, { type: 'deviceReady' }], state));
  assert.equal(state.problem, null);
  ({ state } = run([{ type: 'problem', problem: { key: 'microphone' } }, { type: 'deviceReady' }], state));
  assert.deepEqual(state.problem, { key: 'microphone' });
});

test('busy with an incoming call: the button waits, a click does nothing', () => {
  let state = reduce(reduce(reduce(initialState, { type: 'deviceReady' }).state, { type: 'record', phone: '03-1234-5678' }).state, { type: 'busy', busy: true }).state;
  assert.equal(view(state).disabled, true);
  assert.equal(view(state).reasonKey, 'busyIncoming');
  assert.equal(reduce(state, { type: 'click' }).effect, null);
  state = reduce(state, { type: 'busy', busy: false }).state;
  assert.equal(view(state).disabled, false);
  assert.deepEqual(reduce(state, { type: 'click' }).effect, { kind: 'connect', to: '03-1234-5678' });
});

test('「録音中」 from the answer until the call ends, only when the token said recording', () => {
  const shown = (state) => recordingShown(state.recording, answered(state));
  let { state } = run([{ type: 'record', phone: '03-1234-5678' }, { type: 'deviceReady', recording: true }]);
  assert.equal(state.recording, true);
  assert.equal(shown(state), false); // no call
  ({ state } = run([{ type: 'click' }, { type: 'connected' }], state));
  assert.equal(shown(state), false); // ringing: nothing is recorded before the answer
  ({ state } = run([{ type: 'accepted', now: 1 }], state));
  assert.equal(shown(state), true);
  ({ state } = run([{ type: 'click' }], state)); // hanging up: still up
  assert.equal(state.call, Call.ENDING);
  assert.equal(shown(state), true);
  ({ state } = run([{ type: 'ended' }], state));
  assert.equal(shown(state), false);
  // A renewed token that says otherwise is believed.
  ({ state } = run([{ type: 'deviceReady', recording: false }, { type: 'click' }, { type: 'connected' }, { type: 'accepted', now: 2 }], state));
  assert.equal(shown(state), false);
});
