// The settings page's words, Japanese and English (other kintone languages get English).

const MESSAGES = {
  ja: {
    title: 'calltrail の設定',
    intro: 'レコード詳細画面に発信ボタンを置きます。通話サーバー（calltrail gateway）の URL とキーを入力してください。',
    tokenUrl: 'トークン URL',
    tokenUrlHint: 'gateway の https://…/token の URL（試用時のみ http://127.0.0.1… も可）',
    apiKey: 'キー（X-Calltrail-Key）',
    apiKeyHint: 'kintone のサーバーにだけ保存され、ブラウザーには送られません。',
    keySet: 'キーは保存済みです。変更しない場合は空欄のままにしてください。',
    keyNotSet: 'キーはまだ保存されていません。',
    phoneField: '電話番号のフィールド',
    phoneFieldHint: '発信先の番号が入っているフィールド（文字列1行・リンク・数値）',
    numberWarning: '数値: 先頭の 0 が消えます',
    choose: '選択してください',
    missingField: (code) => `（見つかりません: ${code}）`,
    spaceElementId: 'ボタンを置く場所',
    spaceHint: 'フォームの「スペース」フィールド（要素ID付き）か、レコードのヘッダー',
    header: 'レコードのヘッダー',
    space: (id) => `スペース: ${id}`,
    save: '保存',
    cancel: 'キャンセル',
    saving: '保存中…',
    fix: '次の点を直してから保存してください。',
    loadFailed: 'フォームの情報を読み込めませんでした。ページを再読み込みしてください。',
    urlMissing: 'トークン URL を入力してください。',
    urlInvalid: 'トークン URL が URL の形になっていません（https:// から始めてください）。',
    urlNotHttps: 'トークン URL は https:// で始めてください（http は http://127.0.0.1 の試用時だけです）。',
    urlNotToken: 'トークン URL は /token で終わる URL にしてください。',
    urlQuery: 'トークン URL に ? や # 以降は付けないでください。',
    urlCredentials: 'トークン URL にユーザー名やパスワードを含めないでください。キーは下の欄に入力します。',
    keyMissing: '初めて設定するとき（または URL を変えたとき）はキーを入力してください。',
    keyInvalid: 'キーには空白や全角文字を含めないでください。',
    phoneMissing: '電話番号のフィールドを選んでください。',
    phoneUnknown: '選んだ電話番号のフィールドがフォームにありません。選び直してください。',
    spaceUnknown: '選んだスペースがフォームにありません。選び直すか「レコードのヘッダー」にしてください。',
  },
  en: {
    title: 'calltrail settings',
    intro: 'Puts a call button on the record page. Enter the URL and key of your call server (calltrail gateway).',
    tokenUrl: 'Token URL',
    tokenUrlHint: "The gateway's https://…/token URL (http://127.0.0.1… for local trials only)",
    apiKey: 'Key (X-Calltrail-Key)',
    apiKeyHint: "Stored on kintone's servers only; never sent to browsers.",
    keySet: 'A key is stored. Leave this blank to keep it.',
    keyNotSet: 'No key is stored yet.',
    phoneField: 'Phone number field',
    phoneFieldHint: 'The field holding the number to call (text, link or number)',
    numberWarning: 'number: a leading 0 is lost',
    choose: 'Choose…',
    missingField: (code) => `(not found: ${code})`,
    spaceElementId: 'Where the button goes',
    spaceHint: "A Blank space field of the form (with an element ID), or the record's header",
    header: "The record's header",
    space: (id) => `Blank space: ${id}`,
    save: 'Save',
    cancel: 'Cancel',
    saving: 'Saving…',
    fix: 'Please fix the following, then save again.',
    loadFailed: "Could not read the app's form. Reload the page.",
    urlMissing: 'Enter the token URL.',
    urlInvalid: 'The token URL is not a URL (start it with https://).',
    urlNotHttps: 'The token URL must start with https:// (http only as http://127.0.0.1 for local trials).',
    urlNotToken: 'The token URL must end with /token.',
    urlQuery: 'Leave out anything after ? or # in the token URL.',
    urlCredentials: 'Do not put a user name or password in the token URL; the key goes in the field below.',
    keyMissing: 'Enter the key: it is needed on the first setup and after a URL change.',
    keyInvalid: 'The key must not contain spaces or non-ASCII characters.',
    phoneMissing: 'Choose the phone number field.',
    phoneUnknown: 'The chosen phone number field is not on the form. Choose another.',
    spaceUnknown: "The chosen Blank space is not on the form. Choose another, or the record's header.",
  },
};

export function ct(lang, key, ...args) {
  const entry = (MESSAGES[lang] ?? MESSAGES.en)[key];
  if (entry === undefined) throw new Error(`no message ${key}`);
  return typeof entry === 'function' ? entry(...args) : entry;
}

export function configMessageKeys(lang) {
  return Object.keys(MESSAGES[lang]);
}
