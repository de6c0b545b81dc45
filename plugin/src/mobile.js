// The plugin on kintone mobile's pages. Twilio.Device.isSupported decides whether it can call.
import { startPage } from './edge/page.js';

startPage({ kintone, pluginId: kintone.$PLUGIN_ID, Twilio: globalThis.Twilio, mobile: true });
