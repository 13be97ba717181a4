// Bundles the Electron-free command-line entries into single CommonJS files under dist/.
import { build } from 'esbuild';

const entries = {
  'sev-attest': 'main/cli/sev-attest.ts',
  'sev-attest-host': 'main/host/sev-attest-host.ts',
};

for (const [name, entry] of Object.entries(entries)) {
  await build({
    entryPoints: [entry],
    outfile: `dist/${name}.cjs`,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: true,
    // keytar is a native addon; it is loaded at run time from node_modules.
    external: ['keytar', 'electron'],
    banner: { js: '#!/usr/bin/env node' },
    logLevel: 'warning',
  });
}
