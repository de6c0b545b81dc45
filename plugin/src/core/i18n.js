// Every word the plugin shows, in Japanese and English; kintone's other languages get English.

const MESSAGES = {
  ja: {
    call: '電話をかける',
    callTo: (n) => `${n} に電話をかける`,
    hangUp: '通話を終了',
    connecting: '接続中…',
    ending: '終了中…',
    preparing: '電話を準備中…',
    mute: 'ミュート',
    unmute: 'ミュート解除',
    stateRinging: '呼び出し中',
    stateOpen: '通話中',
    stateReady: '発信できます',
    recording: '録音中',
    noPhone: (label) => `このレコードには電話番号（${label}）が入っていないため、発信できません。`,
    notConfigured: 'calltrail プラグインの設定が終わっていません。アプリ管理者に連絡してください。',
    unsupported: 'このブラウザーでは発信できません。',
    noIdentity: 'ログインユーザーを特定できないため、発信できません。',
    // Twilio SDK errors, by class
    microphone: 'マイクが使えません。ブラウザーのマイクの許可を確認してください。',
    network: 'ネットワークにつながりません。接続を確認して、もう一度お試しください。',
    token: '通話の認証に失敗しました。しばらくしてから再読み込みしてください。',
    callee: '相手につながりませんでした（話し中・応答なし）。',
    unknown: (code) => `通話でエラーが起きました（コード ${code}）。`,
    // Token request failures
    keyRefused: '通話サーバーがキーを受け付けませんでした。アプリ管理者にプラグインの設定を確認してもらってください。',
    rateLimited: '通話サーバーが混み合っています。しばらくすると自動で再試行します。',
    server: '通話サーバーが応答しません。しばらくすると自動で再試行します。',
    badAnswer: '通話サーバーの応答を読めませんでした（URL の設定を確認してください）。自動で再試行します。',
    rejected: '通話サーバーが要求を受け付けませんでした。自動で再試行します。',
    unreachable: '通話サーバーに接続できません。しばらくすると自動で再試行します。',
    // The incoming-call panel
    incoming: '着信',
    busyIncoming: '着信の通話中は発信できません。',
    fromLine: 'LINE から',
    unknownCaller: '番号不明',
    answer: '応答',
    decline: '拒否',
    answering: '接続中…',
    close: '閉じる',
    searching: '顧客レコードを検索中…',
    noMatch: '一致する顧客レコードはありません。',
    lookupFailed: '顧客レコードを検索できませんでした。',
    recordLink: (id, label) => (label ? `${label}（レコード ${id}）` : `レコード ${id}`),
    missed: '不在着信',
  },
  en: {
    call: 'Call',
    callTo: (n) => `Call ${n}`,
    hangUp: 'Hang up',
    connecting: 'Connecting…',
    ending: 'Ending…',
    preparing: 'Getting the phone ready…',
    mute: 'Mute',
    unmute: 'Unmute',
    stateRinging: 'Ringing',
    stateOpen: 'On the call',
    stateReady: 'Ready to call',
    recording: 'Recording',
    noPhone: (label) => `This record has no phone number (${label}), so it cannot be called.`,
    notConfigured: 'The calltrail plugin is not set up yet. Ask your app administrator.',
    unsupported: 'Calls are not supported in this browser.',
    noIdentity: 'Cannot tell who is signed in, so calls are not possible.',
    microphone: 'The microphone is blocked. Allow microphone access for this site in your browser.',
    network: 'No connection to the phone network. Check your connection and try again.',
    token: 'The phone could not sign in. Reload the page in a moment.',
    callee: 'The call did not go through (busy or no answer).',
    unknown: (code) => `Something went wrong with the call (code ${code}).`,
    keyRefused: 'The call server refused the key. Ask your app administrator to check the plugin settings.',
    rateLimited: 'The call server is busy. Trying again shortly.',
    server: 'The call server is not answering. Trying again shortly.',
    badAnswer: 'The call server gave an answer that is not a token (check the token URL). Trying again shortly.',
    rejected: 'The call server refused the request. Trying again shortly.',
    unreachable: 'Cannot reach the call server. Trying again shortly.',
    incoming: 'Incoming call',
    busyIncoming: 'You cannot call out while on an incoming call.',
    fromLine: 'LINE',
    unknownCaller: 'Unknown number',
    answer: 'Answer',
    decline: 'Decline',
    answering: 'Connecting…',
    close: 'Close',
    searching: 'Looking for customer records…',
    noMatch: 'No customer record matches.',
    lookupFailed: 'Could not look up customer records.',
    recordLink: (id, label) => (label ? `${label} (record ${id})` : `Record ${id}`),
    missed: 'Missed call',
  },
};

/**
 * 'ja' for kintone users whose language is Japanese, else 'en'. A user whose kintone language is
 * "auto" (follow the browser) gets the browser's.
 */
export function languageOf(loginUser, browserLanguage = globalThis.navigator?.language) {
  const language = loginUser && loginUser.language;
  if (language === 'auto') return String(browserLanguage ?? '').startsWith('ja') ? 'ja' : 'en';
  return language === 'ja' ? 'ja' : 'en';
}

/** t(lang, key, ...args): the text, formatted. Unknown keys throw (a typo is a bug). */
export function t(lang, key, ...args) {
  const table = MESSAGES[lang] ?? MESSAGES.en;
  const entry = table[key];
  if (entry === undefined) throw new Error(`no message ${key}`);
  return typeof entry === 'function' ? entry(...args) : entry;
}

export const LANGUAGES = Object.keys(MESSAGES);
export function messageKeys(lang) {
  return Object.keys(MESSAGES[lang]);
}
