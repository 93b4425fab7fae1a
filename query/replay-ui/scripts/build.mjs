// Builds the replay page into OUTDIR (`npm run build` writes dist/, which is
// committed and embedded in lucent-query with include_bytes!, so that
// `cargo build` needs no Node):
//   index.html  the page (no inline script or style: CSP `script-src 'self'`)
//   app.js      src/main.js and rrweb's Replayer, one minified IIFE
//   app.css     rrweb's player styles and ours
//   manifest.json  SHA-256 of every input (src/*, this script, package.json,
//                  package-lock.json) and every output; query/tests/api/page.rs
//                  recomputes the inputs' to catch a dist/ older than its sources.
//
// Usage: node scripts/build.mjs OUTDIR

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv[2];
if (!outArg) {
  console.error('usage: node scripts/build.mjs OUTDIR');
  process.exit(2);
}
const out = path.resolve(ROOT, outArg);

/** The files a build depends on, relative to ROOT, sorted. */
function inputFiles() {
  const src = fs
    .readdirSync(path.join(ROOT, 'src'))
    .sort()
    .map((f) => `src/${f}`);
  return [...src, 'scripts/build.mjs', 'package.json', 'package-lock.json'];
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const common = { bundle: true, minify: true, logLevel: 'warning', absWorkingDir: ROOT, charset: 'utf8' };
await esbuild.build({
  ...common,
  entryPoints: ['src/main.js'],
  outfile: path.join(out, 'app.js'),
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'eof',
  banner: { js: '/* Lucent replay page. Includes rrweb (MIT License, https://github.com/rrweb-io/rrweb). */' },
});
await esbuild.build({
  ...common,
  entryPoints: ['src/app.css'],
  outfile: path.join(out, 'app.css'),
  target: ['chrome100', 'firefox100', 'safari15'],
});
fs.copyFileSync(path.join(ROOT, 'src/index.html'), path.join(out, 'index.html'));

const hashes = (files, dir) => Object.fromEntries(files.map((f) => [f, sha256(fs.readFileSync(path.join(dir, f)))]));
const outputs = ['app.css', 'app.js', 'index.html'];
const manifest = {
  comment: 'Written by scripts/build.mjs; checked by query/tests/api/page.rs. Do not edit.',
  inputs: hashes(inputFiles(), ROOT),
  outputs: hashes(outputs, out),
};
fs.writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
for (const f of outputs) console.log(`${path.relative(ROOT, path.join(out, f))}: ${fs.statSync(path.join(out, f)).size} bytes`);
