// Fails when the committed dist/ is not what the sources and the lockfile
// build today: rebuilds into a temporary directory and compares every file
// byte for byte. (query/tests/api/page.rs checks the same without Node,
// through the hashes in dist/manifest.json.)

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lucent-replay-ui-'));
try {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), tmp], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const dist = path.join(ROOT, 'dist');
  const committed = fs.existsSync(dist) ? fs.readdirSync(dist).sort() : [];
  const built = fs.readdirSync(tmp).sort();
  const problems = [];
  for (const f of new Set([...committed, ...built])) {
    if (!built.includes(f)) problems.push(`dist/${f} is not built any more`);
    else if (!committed.includes(f)) problems.push(`dist/${f} is missing`);
    else if (!fs.readFileSync(path.join(dist, f)).equals(fs.readFileSync(path.join(tmp, f)))) problems.push(`dist/${f} differs`);
  }
  if (problems.length > 0) {
    console.error(`query/replay-ui/dist is stale:\n  ${problems.join('\n  ')}\nRun \`npm run build\` in query/replay-ui and commit dist/.`);
    process.exit(1);
  }
  console.log(`dist/ is up to date (${built.length} files)`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
