// When to ask for the next token, and how long to wait after a failed request. Pure: time in,
// time out.

/** Renew at the latest min(60 s, ttl/4) before expiry (CONTRACT §8). ttlS: the gateway's `ttl`. */
export function renewalLeadMs(ttlS) {
  return Math.min(60_000, (ttlS * 1000) / 4);
}

/**
 * Milliseconds from the moment the token was *requested* (the conservative start of its life)
 * until the renewal should start.
 */
export function renewalDelayMs(ttlS) {
  if (!Number.isFinite(ttlS) || ttlS <= 0) return 0;
  return Math.max(0, ttlS * 1000 - renewalLeadMs(ttlS));
}

export const RETRY_BASE_MS = 5_000;
export const RETRY_MAX_MS = 300_000;

/**
 * Wait before retry number `attempt` (1 = the first retry): 5 s, 10 s, 20 s … at most 5 min, or
 * the server's Retry-After (seconds) when it asks for longer. `random` in [0,1) adds up to 20 %
 * jitter so a whole office does not retry in step.
 */
export function retryDelayMs(attempt, retryAfterS = null, random = 0) {
  const n = Math.max(1, Math.floor(attempt));
  const backoff = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (n - 1));
  const jittered = Math.min(RETRY_MAX_MS, Math.round(backoff * (1 + 0.2 * random)));
  const asked = Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : 0;
  return Math.max(jittered, Math.min(asked, RETRY_MAX_MS));
}
