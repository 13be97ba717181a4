// The launch plan of `npm run app` (scripts/run-app.mjs), kept pure so it can be tested: which program
// runs with which arguments. Arguments after `npm run app --` are forwarded to both modes.
import { join } from 'node:path';

/**
 * `--secret-store KIND` / `--secret-store=KIND` from the forwarded arguments (the desktop app reads the
 * same option from its own argv), or undefined when absent.
 */
export function secretStoreArg(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--secret-store') return argv[i + 1];
    if (a.startsWith('--secret-store=')) return a.slice('--secret-store='.length);
  }
  return undefined;
}

/**
 * What to start: Electron with the forwarded arguments where its binary is installed, else
 * `sev-attest serve --ui` with them (the data directory is added unless one is given).
 * @param {{ argv: string[], electronBinary: string | undefined, env: Record<string, string | undefined>, home: string, node: string }} opts
 */
export function planLaunch({ argv, electronBinary, env, home, node }) {
  const store = secretStoreArg(argv);
  if (store !== undefined && store !== 'keychain' && store !== 'memory') {
    return { error: `--secret-store must be keychain or memory, got '${store}'` };
  }
  if (electronBinary) {
    return { mode: 'desktop', command: electronBinary, args: ['.', ...argv] };
  }
  const args = ['dist/sev-attest.mjs', 'serve', '--ui'];
  let dataDir;
  if (!argv.some((a) => a === '--data-dir' || a.startsWith('--data-dir='))) {
    dataDir =
      env.SEV_ATTEST_DATA_DIR ?? join(env.XDG_DATA_HOME ?? join(home, '.local', 'share'), 'sev-attest');
    args.push('--data-dir', dataDir);
  }
  return { mode: 'browser', command: node, args: [...args, ...argv], dataDir };
}
