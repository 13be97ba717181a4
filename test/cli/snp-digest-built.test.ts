/**
 * The built `sev-attest snp digest` and `snp ovmf-hash`: dist/sev-attest.mjs hands them to one CommonJS
 * bundle (dist/sev-attest-snp-digest.cjs) that holds only the SNP digest code, with the same answers,
 * messages and exit codes as the in-process commands.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage } from '../helpers/built-cli';
import { runCli } from '../../cli/run';
import type { CliIo } from '../../cli/io';

const OVMF = 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin';
let entry = '';
beforeAll(() => {
  ({ entry } = buildCliPackage('sev-snp-digest-built-'));
}, 120_000);

function runBuilt(args: string[]) {
  const r = spawnSync(process.execPath, [entry, 'snp', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function runInProcess(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd: process.cwd() };
  const code = await runCli(['snp', ...args], io);
  return { code, out, err };
}

describe('the built sev-attest snp digest', () => {
  it('is one bundle of SNP digest code only (no other subcommand, no node_modules)', () => {
    const bundle = readFileSync(join(entry, '..', 'sev-attest-snp-digest.cjs'), 'utf8');
    const modules = [...bundle.matchAll(/^\/\/ (\S+\.ts)$/gm)].map((m) => m[1]!);
    expect(modules).toContain('cli/commands/snp-digest.ts');
    expect(modules.filter((m) => /verify-report|id-block|snp\/(report|verify|kds|chain)/.test(m))).toEqual(
      [],
    );
    expect(bundle).not.toMatch(/node_modules\//);
  });

  it('agrees with the in-process commands on digests, the OVMF hash, usage errors and help', async () => {
    const digest = ['digest', '--mode', 'snp', '--vcpus', '4', '--vcpu-type', 'EPYC-Milan', '--ovmf', OVMF];
    for (const args of [
      digest,
      [...digest, '--vmm-type', 'ec2', '--guest-features', '0x21', '--output-format', 'base64'],
      ['ovmf-hash', '--ovmf', OVMF],
      ['digest', '--vcpus', '2', '--ovmf', OVMF],
      ['digest', '--vcpus', '2', '--vcpu-type', 'EPYC', '--ovmf', 'missing.fd'],
      ['digest', '--help'],
    ]) {
      expect(runBuilt(args), args.join(' ')).toEqual(await runInProcess(args));
    }
    expect(runBuilt(digest).out).toMatch(/\n?[0-9a-f]{96}\n$/);
  });
});
