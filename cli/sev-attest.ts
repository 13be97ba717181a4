/** `sev-attest`: the Electron-free command line. Each subcommand lives in commands/<name>.ts. */
import { createRequire } from 'node:module';

/** Set by scripts/build-cli.mjs: the CommonJS bundle that runs `digest` alone (cli/digest-main.ts). */
declare const SEV_ATTEST_DIGEST_BUNDLE: string | undefined;

if (process.argv[2] === 'digest' && typeof SEV_ATTEST_DIGEST_BUNDLE === 'string') {
  // One small file, no ESM graph: `digest` is run in scripts and should start as fast as node itself.
  createRequire(import.meta.url)(SEV_ATTEST_DIGEST_BUNDLE);
} else {
  const [{ runAsProcess }, { runCli }] = await Promise.all([import('./io'), import('./run')]);
  // 70: EX_SOFTWARE, an internal error rather than a usage or check failure.
  runAsProcess('sev-attest', runCli, 70);
}
