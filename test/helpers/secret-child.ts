/**
 * Child process for the secret-store tests: stores one secret through KeytarSecretStore (in whatever
 * D-Bus / keyring environment it was started), reads it back, and prints one JSON line with the outcome.
 * Env: SECRET_ACCOUNT, SECRET_HEX, SECRET_SERVICE.
 */
import { KeytarSecretStore, SecretStoreUnavailableError } from '../../server/services/secret-store';

async function attempt(what: string, fn: () => Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    const value = await fn();
    return {
      what,
      ok: true,
      value: value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value,
    };
  } catch (e) {
    return {
      what,
      ok: false,
      unavailable: e instanceof SecretStoreUnavailableError,
      code: (e as { code?: string }).code,
      message: (e as Error).message,
    };
  }
}

async function main(): Promise<void> {
  const store = new KeytarSecretStore({
    service: process.env.SECRET_SERVICE ?? 'sev-attest-test',
    timeoutMs: 10_000,
  });
  const account = process.env.SECRET_ACCOUNT ?? 'vm/test/secret';
  const value = Buffer.from(process.env.SECRET_HEX ?? '00', 'hex');
  const results = [
    await attempt('set', () => store.set(account, value)),
    await attempt('get', () => store.get(account)),
    await attempt('list', () => store.list()),
    await attempt('delete', () => store.delete(account)),
  ];
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

void main();
