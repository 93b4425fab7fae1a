// Writes dist/: the bundles of targets.mjs. Type declarations come from tsc (see package.json).
import { build } from 'esbuild';
import { common, targets } from './targets.mjs';

for (const { name, measure: _m, includesRrweb: _r, ...t } of targets) {
  await build({ ...common, ...t, outfile: `dist/${name}` });
  console.log(`built dist/${name}`);
}
