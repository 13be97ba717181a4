import { defineConfig } from 'vitest/config';

/**
 * Three projects; `vitest run` (and so `npm test`) runs all of them, `npm run test:unit` only `unit`.
 * - unit: colocated tests that are fast and pure: no HTTP server, child process, python, keychain, sshd.
 * - integration: real HTTP, real keychain, sshd, libvirt's validator (python), built CLI processes: all of
 *   test/** plus colocated files named *.integration.test.ts(x) / *.keychain.test.ts or listed in
 *   COLOCATED_INTEGRATION.
 * - slow: the exhaustive bit-flip files and anything named *.slow.test.ts(x).
 * A new colocated test that starts a server or spawns a process: name it *.integration.test.ts.
 */
const COLOCATED = ['app', 'server', 'main', 'cli', 'host', 'preload', 'renderer'].flatMap((d) => [
  `${d}/**/*.test.ts`,
  `${d}/**/*.test.tsx`,
]);

/** Colocated tests that start servers or processes (listed here rather than renamed). */
const COLOCATED_INTEGRATION = [
  'app/bundle/bundle.test.ts', // libvirt's validator (python)
  'app/bundle/export.test.ts', // runs the exported script with bash
  'app/digest/libvirt-agreement.test.ts', // libvirt's validator (python)
  'app/sev/kds.test.ts', // HTTP server on 127.0.0.1
  'app/sev/libvirt-interop.test.ts', // libvirt's validator (python)
  'app/snp/kds.test.ts', // HTTP server on 127.0.0.1 (key-server stand-in)
  'cli/commands/snp-verify-report.test.ts', // HTTP server on 127.0.0.1 (key-server stand-in)
  'cli/commands/validate.test.ts', // libvirt's validator (python)
  'cli/commands/verify-chain.test.ts', // HTTP server, the built dist/sev-attest.mjs
  'host/service-client.test.ts', // TLS server on 127.0.0.1
  'server/services/kv-backend.test.ts', // child processes killed mid-write
  'server/services/secret-store.test.ts', // child processes, the real Secret Service
  'server/web/start-ui.test.ts', // the headless service and the browser-UI server over HTTP
  'server/web/ui-hardening.test.ts', // the browser-UI server over HTTP, silent sockets
  'server/web/ui-server.test.ts', // the browser-UI server over HTTP
];

const INTEGRATION_NAMED = [
  '**/*.integration.test.ts',
  '**/*.integration.test.tsx',
  '**/*.keychain.test.ts', // the real Secret Service (skipped outside scripts/with-keyring.sh)
];
const SLOW = ['test/sev/chain-bitflip-*.test.ts', '**/*.slow.test.ts', '**/*.slow.test.tsx'];

export default defineConfig({
  test: {
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: COLOCATED,
          exclude: ['**/node_modules/**', ...COLOCATED_INTEGRATION, ...INTEGRATION_NAMED, ...SLOW],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts', ...COLOCATED_INTEGRATION, ...INTEGRATION_NAMED],
          exclude: ['**/node_modules/**', ...SLOW],
        },
      },
      {
        extends: true,
        test: {
          name: 'slow',
          include: SLOW,
          // Exhaustive by design: 16,672 verifications per bit-flip test take well over 30 s when the
          // shared cores are busy.
          testTimeout: 300_000,
          exclude: ['**/node_modules/**'],
        },
      },
    ],
  },
});
