/** `sev-attest`: the Electron-free command line. Each subcommand lives in commands/<name>.ts. */
import { createRequire } from 'node:module';

/** Set by scripts/build-cli.mjs: the CommonJS bundle that runs `digest` alone (cli/digest-main.ts). */
declare const SEV_ATTEST_DIGEST_BUNDLE: string | undefined;
/** Set by scripts/build-cli.mjs: the CommonJS bundle that runs `snp digest` and `snp ovmf-hash` alone. */
declare const SEV_ATTEST_SNP_DIGEST_BUNDLE: string | undefined;

const [command, sub] = process.argv.slice(2);

if (command === 'digest' && typeof SEV_ATTEST_DIGEST_BUNDLE === 'string') {
  // One small file, no ESM graph: `digest` is run in scripts and should start as fast as node itself.
  createRequire(import.meta.url)(SEV_ATTEST_DIGEST_BUNDLE);
} else if (
  command === 'snp' &&
  (sub === 'digest' || sub === 'ovmf-hash') &&
  typeof SEV_ATTEST_SNP_DIGEST_BUNDLE === 'string'
) {
  createRequire(import.meta.url)(SEV_ATTEST_SNP_DIGEST_BUNDLE);
} else {
  const [{ runAsProcess }, { runCli }] = await Promise.all([import('./io'), import('./run')]);
  // 70: EX_SOFTWARE, an internal error rather than a usage or check failure.
  runAsProcess('sev-attest', runCli, 70);
}
