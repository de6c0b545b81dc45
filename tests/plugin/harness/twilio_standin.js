// A stand-in for the Twilio Voice JavaScript SDK 2.x (served as js/twilio.min.js in the tests),
// following its documented surface: new Twilio.Device(token, options); device.register(),
// connect({params}) → Promise<Call>, updateToken(token), destroy(), disconnectAll(), state,
// token, identity, edge; events 'registered', 'unregistered', 'error' (TwilioError, call?),
// 'tokenWillExpire' (tokenRefreshMs, default 10 000 ms, before the token's exp), 'incoming';
// static isSupported. Call: disconnect(), mute(bool), isMuted(), status(), accept(), reject(),
// customParameters (Map); events 'ringing', 'accept', 'disconnect', 'cancel', 'reject', 'error',
// 'mute' (isMuted, call). Every connect and disconnect is counted in window.__twilioStandin.
// Incoming calls: control.incoming({params, from}) makes the registered Device emit 'incoming'
// with a Call whose customParameters (a Map) are the <Client>'s <Parameter>s and whose
// parameters.From is `from`; accept() opens it ('accept'), reject() closes it ('reject'),
// ignore() stops it ringing here; _cancel() is the caller hanging up or another user answering.
(function () {
  'use strict';
  const log = { devices: [], connects: [], disconnects: 0, tokenUpdates: [], registers: 0, destroyed: 0, incoming: [], accepts: 0, rejects: 0, ignores: 0 };
  const control = { log, supported: (window.__KINTONE_STATE__ || {}).twilioSupported !== false, connectDelayMs: 30, holdConnect: false, releaseConnect: null, answerAfterMs: null, connectError: null, calls: [] };

  class Emitter {
    constructor() { this._l = new Map(); }
    on(name, fn) { if (!this._l.has(name)) this._l.set(name, []); this._l.get(name).push(fn); return this; }
    addListener(name, fn) { return this.on(name, fn); }
    once(name, fn) { const w = (...a) => { this.off(name, w); fn(...a); }; return this.on(name, w); }
    off(name, fn) { this._l.set(name, (this._l.get(name) || []).filter((f) => f !== fn)); return this; }
    removeListener(name, fn) { return this.off(name, fn); }
    removeAllListeners(name) { if (name) this._l.delete(name); else this._l.clear(); return this; }
    listenerCount(name) { return (this._l.get(name) || []).length; }
    emit(name, ...args) { for (const fn of [...(this._l.get(name) || [])]) fn(...args); return true; }
  }

  class TwilioError extends Error {
    constructor(code, message) {
      super(message);
      this.name = 'TwilioError';
      this.code = code;
      this.description = message;
      this.explanation = message;
    }
  }

  function decode(token) {
    const parts = String(token).split('.');
    if (parts.length !== 3) throw new TwilioError(20101, 'Invalid access token');
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const payload = JSON.parse(json);
    if (!payload.grants || !payload.grants.voice) throw new TwilioError(20106, 'Invalid Access Token grants');
    return payload;
  }

  let sids = 0;
  class Call extends Emitter {
    constructor(device, params, incoming = null) {
      super();
      this._device = device;
      this._status = incoming ? 'pending' : 'connecting';
      this._muted = false;
      this.direction = incoming ? 'INCOMING' : 'OUTGOING';
      this.customParameters = new Map(Object.entries(params || {}));
      this.parameters = incoming ? { From: incoming.from, To: `client:${device.identity}`, CallSid: `CA${String(++sids).padStart(32, '0')}` } : {};
      this.log = { accepts: 0, rejects: 0, ignores: 0 };
    }
    status() { return this._status; }
    isMuted() { return this._muted; }
    mute(shouldMute = true) {
      if (this._status === 'closed' || Boolean(shouldMute) === this._muted) return;
      this._muted = Boolean(shouldMute);
      this.emit('mute', this._muted, this);
    }
    disconnect() {
      log.disconnects += 1;
      if (this._status === 'closed') return;
      this._close('disconnect');
    }
    accept() {
      if (this.direction !== 'INCOMING') return;
      log.accepts += 1;
      this.log.accepts += 1;
      if (this._status !== 'pending') return;
      this._status = 'connecting';
      setTimeout(() => { if (this._status === 'connecting') { this._status = 'open'; this.emit('accept', this); } }, 10);
    }
    reject() {
      if (this.direction !== 'INCOMING') return;
      log.rejects += 1;
      this.log.rejects += 1;
      if (this._status === 'pending') this._close('reject');
    }
    ignore() {
      log.ignores += 1;
      this.log.ignores += 1;
      if (this._status === 'pending') this._status = 'closed';
    }
    sendDigits() {}
    _close(event, ...args) {
      this._status = 'closed';
      setTimeout(() => this.emit(event, ...args, this), 0);
      if (event !== 'disconnect' && event !== 'error') return;
      if (event === 'error') setTimeout(() => this.emit('disconnect', this), 0);
    }
    // test controls: the far end
    _answer() { if (this._status === 'ringing' || this._status === 'connecting') { this._status = 'open'; this.emit('accept', this); } }
    _remoteHangUp() { if (this._status !== 'closed') this._close('disconnect'); }
    // The incoming call's caller hung up, or another user's Device answered it (the SDK sends
    // 'cancel' to the Devices that did not).
    _cancel() { if (this._status !== 'closed') this._close('cancel'); }
    _reject() { if (this._status !== 'closed') this._close('reject'); }
    _fail(code) { if (this._status !== 'closed') { this._device.emit('error', new TwilioError(code, `error ${code}`), this); this._close('error', new TwilioError(code, `error ${code}`)); } }
  }

  class Device extends Emitter {
    static get isSupported() { return control.supported; }
    constructor(token, options = {}) {
      super();
      this._options = options;
      this._setToken(token);
      this.state = 'unregistered';
      this.calls = [];
      log.devices.push({ identity: this.identity, edge: options.edge ?? null });
    }
    get token() { return this._token; }
    get edge() { return this._options.edge ?? null; }
    get isBusy() { return this.calls.some((c) => c._status !== 'closed'); }
    _setToken(token) {
      const payload = decode(token);
      this._token = token;
      this._payload = payload;
      this.identity = payload.grants.identity;
      clearTimeout(this._willExpire);
      const refreshMs = this._options.tokenRefreshMs ?? 10000;
      const ms = payload.exp * 1000 - Date.now() - refreshMs;
      this._willExpire = setTimeout(() => this.emit('tokenWillExpire', this), Math.max(0, ms));
    }
    updateToken(token) {
      log.tokenUpdates.push({ identity: decode(token).grants.identity, at: Date.now() });
      this._setToken(token);
    }
    register() {
      log.registers += 1;
      this.state = 'registering';
      return new Promise((resolve) => setTimeout(() => { this.state = 'registered'; this.emit('registered'); resolve(); }, 10));
    }
    unregister() { this.state = 'unregistered'; this.emit('unregistered'); return Promise.resolve(); }
    connect(options = {}) {
      log.connects.push({ params: { ...(options.params || {}) }, at: performance.now() });
      if (this.state === 'destroyed') return Promise.reject(new TwilioError(31000, 'Device destroyed'));
      if (this._payload.exp * 1000 <= Date.now()) {
        const error = new TwilioError(20104, 'Access Token expired');
        setTimeout(() => this.emit('error', error), 0);
        return Promise.reject(error);
      }
      if (control.connectError) {
        const error = new TwilioError(control.connectError, `error ${control.connectError}`);
        control.connectError = null;
        setTimeout(() => this.emit('error', error), 0);
        return Promise.reject(error);
      }
      const call = new Call(this, options.params);
      this.calls.push(call);
      control.calls.push(call);
      return new Promise((resolve) => {
        const settle = () => {
          call._status = 'ringing';
          resolve(call);
          setTimeout(() => call.emit('ringing', false), 0);
          if (control.answerAfterMs !== null) setTimeout(() => call._answer(), control.answerAfterMs);
        };
        // holdConnect: connect() stays pending until the test calls releaseConnect().
        if (control.holdConnect) control.releaseConnect = settle;
        else setTimeout(settle, control.connectDelayMs);
      });
    }
    disconnectAll() { for (const c of this.calls) c.disconnect(); }
    destroy() { log.destroyed += 1; this.disconnectAll(); this.state = 'destroyed'; this.emit('destroyed'); }
  }
  Device.EventName = { Error: 'error', Incoming: 'incoming', Registered: 'registered', Registering: 'registering', TokenWillExpire: 'tokenWillExpire', Unregistered: 'unregistered', Destroyed: 'destroyed' };
  Device.State = { Destroyed: 'destroyed', Unregistered: 'unregistered', Registering: 'registering', Registered: 'registered' };

  control.lastCall = () => control.calls[control.calls.length - 1] || null;
  /** An inbound call rings this page's Device (only a registered one rings, as at Twilio). */
  control.incoming = ({ params = {}, from = '' } = {}) => {
    const device = control._device;
    if (!device || device.state !== 'registered') return null;
    const call = new Call(device, params, { from });
    device.calls.push(call);
    control.calls.push(call);
    log.incoming.push({ at: performance.now(), params: { ...params } });
    device.emit('incoming', call);
    return control.calls.length - 1;
  };
  control.call = (index) => control.calls[index];
  control.deviceError = (code) => {
    if (control._device) control._device.emit('error', new TwilioError(code, `error ${code}`));
  };
  const OriginalDevice = Device;
  window.Twilio = {
    Device: new Proxy(OriginalDevice, {
      construct(target, args) { const d = new target(...args); control._device = d; return d; },
    }),
    Call,
    TwilioError,
  };
  window.__twilioStandin = control;
})();
