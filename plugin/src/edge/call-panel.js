// The call button on a record page: one <button id="calltrail-call"> with one click handler for
// the whole page load, however often kintone fires detail.show (next/previous record, save).
// Everything it does goes through the pure state machine (core/state.js).

import { errorClassOf } from '../core/errors.js';
import { t } from '../core/i18n.js';
import { answered, formatDuration, initialState, recordingShown, reduce, view } from '../core/state.js';

const CALL_END_EVENTS = ['disconnect', 'cancel', 'reject'];
// The real SDK keeps connect()'s Promise pending while its signalling connection fails (it emits
// 31005 on the Device and retries): a Device error, or this long without an answer, ends the
// attempt, and a Call that still arrives later is hung up at once.
const CONNECT_TIMEOUT_MS = 30_000;

function el(doc, tag, attrs = {}) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function problemOfError(error) {
  const cls = errorClassOf(error);
  return { key: cls, args: [error && error.code != null ? error.code : '?'] };
}

export function createCallPanel({ doc = document, lang, manager, timers = globalThis, now = () => Date.now() }) {
  let state = initialState;
  let context = { appId: '', recordId: '', phoneLabel: '' };
  let call = null; // the Call while one is up
  let ticker = null;
  let attempt = 0; // which connect() the page still waits for
  let connectTimer = null;

  const root = el(doc, 'div', { id: 'calltrail', class: 'calltrail' });
  const button = el(doc, 'button', { id: 'calltrail-call', type: 'button', class: 'calltrail-call', 'aria-describedby': 'calltrail-reason calltrail-message' });
  const status = el(doc, 'span', { id: 'calltrail-state', class: 'calltrail-state' });
  const timer = el(doc, 'span', { id: 'calltrail-timer', class: 'calltrail-timer' });
  const mute = el(doc, 'button', { id: 'calltrail-mute', type: 'button', class: 'calltrail-mute', 'aria-pressed': 'false' });
  const recording = el(doc, 'span', { id: 'calltrail-recording', class: 'calltrail-recording', role: 'status' });
  recording.textContent = t(lang, 'recording');
  recording.hidden = true;
  const reason = el(doc, 'p', { id: 'calltrail-reason', class: 'calltrail-reason' });
  const message = el(doc, 'p', { id: 'calltrail-message', class: 'calltrail-message', role: 'status', 'aria-live': 'polite' });
  mute.hidden = true;
  root.append(button, status, recording, timer, mute, reason, message);

  button.addEventListener('click', () => dispatch({ type: 'click' }));
  mute.addEventListener('click', () => {
    if (call) call.mute(!call.isMuted());
  });

  function dispatch(event) {
    const out = reduce(state, event);
    state = out.state;
    render();
    if (out.effect) perform(out.effect);
  }

  function perform(effect) {
    if (effect.kind === 'disconnect') {
      if (call) call.disconnect();
      return;
    }
    const params = { To: effect.to, AppId: String(context.appId), RecordId: String(context.recordId) };
    const mineAttempt = ++attempt;
    let promise;
    try {
      promise = Promise.resolve(manager.connect(params));
    } catch (error) {
      promise = Promise.reject(error);
    }
    timers.clearTimeout(connectTimer);
    connectTimer = timers.setTimeout(() => abandon({ key: 'network', args: [] }), CONNECT_TIMEOUT_MS);
    promise.then(
      (newCall) => {
        if (mineAttempt !== attempt || state.call !== 'connecting') {
          newCall.disconnect(); // an abandoned attempt connected after all
          return;
        }
        timers.clearTimeout(connectTimer);
        call = newCall;
        const mine = (handler) => (...args) => {
          if (call === newCall) handler(...args);
        };
        const end = (problem) => {
          call = null;
          dispatch({ type: 'ended', problem });
        };
        newCall.on('accept', mine(() => dispatch({ type: 'accepted', now: now() })));
        newCall.on('mute', mine((muted) => dispatch({ type: 'muted', muted })));
        for (const name of CALL_END_EVENTS) newCall.on(name, mine(() => end(null)));
        newCall.on('error', mine((error) => end(problemOfError(error))));
        dispatch({ type: 'connected' });
      },
      (error) => {
        if (mineAttempt !== attempt || state.call !== 'connecting') return;
        timers.clearTimeout(connectTimer);
        dispatch({ type: 'ended', problem: problemOfError(error) });
      },
    );
  }

  /** Give up on the pending connect(): ready again, with the message. */
  function abandon(problem) {
    if (state.call !== 'connecting') return;
    timers.clearTimeout(connectTimer);
    attempt += 1;
    dispatch({ type: 'ended', problem });
  }

  function render() {
    const v = view(state);
    button.disabled = v.disabled;
    button.textContent = t(lang, v.labelKey);
    button.setAttribute('aria-label', t(lang, v.ariaKey, ...v.ariaArgs));
    button.dataset.action = v.action ?? '';
    button.dataset.state = state.call === 'idle' ? state.device : state.call;
    reason.textContent = v.reasonKey ? t(lang, v.reasonKey, context.phoneLabel) : '';
    button.title = reason.textContent;
    const problem = state.problem;
    message.textContent = problem ? t(lang, problem.key, ...(problem.args ?? [])) : '';
    message.dataset.kind = problem ? problem.key : '';
    const up = state.call === 'active' || state.call === 'ending';
    status.textContent = !up ? '' : t(lang, state.callStatus === 'open' ? 'stateOpen' : 'stateRinging');
    mute.hidden = !(up && state.callStatus === 'open');
    recording.hidden = !recordingShown(state.recording, answered(state));
    mute.textContent = t(lang, state.muted ? 'unmute' : 'mute');
    mute.setAttribute('aria-pressed', String(state.muted));
    renderTimer();
    if (state.startedAt !== null && ticker === null) ticker = timers.setInterval(renderTimer, 1000);
    if (state.startedAt === null && ticker !== null) {
      timers.clearInterval(ticker);
      ticker = null;
    }
  }

  function renderTimer() {
    timer.textContent = state.startedAt === null ? '' : formatDuration(now() - state.startedAt);
  }

  manager.subscribe((event) => {
    if (event.type === 'ready') dispatch({ type: 'deviceReady', recording: event.recording });
    else if (event.type === 'unavailable') dispatch({ type: 'deviceUnavailable', problem: event.problem });
    else if (event.type === 'busy') dispatch({ type: 'busy', busy: event.busy });
    else if (event.type === 'problem') {
      if (state.call === 'connecting') abandon(event.problem);
      else dispatch({ type: 'problem', problem: event.problem });
    }
  });
  render();

  return {
    root,
    /** A record was shown: remember its ids and number, and put the panel where it belongs. */
    show({ appId, recordId, phone, phoneLabel, mountPoint }) {
      context = { appId, recordId, phoneLabel };
      if (mountPoint && root.parentNode !== mountPoint) mountPoint.appendChild(root);
      dispatch({ type: 'record', phone });
    },
    /** A message without a device problem (not configured, unsupported). */
    problem(key) {
      dispatch({ type: 'deviceUnavailable', problem: { key, args: [] } });
    },
    get state() {
      return state;
    },
  };
}
