import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SDK_VERSION } from '../src/client';
import { DEFAULTS } from '../src/options';

describe('documentation', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it('the README options table states the real defaults', () => {
    const documented: Record<string, number> = {};
    for (const m of readme.matchAll(/^\| `(\w+)` \| `([\d_]+)` \|/gm)) documented[m[1]] = Number(m[2].replace(/_/g, ''));
    expect(documented).toEqual({ ...DEFAULTS });
  });

  it('the README documents every option, each with a default', () => {
    const options = [
      ...Object.keys(DEFAULTS),
      'apiKey',
      'endpoint',
      'metadata',
      'requireConsent',
      'recordOptions',
      'maskAllInputs',
      'maskAllText',
      'blockMedia',
      'blockClass',
      'blockSelector',
      'ignoreClass',
      'ignoreSelector',
      'maskTextClass',
      'maskTextSelector',
    ];
    const rows = new Map([...readme.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1], m[2].trim()]));
    for (const o of options) {
      expect(rows.has(o), `README row for ${o}`).toBe(true);
      expect(rows.get(o)).not.toBe('');
    }
    expect(rows.get('maskAllInputs')).toBe('`true`');
  });

  it('package.json and the SDK agree on the version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.version).toBe(SDK_VERSION);
  });
});
