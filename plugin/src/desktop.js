// The plugin on the app's desktop pages (list and record views). kintone.$PLUGIN_ID: the id kintone gives a plugin's scripts.
import { startPage } from './edge/page.js';

startPage({ kintone, pluginId: kintone.$PLUGIN_ID, Twilio: globalThis.Twilio, mobile: false });
