/**
 * The desktop app's own command-line options (`npm run app -- --secret-store memory`, or the packaged
 * binary with the same option). Chromium's switches (--no-sandbox ...) are ignored.
 */

/** `--secret-store keychain|memory` (or `=KIND`), else SEV_ATTEST_SECRET_STORE, else the keychain. */
export function secretStoreKind(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): 'keychain' | 'memory' {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--secret-store') value = argv[i + 1];
    else if (a.startsWith('--secret-store=')) value = a.slice('--secret-store='.length);
  }
  value ??= env['SEV_ATTEST_SECRET_STORE'];
  if (value === undefined || value === '') return 'keychain';
  if (value !== 'keychain' && value !== 'memory') {
    throw new Error(`--secret-store must be keychain or memory, got '${value}'`);
  }
  return value;
}
