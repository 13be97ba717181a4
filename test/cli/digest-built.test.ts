/**
 * The built `sev-attest digest`: dist/sev-attest.mjs hands `digest` to one CommonJS bundle
 * (dist/sev-attest-digest.cjs) that holds only the digest code, and gives the same answers, messages and
 * exit codes as the in-process command.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage } from '../helpers/built-cli';
import { runCli } from '../../cli/run';
import type { CliIo } from '../../cli/io';

let entry = '';
beforeAll(() => {
  ({ entry } = buildCliPackage('sev-digest-built-'));
}, 120_000);

function runBuilt(args: string[]) {
  const r = spawnSync(process.execPath, [entry, 'digest', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function runInProcess(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd: process.cwd() };
  const code = await runCli(['digest', ...args], io);
  return { code, out, err };
}

describe('the built sev-attest digest', () => {
  it('is one bundle of digest code only (no zod, conf, listener or other commands)', () => {
    const bundle = readFileSync(join(entry, '..', 'sev-attest-digest.cjs'), 'utf8');
    const modules = [...bundle.matchAll(/^\/\/ (\S+\.ts)$/gm)].map((m) => m[1]!);
    expect(modules).toContain('cli/commands/digest.ts');
    expect(
      modules.filter(
        (m) => !/^(app\/digest|app\/sev|app\/errors|cli\/(io|dispatch|digest-main|commands\/digest))/.test(m),
      ),
    ).toEqual([]);
    expect(bundle).not.toMatch(/node_modules\//);
  });

  it("agrees with the in-process command on the README's example and on a usage error", async () => {
    const example = [
      '--firmware',
      'assets/demo/OVMF.amdsev-trimmed.fd',
      '--sev-es',
      '--cpus',
      '4',
      '--cpu-preset',
      'milan',
    ];
    for (const args of [
      example,
      [...example, '--json'],
      ['--cpus', '2'],
      [...example, '--cpu-preset', 'pentium'],
    ]) {
      const built = runBuilt(args);
      const here = await runInProcess(args);
      expect(built, args.join(' ')).toEqual(here);
    }
    expect(runBuilt(example).out).toMatch(/^[0-9a-f]{64}\n$/);
  });

  it('--help and the full command list still come from the dispatcher', () => {
    expect(runBuilt(['--help']).out).toMatch(/kvm-init2 \(the default/);
    const all = spawnSync(process.execPath, [entry, '--help'], { encoding: 'utf8' });
    expect(all.stdout).toMatch(/digest[\s\S]*serve[\s\S]*bundle/);
  });
});
