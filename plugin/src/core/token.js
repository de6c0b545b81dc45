// What the gateway answered through kintone's proxy, read without trusting it.
// kintone.plugin.app.proxy resolves [body (string), status (number), headers (object)] for any
// HTTP status (cybozu.dev: "プラグインから外部APIを実行する"); only a failed proxy call rejects.

/** Token failures the page tells apart. */
export const TokenFailure = Object.freeze({
  KEY_REFUSED: 'keyRefused', // 401/403: the key in the plugin settings is wrong or missing
  RATE_LIMITED: 'rateLimited', // 429
  SERVER: 'server', // 5xx
  BAD_ANSWER: 'badAnswer', // 2xx that is not the JSON /token answers (an HTML login page …)
  REJECTED: 'rejected', // any other 4xx
  UNREACHABLE: 'unreachable', // the proxy itself failed
});

function header(headers, name) {
  if (!headers || typeof headers !== 'object') return null;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === wanted) return String(headers[key]);
  }
  return null;
}

/**
 * {ok: true, token, ttl, edge, incoming, recording, identity} or {ok: false, failure, status,
 * retryAfterS}. `recording`: the gateway records or transcribes calls (CONTRACT §11), so the page
 * says 「録音中」 while one is up; only a literal true counts.
 * Never carries the body of a failure: it may echo what was sent.
 */
export function parseTokenAnswer(body, status, headers) {
  const retryAfter = Number.parseInt(header(headers, 'Retry-After') ?? '', 10);
  const retryAfterS = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null;
  const fail = (failure) => ({ ok: false, failure, status, retryAfterS });
  if (status === 401 || status === 403) return fail(TokenFailure.KEY_REFUSED);
  if (status === 429) return fail(TokenFailure.RATE_LIMITED);
  if (status >= 500) return fail(TokenFailure.SERVER);
  if (!(status >= 200 && status < 300)) return fail(TokenFailure.REJECTED);
  let doc;
  try {
    doc = JSON.parse(body);
  } catch {
    return fail(TokenFailure.BAD_ANSWER);
  }
  if (
    !doc ||
    typeof doc !== 'object' ||
    typeof doc.token !== 'string' ||
    doc.token.split('.').length !== 3 ||
    !Number.isFinite(doc.ttl) ||
    doc.ttl <= 0
  ) {
    return fail(TokenFailure.BAD_ANSWER);
  }
  return {
    ok: true,
    token: doc.token,
    ttl: doc.ttl,
    edge: typeof doc.edge === 'string' && doc.edge ? doc.edge : null,
    incoming: doc.incoming === true,
    recording: doc.recording === true,
    identity: typeof doc.identity === 'string' ? doc.identity : null,
  };
}
