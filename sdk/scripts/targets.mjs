// The bundles this package ships; build.mjs writes them, size.mjs measures them.
export const common = {
  bundle: true,
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
};

export const targets = [
  {
    // For bundlers: `import { init } from '@lucent/browser'`; rrweb is the app's own dependency.
    name: 'lucent.mjs',
    entryPoints: ['src/index.ts'],
    format: 'esm',
    external: ['rrweb'],
    minify: false,
    sourcemap: true,
    measure: false,
  },
  {
    // Minified ESM, rrweb excluded: the SDK's own weight in an app bundle.
    name: 'lucent.min.mjs',
    entryPoints: ['src/index.ts'],
    format: 'esm',
    external: ['rrweb'],
    minify: true,
    sourcemap: true,
    measure: true,
  },
  {
    // Script tag after rrweb's UMD build (window.rrweb); defines window.Lucent.
    name: 'lucent.min.js',
    entryPoints: ['src/global.ts'],
    format: 'iife',
    minify: true,
    sourcemap: true,
    measure: true,
  },
  {
    // Script tag with rrweb inside; used by test-page/ and demos.
    name: 'lucent.bundle.min.js',
    entryPoints: ['src/bundle.ts'],
    format: 'iife',
    minify: true,
    sourcemap: false,
    measure: true,
    includesRrweb: true,
  },
];
