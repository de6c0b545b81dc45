// One Twilio.Device per page load, and the token that keeps it valid. The call button and the
// incoming-call panel subscribe to it; none of them creates a Device itself. When a token's
// answer says `incoming: true` (the user is in the gateway's ring group, CONTRACT §9), the Device
// is registered once for the page load (the SDK keeps the registration across updateToken).
//
// Token: kintone.plugin.app.proxy(pluginId, tokenUrl, "POST", {"Content-Type": "application/json"},
// {identity}) — kintone's server adds the stored X-Calltrail-Key (CONTRACT §8). Renewed
// min(60 s, ttl/4) before expiry and handed over with device.updateToken; also on the SDK's
// 'tokenWillExpire' (its default warning, 10 s before) and after a token error from the SDK.

import { ErrorClass, errorClassOf } from '../core/errors.js';
import { identityFor } from '../core/identity.js';
import { renewalDelayMs, retryDelayMs } from '../core/renewal.js';
import { parseTokenAnswer, TokenFailure } from '../core/token.js';

/**
 * Events to subscribers: {type: 'ready', recording} (recording: the token's answer says calls are
 * recorded or transcribed) | {type: 'unavailable', problem} | {type: 'problem',
 * problem} | {type: 'incoming', call} | {type: 'registered'} | {type: 'busy', busy} (an incoming
 * call is being answered or talked on: the call button waits). problem: {key, args} (an i18n key).
 */
export function createDeviceManager({
  kintone,
  pluginId,
  tokenUrl,
  Twilio,
  timers = globalThis,
  now = () => Date.now(),
  random = Math.random,
}) {
  const listeners = new Set();
  let started = false;
  let device = null;
  let identity = null;
  let inFlight = false;
  let attempt = 0;
  let expiresAt = 0;
  let refreshTimer = null;
  let expiryTimer = null;
  let sdkTokenErrors = 0;
  let last = null; // the last ready/unavailable event, replayed to late subscribers
  let registered = false; // register() called (once per page load)
  let recording = false; // the last token's answer: calls are recorded (CONTRACT §11)

  const emit = (event) => {
    if (event.type === 'ready' || event.type === 'unavailable') last = event;
    for (const listener of listeners) listener(event);
  };
  const problemOf = (key, ...args) => ({ key, args });
  let refreshDue = Infinity;
  const schedule = (ms, { keepEarlier = false } = {}) => {
    const due = now() + ms;
    if (keepEarlier && refreshTimer !== null && refreshDue <= due) return;
    timers.clearTimeout(refreshTimer);
    refreshDue = due;
    refreshTimer = timers.setTimeout(refresh, ms);
  };

  function tokenValid() {
    return device !== null && now() < expiresAt;
  }

  function onDeviceError(error) {
    const cls = errorClassOf(error);
    emit({ type: 'problem', problem: problemOf(cls, error && error.code) });
    // The SDK refused our token (expired, invalid): fetch a new one at once the first time,
    // then with backoff, so a token Twilio keeps refusing cannot make a request loop.
    if (cls === ErrorClass.TOKEN) {
      sdkTokenErrors += 1;
      if (sdkTokenErrors === 1) refresh();
      else schedule(retryDelayMs(sdkTokenErrors - 1, null, random()), { keepEarlier: true });
    }
  }

  function createDevice(answer) {
    // DeviceOptions.edge: the edge location the gateway answered (Twilio "Edge Locations").
    const options = answer.edge ? { edge: answer.edge } : {};
    device = new Twilio.Device(answer.token, options);
    device.on('error', onDeviceError);
    device.on('tokenWillExpire', () => refresh());
    device.on('incoming', (call) => emit({ type: 'incoming', call }));
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    timers.clearTimeout(refreshTimer);
    refreshTimer = null;
    const requestedAt = now();
    let answer;
    try {
      const [body, status, headers] = await kintone.plugin.app.proxy(
        pluginId,
        tokenUrl,
        'POST',
        { 'Content-Type': 'application/json' },
        { identity },
      );
      answer = parseTokenAnswer(body, status, headers);
    } catch {
      // The proxy rejects with the response body: never shown, it may echo the request.
      answer = { ok: false, failure: TokenFailure.UNREACHABLE, retryAfterS: null };
    }
    inFlight = false;
    if (answer.ok) {
      attempt = 0;
      expiresAt = requestedAt + answer.ttl * 1000;
      try {
        if (device === null) createDevice(answer);
        else device.updateToken(answer.token);
      } catch (error) {
        device = null;
        emit({ type: 'unavailable', problem: problemOf(errorClassOf(error), error && error.code) });
        schedule(retryDelayMs(++attempt, null, random()));
        return;
      }
      timers.clearTimeout(expiryTimer);
      expiryTimer = timers.setTimeout(onExpired, Math.max(0, expiresAt - now()));
      schedule(renewalDelayMs(answer.ttl));
      recording = answer.recording;
      emit({ type: 'ready', recording });
      if (answer.incoming && !registered) register();
      return;
    }
    attempt += 1;
    const problem = problemOf(answer.failure);
    // A still-valid token keeps the button usable; the message says what is wrong meanwhile.
    emit(tokenValid() ? { type: 'problem', problem } : { type: 'unavailable', problem });
    schedule(retryDelayMs(attempt, answer.retryAfterS, random()));
  }

  function register() {
    registered = true;
    let promise;
    try {
      promise = Promise.resolve(device.register());
    } catch (error) {
      promise = Promise.reject(error);
    }
    // A failed registration is reported like any Device error (the SDK also emits 'error').
    promise.then(
      () => emit({ type: 'registered' }),
      (error) => emit({ type: 'problem', problem: problemOf(errorClassOf(error), error && error.code) }),
    );
  }

  function onExpired() {
    if (!tokenValid()) emit({ type: 'unavailable', problem: last?.problem ?? problemOf('token') });
  }

  return {
    /** Start once per page load; later calls do nothing. */
    start() {
      if (started) return;
      started = true;
      identity = identityFor(kintone.getLoginUser());
      if (identity === null) {
        emit({ type: 'unavailable', problem: problemOf('noIdentity') });
        return;
      }
      if (!Twilio || !Twilio.Device || (Twilio.Device.isSupported === false)) {
        emit({ type: 'unavailable', problem: problemOf('unsupported') });
        return;
      }
      refresh();
    },
    subscribe(listener) {
      listeners.add(listener);
      if (last) listener(last);
      return () => listeners.delete(listener);
    },
    /** device.connect({params}) → Promise<Call>. Only the call button calls it, once per click. */
    connect(params) {
      if (!tokenValid()) return Promise.reject(Object.assign(new Error('no valid token'), { code: 20104 }));
      return device.connect({ params });
    },
    /** The incoming panel says whether one of its calls is answered (the call button waits). */
    setBusy(busy) {
      emit({ type: 'busy', busy: Boolean(busy) });
    },
    /** Whether calls are recorded, as the last token's answer said. */
    get recording() {
      return recording;
    },
    /** Whether this page's Device was registered for incoming calls. */
    get registered() {
      return registered;
    },
    get device() {
      return device;
    },
  };
}

let pageManager = null;

/**
 * The page's one Device manager: the first caller creates it, later callers (the call button on
 * every detail.show, an incoming-call panel) get the same one.
 */
export function deviceManagerForPage(options) {
  if (pageManager === null) pageManager = createDeviceManager(options);
  return pageManager;
}
