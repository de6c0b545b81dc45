// The Twilio Client identity of a kintone user: `kintone_<id>` (CONTRACT §8).
// The gateway accepts ^[A-Za-z0-9_]{1,121}$ (CONTRACT §2); kintone user ids are digits.

const IDENTITY_RE = /^[A-Za-z0-9_]{1,121}$/;

/** `kintone_<id>` for `kintone.getLoginUser()`'s user, or null when the id cannot make one. */
export function identityFor(loginUser) {
  const id = loginUser && loginUser.id != null ? String(loginUser.id) : '';
  const identity = `kintone_${id}`;
  return id !== '' && IDENTITY_RE.test(identity) ? identity : null;
}

export function isValidIdentity(identity) {
  return typeof identity === 'string' && IDENTITY_RE.test(identity);
}
