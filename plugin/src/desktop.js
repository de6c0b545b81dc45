// The record page script (desktop). kintone.$PLUGIN_ID: the id kintone gives a plugin's scripts.
import { startRecordPage } from './edge/record-page.js';

startRecordPage({ kintone, pluginId: kintone.$PLUGIN_ID, Twilio: globalThis.Twilio, mobile: false });
