// Twilio Voice JavaScript SDK 2.x error codes → one class each → one short message.
// Codes follow Twilio's "Voice JavaScript SDK: Twilio error codes" reference and the SDK's
// errors/generated.ts (TwilioError subclasses); the grouping into classes is ours.

export const ErrorClass = Object.freeze({
  MICROPHONE: 'microphone',
  NETWORK: 'network',
  TOKEN: 'token',
  CALLEE: 'callee',
  UNKNOWN: 'unknown',
});

const BY_CODE = new Map();
function classify(cls, codes) {
  for (const code of codes) BY_CODE.set(code, cls);
}

// Microphone: UserMediaErrors 31401 (permission denied) and 31402 (acquisition failed); 31208
// is the older "user denied access to the microphone" (SignalingErrors in 1.x, still sent).
classify(ErrorClass.MICROPHONE, [31208, 31401, 31402]);
// Network: GeneralErrors 31003 (connection timeout), 31005 (connection error), 31009
// (transport); SignalingErrors 53000/53001 (signalling connection error/disconnected);
// MediaErrors 53405 (ICE connection failed) and 53407 (DTLS handshake failed).
classify(ErrorClass.NETWORK, [31003, 31005, 31009, 53000, 53001, 53405, 53407]);
// Token: AuthorizationErrors 20101–20107 (invalid, header, issuer, expired, not yet valid,
// grants, signature), 20151 (authentication failed), 20157 (expiry too long), and the
// signalling equivalents 31201–31207 (31204 invalid JWT, 31205 JWT expired).
classify(ErrorClass.TOKEN, [
  20101, 20102, 20103, 20104, 20105, 20106, 20107, 20151, 20157, 31201, 31202, 31203, 31204,
  31205, 31206, 31207,
]);
// The other end: SIPServerErrors 31404 (not found), 31480 (unavailable), 31486 (busy),
// 31603 (declined); 31002 (connection declined).
classify(ErrorClass.CALLEE, [31002, 31404, 31480, 31486, 31603]);

/** The class of a Twilio error (anything with a numeric `code`), UNKNOWN when not known. */
export function errorClassOf(error) {
  const code = error && Number(error.code);
  return BY_CODE.get(code) ?? ErrorClass.UNKNOWN;
}

export function knownCodes() {
  return [...BY_CODE.keys()];
}
