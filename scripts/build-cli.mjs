// Bundles the Electron-free command-line entries into ES modules under dist/. The .mjs extension makes Node
// load them as ES modules without "type": "module" in package.json.
// - sev-attest: dist/sev-attest.mjs plus chunks, so each command's code is loaded only when that command runs
//   (`sev-attest digest` must not compile serve's listener, zod and conf).
//   `digest` itself runs from dist/sev-attest-digest.cjs, one CommonJS file (cli/digest-main.ts) that the entry
//   requires: no ESM graph to resolve and link, so its start-up is close to node's own (npm run bench digest).
// - sev-attest-host: one self-contained file, copied to the host and run with node (docs/host-setup.md).
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

// Bundled CommonJS dependencies call require(), and some of our code uses __dirname / __filename: give every
// output file (entries and chunks) the CommonJS names an ES module lacks.
const banner = [
  '#!/usr/bin/env node',
  "import { createRequire as __sevCreateRequire } from 'node:module';",
  "import { fileURLToPath as __sevFileURLToPath } from 'node:url';",
  "import { dirname as __sevDirname } from 'node:path';",
  'const require = __sevCreateRequire(import.meta.url);',
  'const __filename = __sevFileURLToPath(import.meta.url);',
  'const __dirname = __sevDirname(__filename);',
].join('\n');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // keytar is a native addon; it is loaded at run time from node_modules.
  // pg's optional native binding (pg-native) is not used: pg's pure-JS client is.
  external: ['keytar', 'electron', 'pg-native'],
  banner: { js: banner },
  logLevel: 'warning',
};

// Old CommonJS outputs and stale chunks must not linger next to the new ones.
rmSync('dist', { recursive: true, force: true });

const DIGEST_BUNDLE = 'sev-attest-digest.cjs';
const SNP_DIGEST_BUNDLE = 'sev-attest-snp-digest.cjs';

await build({
  ...common,
  define: {
    SEV_ATTEST_DIGEST_BUNDLE: JSON.stringify(`./${DIGEST_BUNDLE}`),
    SEV_ATTEST_SNP_DIGEST_BUNDLE: JSON.stringify(`./${SNP_DIGEST_BUNDLE}`),
  },
  entryPoints: { 'sev-attest': 'cli/sev-attest.ts' },
  outdir: 'dist',
  entryNames: '[name]',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  splitting: true,
});

// CommonJS has require and __dirname of its own: no ESM banner.
await build({
  ...common,
  format: 'cjs',
  banner: {},
  entryPoints: ['cli/digest-main.ts'],
  outfile: `dist/${DIGEST_BUNDLE}`,
});

await build({
  ...common,
  format: 'cjs',
  banner: {},
  entryPoints: ['cli/snp-digest-main.ts'],
  outfile: `dist/${SNP_DIGEST_BUNDLE}`,
});

await build({
  ...common,
  entryPoints: ['host/sev-attest-host.ts'],
  outfile: 'dist/sev-attest-host.mjs',
});
