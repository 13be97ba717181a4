/**
 * A bad option or setting given to the built `sev-attest serve` is the user's mistake: one plain sentence
 * and exit 2, never "internal error" or a stack trace.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage } from '../helpers/built-cli';
import { tmpDir } from '../helpers/listener-harness';

let entry = '';
beforeAll(() => {
  entry = buildCliPackage('sev-usage-').entry;
}, 120_000);

function serve(args: string[], env: Record<string, string> = {}) {
  const clean = { ...process.env, ...env };
  if (!('SEV_ATTEST_OWNER_TOKEN' in env)) delete clean.SEV_ATTEST_OWNER_TOKEN;
  return spawnSync(
    process.execPath,
    [entry, 'serve', '--listen', '127.0.0.1:0', '--secret-store', 'memory', ...args],
    { encoding: 'utf8', env: clean, timeout: 30_000 },
  );
}

function expectUsageError(r: ReturnType<typeof serve>, pattern: RegExp): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
}

describe('sev-attest serve usage errors', () => {
  it('a short SEV_ATTEST_OWNER_TOKEN', () => {
    expectUsageError(
      serve(['--data-dir', tmpDir()], { SEV_ATTEST_OWNER_TOKEN: 'short' }),
      /^sev-attest serve: SEV_ATTEST_OWNER_TOKEN must be at least \d+ characters/m,
    );
  });

  it('a --snp-roots file that does not exist or holds no SNP root set', () => {
    const dir = tmpDir();
    expectUsageError(
      serve(['--data-dir', dir, '--snp-roots', join(dir, 'missing.pem')]),
      /--snp-roots .*missing\.pem: cannot read it/,
    );
    const junk = join(dir, 'junk.pem');
    fs.writeFileSync(junk, 'not a certificate');
    expectUsageError(
      serve(['--data-dir', dir, '--snp-roots', junk]),
      /--snp-roots .*junk\.pem: needs the ARK, ASK and ASVK certificates of one product and the ARK's CRL/,
    );
  });

  it('a --data-dir that is a file', () => {
    const file = join(tmpDir(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    expectUsageError(
      serve(['--data-dir', file]),
      /^sev-attest serve: the data directory .* cannot be used: /m,
    );
  });

  it('a --trust-ca file that does not exist or is not an ASK||ARK', () => {
    const dir = tmpDir();
    expectUsageError(
      serve(['--data-dir', dir, '--trust-ca', join(dir, 'missing.cert')]),
      /--trust-ca .*cannot read it/,
    );
    const junk = join(dir, 'junk.cert');
    fs.writeFileSync(junk, 'not a certificate');
    expectUsageError(serve(['--data-dir', dir, '--trust-ca', junk]), /--trust-ca .*junk\.cert: /);
  });

  it('a --kbs-approval-wait that is not 1..600 seconds', () => {
    for (const bad of ['0', '601', '2m']) {
      expectUsageError(
        serve(['--data-dir', tmpDir(), '--kbs-approval-wait', bad]),
        /--kbs-approval-wait must be a number of seconds in 1\.\.600/,
      );
    }
  });
});
