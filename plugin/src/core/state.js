// The call button's state machine (CONTRACT §8). Pure: events in, the next state and at most
// one effect out. The page edge performs the effect (device.connect / call.disconnect), so a
// click can never start a second call or a second hang-up: the state already moved on.

export const Device = Object.freeze({
  PREPARING: 'preparing', // no Device yet, or no valid token yet
  READY: 'ready', // the Device exists with a valid token
  UNAVAILABLE: 'unavailable', // token refused / unreachable / browser unsupported
});

export const Call = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting', // connect() called, its Promise not settled
  ACTIVE: 'active', // connect() resolved: a click hangs up
  ENDING: 'ending', // disconnect() called once; waiting for the SDK's 'disconnect'
});

// Messages about the token (its request, or the SDK refusing it): a new token makes them untrue.
const TOKEN_PROBLEMS = new Set(['token', 'keyRefused', 'rateLimited', 'server', 'badAnswer', 'rejected', 'unreachable']);

export const initialState = Object.freeze({
  device: Device.PREPARING,
  call: Call.IDLE,
  phone: null, // the record's phone number, trimmed; null when empty
  callStatus: null, // 'ringing' | 'open' while a call is up
  startedAt: null, // ms, when the call was answered
  muted: false,
  problem: null, // {key, args}: the one message on the page, replaced, never appended
  busy: false, // an incoming call is being answered or talked on (the incoming panel)
  recording: false, // the last token said calls are recorded or transcribed (CONTRACT §11)
});

function phoneOf(value) {
  if (value == null) return null;
  const s = String(value).trim();
  return s === '' ? null : s;
}

/** reduce(state, event) → {state, effect}; effect is null, {kind:'connect', to} or {kind:'disconnect'}. */
export function reduce(state, event) {
  const next = (patch, effect = null) => ({ state: { ...state, ...patch }, effect });
  switch (event.type) {
    case 'record':
      return next({ phone: phoneOf(event.phone) });
    case 'deviceReady':
      // A new token clears a token problem; another (microphone, a failed call) stays until
      // replaced.
      return next({
        device: Device.READY,
        problem: state.problem && TOKEN_PROBLEMS.has(state.problem.key) ? null : state.problem,
        recording: Boolean(event.recording),
      });
    case 'deviceUnavailable':
      return next({ device: Device.UNAVAILABLE, problem: event.problem ?? state.problem });
    case 'problem':
      return next({ problem: event.problem });
    case 'busy':
      return next({ busy: Boolean(event.busy) });
    case 'click':
      if (state.call === Call.IDLE) {
        if (state.device !== Device.READY || state.phone === null || state.busy) return next({});
        return next({ call: Call.CONNECTING, problem: null }, { kind: 'connect', to: state.phone });
      }
      if (state.call === Call.ACTIVE) return next({ call: Call.ENDING }, { kind: 'disconnect' });
      return next({}); // CONNECTING or ENDING: the click does nothing
    case 'connected':
      if (state.call !== Call.CONNECTING) return next({});
      return next({ call: Call.ACTIVE, callStatus: 'ringing' });
    case 'accepted':
      if (state.call !== Call.ACTIVE && state.call !== Call.ENDING) return next({});
      return next({ callStatus: 'open', startedAt: event.now ?? null });
    case 'muted':
      return next({ muted: Boolean(event.muted) });
    case 'ended':
      return next({
        call: Call.IDLE,
        callStatus: null,
        startedAt: null,
        muted: false,
        problem: event.problem ?? state.problem,
      });
    default:
      throw new Error(`unknown event ${event.type}`);
  }
}

/**
 * What the page shows: {disabled, action ('call'|'hangup'|null), labelKey, ariaKey, ariaArgs,
 * reasonKey}. Keys are i18n keys, so this stays language-free.
 */
export function view(state) {
  if (state.call === Call.ACTIVE || state.call === Call.ENDING) {
    return {
      disabled: state.call === Call.ENDING,
      action: 'hangup',
      labelKey: state.call === Call.ENDING ? 'ending' : 'hangUp',
      ariaKey: 'hangUp',
      ariaArgs: [],
      reasonKey: null,
    };
  }
  if (state.call === Call.CONNECTING) {
    return { disabled: true, action: null, labelKey: 'connecting', ariaKey: 'connecting', ariaArgs: [], reasonKey: null };
  }
  if (state.phone === null) {
    return { disabled: true, action: null, labelKey: 'call', ariaKey: 'call', ariaArgs: [], reasonKey: 'noPhone' };
  }
  if (state.busy) {
    return { disabled: true, action: null, labelKey: 'call', ariaKey: 'call', ariaArgs: [], reasonKey: 'busyIncoming' };
  }
  if (state.device === Device.READY) {
    return { disabled: false, action: 'call', labelKey: 'call', ariaKey: 'callTo', ariaArgs: [state.phone], reasonKey: null };
  }
  return {
    disabled: true,
    action: null,
    labelKey: state.device === Device.PREPARING ? 'preparing' : 'call',
    ariaKey: state.device === Device.PREPARING ? 'preparing' : 'call',
    ariaArgs: [],
    reasonKey: null,
  };
}

/**
 * Whether the page says 「録音中」: the gateway records (its token said so) and a call is up, from
 * its answer (Twilio records from the answer) until it ends. `answered`: the call's own state.
 */
export function recordingShown(recording, answered) {
  return Boolean(recording) && Boolean(answered);
}

/** The call button's call, answered and not yet over (hanging up included). */
export function answered(state) {
  return (state.call === Call.ACTIVE || state.call === Call.ENDING) && state.callStatus === 'open';
}

/** "m:ss" (or "h:mm:ss") of a call that started at startedAt. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
