// Builds the plugin directory dist/plugin/ (what the packer zips): the bundles, the static
// files, and the Voice SDK's dist/twilio.min.js copied unmodified as js/twilio.min.js.
import { build } from 'esbuild';
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'plugin');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'js'), { recursive: true });
cpSync(join(root, 'static'), out, { recursive: true });

const sdkPackage = join(root, 'node_modules', '@twilio', 'voice-sdk', 'package.json');
const sdkVersion = JSON.parse(readFileSync(sdkPackage, 'utf8')).version;
if (!/^2\./.test(sdkVersion)) throw new Error(`@twilio/voice-sdk ${sdkVersion} is not 2.x`);
cpSync(join(dirname(sdkPackage), 'dist', 'twilio.min.js'), join(out, 'js', 'twilio.min.js'));

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifestPath = join(out, 'manifest.json');
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
manifest.version = pkg.version;
writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

await build({
  entryPoints: ['desktop', 'mobile', 'config'].map((name) => join(root, 'src', `${name}.js`)),
  outdir: join(out, 'js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome109', 'edge109', 'firefox115', 'safari15'],
  legalComments: 'none',
  logLevel: 'warning',
});

for (const name of ['desktop.js', 'mobile.js', 'config.js', 'twilio.min.js']) {
  const size = statSync(join(out, 'js', name)).size;
  console.log(`js/${name}: ${(size / 1024).toFixed(1)} KB`);
}
console.log(`Voice SDK ${sdkVersion}; plugin ${pkg.version} → ${out}`);
