// The record page script (kintone mobile). Twilio.Device.isSupported decides whether it can call.
import { startRecordPage } from './edge/record-page.js';

startRecordPage({ kintone, pluginId: kintone.$PLUGIN_ID, Twilio: globalThis.Twilio, mobile: true });
