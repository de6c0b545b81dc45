// The incoming-call panel (CONTRACT §9 "In the browser"): one <section id="calltrail-incoming">
// per page load, on <body>, whatever page of the app is open, however many kintone events fire.
// It holds one entry per ringing Call (usually one): the caller, the customer records that match
// (looked up with the user's own kintone session), Answer and Decline, a link to each record.
// Each record is named by the app's record title (or its first single-line text field), read
// once per page load. A ringing entry the SDK cancels stays as 「不在着信」 until dismissed; it
// goes on Decline (reject()) and when the answered call ends; the panel goes with its last entry.
// The SDK's 'cancel' carries no reason (twilio/twilio-voice.js#435): the caller hanging up and
// another user answering look the same here, so both read 「不在着信」 on this page; the
// record's write-back says who answered.

import { errorClassOf } from '../core/errors.js';
import { Kind, readIncoming } from '../core/incoming-params.js';
import { t } from '../core/i18n.js';
import { callerLabel, firstSingleLineText, lookupPlan, matchedRecords, recordUrl, titleFieldOf } from '../core/lookup.js';
import { formatDuration, recordingShown } from '../core/state.js';

const GONE_EVENTS = ['disconnect', 'reject'];

function el(doc, tag, attrs = {}, text = null) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

export function createIncomingPanel({
  doc = document,
  lang,
  manager,
  kintone,
  config,
  appId,
  mobile = false,
  pathname = () => globalThis.location?.pathname ?? '/',
  timers = globalThis,
  now = () => Date.now(),
}) {
  const entries = new Map(); // Call → entry
  let ticker = null;
  const root = el(doc, 'section', { id: 'calltrail-incoming', class: 'calltrail-incoming', 'aria-live': 'assertive', 'aria-label': t(lang, 'incoming') });
  const list = el(doc, 'div', { class: 'calltrail-incoming-list' });
  root.append(list);

  function mount() {
    if (!root.isConnected) doc.body.appendChild(root);
  }

  let busy = false; // one of the calls is answered: the others cannot be, the call button waits
  const talking = (e) => e.state === 'answering' || e.state === 'open' || e.state === 'ending';
  function updateBusy() {
    const now = [...entries.values()].some(talking);
    if (now !== busy) {
      busy = now;
      manager.setBusy(busy);
      for (const e of entries.values()) if (e.render) e.render();
    }
  }

  function unmountIfEmpty() {
    if (entries.size === 0) {
      root.remove();
      timers.clearInterval(ticker);
      ticker = null;
    }
  }

  // new Promise: a kintone.api that throws at once is a failed request too, never a lost call.
  const get = (path, params) => new Promise((resolve) => resolve(kintone.api(kintone.api.url(path, true), 'GET', params)));

  let labelField = null; // the field that names a record: read at the first call, once per page
  function recordLabelField() {
    if (labelField === null) {
      const app = appId();
      labelField = get('/k/v1/app/settings', { app })
        .then((settings) => titleFieldOf(settings) ?? get('/k/v1/app/form/layout', { app }).then(firstSingleLineText))
        .catch(() => null); // unreadable: records are named by the number they matched
    }
    return labelField;
  }

  function lookup(info) {
    const plan = lookupPlan(info, config);
    if (!plan) return Promise.resolve([]);
    return recordLabelField().then((title) => {
      const fields = title && title !== plan.field ? ['$id', plan.field, title] : ['$id', plan.field];
      return get('/k/v1/records', { app: appId(), query: plan.query, fields }).then((answer) =>
        matchedRecords(answer && answer.records, plan.field, plan.match, title),
      );
    });
  }

  function add(call) {
    if (!call || entries.has(call)) return;
    const params = call.customParameters;
    const info = readIncoming((name) => (params && typeof params.get === 'function' ? params.get(name) : null), call.parameters && call.parameters.From);
    const who = info.kind === Kind.LINE ? t(lang, 'fromLine') : callerLabel(info.caller) || t(lang, 'unknownCaller');

    const node = el(doc, 'article', { class: 'calltrail-incoming-call', 'data-state': 'ringing', 'data-kind': info.kind });
    const head = el(doc, 'p', { class: 'calltrail-incoming-head' });
    head.append(el(doc, 'span', { class: 'calltrail-incoming-title' }, t(lang, 'incoming')), el(doc, 'strong', { class: 'calltrail-caller' }, who));
    const lookupLine = el(doc, 'p', { class: 'calltrail-incoming-lookup' }, t(lang, 'searching'));
    const records = el(doc, 'ul', { class: 'calltrail-incoming-records' });
    const actions = el(doc, 'div', { class: 'calltrail-incoming-actions' });
    const answer = el(doc, 'button', { type: 'button', class: 'calltrail-answer' }, t(lang, 'answer'));
    const decline = el(doc, 'button', { type: 'button', class: 'calltrail-decline' }, t(lang, 'decline'));
    const hangup = el(doc, 'button', { type: 'button', class: 'calltrail-hangup' }, t(lang, 'hangUp'));
    const mute = el(doc, 'button', { type: 'button', class: 'calltrail-mute', 'aria-pressed': 'false' }, t(lang, 'mute'));
    const close = el(doc, 'button', { type: 'button', class: 'calltrail-close' }, t(lang, 'close'));
    const status = el(doc, 'span', { class: 'calltrail-state' });
    const recording = el(doc, 'span', { class: 'calltrail-recording', role: 'status' }, t(lang, 'recording'));
    const timer = el(doc, 'span', { class: 'calltrail-timer' });
    const message = el(doc, 'p', { class: 'calltrail-message', role: 'status' });
    actions.append(answer, decline, hangup, mute, close, status, recording, timer);
    node.append(head, lookupLine, records, actions, message);

    const entry = { node, state: 'ringing', startedAt: null, timer, render: null };
    entries.set(call, entry);
    const render = () => {
      updateBusy();
      node.dataset.state = entry.state;
      answer.hidden = entry.state !== 'ringing' && entry.state !== 'answering';
      answer.disabled = entry.state !== 'ringing' || busy;
      answer.textContent = t(lang, entry.state === 'answering' ? 'answering' : 'answer');
      decline.hidden = entry.state !== 'ringing';
      hangup.hidden = entry.state !== 'open' && entry.state !== 'ending';
      hangup.disabled = entry.state !== 'open';
      mute.hidden = entry.state !== 'open';
      close.hidden = entry.state !== 'failed' && entry.state !== 'missed';
      status.textContent = entry.state === 'open' ? t(lang, 'stateOpen') : entry.state === 'missed' ? t(lang, 'missed') : '';
      recording.hidden = !recordingShown(manager.recording, entry.state === 'open' || entry.state === 'ending');
      const muted = entry.state === 'open' && typeof call.isMuted === 'function' && call.isMuted();
      mute.textContent = t(lang, muted ? 'unmute' : 'mute');
      mute.setAttribute('aria-pressed', String(muted));
      timer.textContent = entry.startedAt === null ? '' : formatDuration(now() - entry.startedAt);
    };
    entry.render = render;
    const gone = () => {
      if (!entries.has(call)) return;
      entries.delete(call);
      node.remove();
      updateBusy();
      unmountIfEmpty();
    };

    answer.addEventListener('click', () => {
      if (entry.state !== 'ringing' || busy) return;
      entry.state = 'answering';
      render();
      try {
        call.accept();
      } catch (error) {
        fail(error);
      }
    });
    decline.addEventListener('click', () => {
      if (entry.state !== 'ringing') return;
      entry.state = 'declined';
      try {
        call.reject();
      } finally {
        gone();
      }
    });
    hangup.addEventListener('click', () => {
      if (entry.state !== 'open') return;
      entry.state = 'ending';
      render();
      call.disconnect();
    });
    mute.addEventListener('click', () => {
      if (entry.state === 'open') call.mute(!call.isMuted());
    });
    close.addEventListener('click', gone);

    function fail(error) {
      if (!entries.has(call)) return;
      entry.state = 'failed';
      entry.startedAt = null;
      message.textContent = t(lang, errorClassOf(error), error && error.code != null ? error.code : '?');
      render();
    }

    call.on('accept', () => {
      if (!entries.has(call) || entry.state === 'failed') return;
      entry.state = 'open';
      entry.startedAt = now();
      if (ticker === null) ticker = timers.setInterval(tick, 1000);
      render();
    });
    call.on('mute', () => render());
    call.on('cancel', () => {
      if (!entries.has(call) || entry.state === 'failed') return;
      entry.state = 'missed'; // stays, with its records' links, until dismissed
      render();
    });
    for (const name of GONE_EVENTS) call.on(name, () => (entry.state === 'failed' ? render() : gone()));
    call.on('error', fail);

    render();
    list.append(node);
    mount();

    lookup(info).then(
      (matched) => {
        if (!entries.has(call)) return;
        records.replaceChildren();
        for (const record of matched) {
          const item = el(doc, 'li');
          const link = el(doc, 'a', { class: 'calltrail-record', href: recordUrl(pathname(), appId(), record.id, mobile), 'data-record-id': record.id }, t(lang, 'recordLink', record.id, record.label));
          item.append(link);
          records.append(item);
        }
        lookupLine.textContent = matched.length === 0 ? t(lang, 'noMatch') : '';
        node.dataset.lookup = 'done';
      },
      () => {
        if (!entries.has(call)) return;
        lookupLine.textContent = t(lang, 'lookupFailed');
        node.dataset.lookup = 'failed';
      },
    );
  }

  function tick() {
    for (const entry of entries.values()) {
      if (entry.startedAt !== null) entry.render();
    }
  }

  manager.subscribe((event) => {
    if (event.type === 'incoming') add(event.call);
  });

  return {
    root,
    get count() {
      return entries.size;
    },
  };
}
