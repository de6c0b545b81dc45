// Validates dist/plugin/manifest.json with Cybozu's manifest validator and signs the plugin with
// Cybozu's packer into dist/calltrail.zip (contents.zip + PUBKEY + SIGNATURE).
// Key: $CALLTRAIL_PLUGIN_PPK, else .keys/calltrail-dev.ppk, generated once by the packer and
// reused, so the plugin id stays the same across builds.
import validate from '@kintone/plugin-manifest-validator';
import { packPluginFromManifest } from '@kintone/plugin-packer/from-manifest';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pluginDir = join(root, 'dist', 'plugin');
const manifestPath = join(pluginDir, 'manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));

const result = (validate.default ?? validate)(manifest, {
  relativePath: () => true,
  fileExists: (path) => existsSync(join(pluginDir, path)),
  maxFileSize: (maxBytes, path) => statSync(join(pluginDir, path)).size <= maxBytes,
});
if (!result.valid) {
  console.error('manifest.json is not valid:', JSON.stringify(result.errors, null, 2));
  process.exit(1);
}

let keyPath = process.env.CALLTRAIL_PLUGIN_PPK;
let privateKey;
if (keyPath) {
  privateKey = readFileSync(keyPath, 'utf8');
} else {
  keyPath = join(root, '.keys', 'calltrail-dev.ppk');
  privateKey = existsSync(keyPath) ? readFileSync(keyPath, 'utf8') : undefined;
}

const packed = await packPluginFromManifest(manifestPath, privateKey);
if (privateKey === undefined) {
  mkdirSync(dirname(keyPath), { recursive: true, mode: 0o700 });
  writeFileSync(keyPath, packed.privateKey, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  console.log(`generated a development signing key: ${keyPath}`);
}
const zipPath = join(root, 'dist', 'calltrail.zip');
writeFileSync(zipPath, packed.plugin);
console.log(`${zipPath} (${(packed.plugin.length / 1024).toFixed(0)} KB), plugin id ${packed.id}`);
