// The <Parameter>s the gateway puts on each ring-group <Client> of an inbound call, read in the
// browser through call.customParameters.get(name) (Voice SDK 2.x: a Map). One place, so a rename
// is one edit; docs/gateway.md lists them.
export const PARAM = Object.freeze({
  CALLER: 'caller', // the caller's number in E.164; "LINE" (or empty) for a LINE call; "anonymous"
  KIND: 'kind', // 'number' | 'line'
  LINE_USER_ID: 'line_user_id', // U + 32 hex, when the gateway could read it
});

export const Kind = Object.freeze({ NUMBER: 'number', LINE: 'line' });

const LINE_ID_RE = /^U[0-9a-f]{32}$/;

export function isLineUserId(value) {
  return typeof value === 'string' && LINE_ID_RE.test(value);
}

function text(value) {
  return typeof value === 'string' ? value.trim() : '';
}

/**
 * What an incoming Call says about its caller: {kind, caller, lineUserId}. get(name) reads one
 * custom parameter (null/undefined when absent); from is call.parameters.From, the fallback when
 * `caller` is absent. A LINE id that is not exactly one is dropped, never kept as a wrong id.
 */
export function readIncoming(get, from) {
  const raw = (name) => text(get(name));
  const lineUserId = isLineUserId(raw(PARAM.LINE_USER_ID)) ? raw(PARAM.LINE_USER_ID) : null;
  const kind = raw(PARAM.KIND) === Kind.LINE ? Kind.LINE : Kind.NUMBER;
  const given = get(PARAM.CALLER);
  let caller = given == null ? text(from) : text(given);
  if (kind === Kind.LINE && /^sips?:/i.test(caller)) caller = ''; // LINE's SIP URI says nothing
  return { kind, caller, lineUserId };
}
