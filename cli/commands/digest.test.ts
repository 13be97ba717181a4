import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../run';
import type { CliIo } from '../io';
import { digestCommand } from './digest';

const V = 'test/fixtures/vectors/virtee-sev';

async function run(args: string[]) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd: process.cwd() };
  const code = await runCli(['digest', ...args], io, [digestCommand]);
  return { code, out, err };
}

describe('sev-attest digest', () => {
  it('prints the digest hex for a vector (relative paths resolve against cwd)', async () => {
    const r = await run([
      '--firmware',
      join(V, 'ovmf_AmdSev_suffix.bin'),
      '--kernel=/dev/null',
      '--initrd=/dev/null',
      '--cmdline',
      'console=ttyS0 loglevel=7',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe('82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff\n');
  });

  it('--json: digest-hex, digest-base64 and an inputs object; preset + kvm-init2', async () => {
    const r = await run([
      `--firmware=${join(V, 'ovmf_AmdSev_suffix.bin')}`,
      '--kernel-hash=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      '--initrd=/dev/null',
      '--sev-es',
      '--cpus=4',
      '--cpu-preset=epyc-v4',
      '--vmsa-variant=kvm-init2',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(Object.keys(j).sort()).toEqual(['digest-base64', 'digest-hex', 'inputs']);
    expect(j['digest-hex']).toBe('0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91');
    expect(Buffer.from(j['digest-base64'] as string, 'base64').toString('hex')).toBe(j['digest-hex']);
    expect(j.inputs).toMatchObject({
      sevEs: true,
      cpus: 4,
      vmsaVariant: 'kvm-init2',
      cpuSignature: { eax: '0x00800f12' },
    });
  });

  it('explicit family/model/stepping (hex accepted) equals the preset', async () => {
    const fw = `--firmware=${join(V, 'ovmf_AmdSev_suffix.bin')}`;
    const a = await run([
      fw,
      '--sev-es',
      '--cpus=2',
      '--cpu-family=0x17',
      '--cpu-model=1',
      '--cpu-stepping=2',
    ]);
    const b = await run([fw, '--sev-es', '--cpus=2', '--cpu-preset=EPYC']);
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect(a.out).toMatch(/^[0-9a-f]{64}\n$/);
  });

  const bad: [string[], RegExp, number][] = [
    [[], /--firmware FILE is required/, 2],
    [['--firmware'], /argument missing|--firmware/, 2],
    [['--firmware=x', '--frobnicate'], /Unknown option '--frobnicate'/, 2],
    [['--firmware=x', 'extra'], /unexpected argument 'extra'/, 2],
    [['--firmware=x', '--initrd=y'], /--initrd needs --kernel/, 2],
    [['--firmware=x', '--kernel=a', '--kernel-hash=b'], /--kernel or --kernel-hash, not both/, 2],
    [['--firmware=x', '--cpus=2'], /--cpus only applies with --sev-es/, 2],
    [['--firmware=x', '--sev-es', '--cpu-preset=EPYC'], /--sev-es needs --cpus/, 2],
    [['--firmware=x', '--sev-es', '--cpus=0', '--cpu-preset=EPYC'], /at least 1/, 2],
    [['--firmware=x', '--sev-es', '--cpus=two', '--cpu-preset=EPYC'], /--cpus must be an integer/, 2],
    [['--firmware=x', '--sev-es', '--cpus=2'], /--cpu-family, --cpu-model and --cpu-stepping/, 2],
    [
      ['--firmware=x', '--sev-es', '--cpus=2', '--cpu-preset=Pentium'],
      /unknown --cpu-preset 'Pentium'; known: EPYC/,
      2,
    ],
    [
      ['--firmware=x', '--sev-es', '--cpus=2', '--cpu-preset=EPYC', '--cpu-family=25'],
      /--cpu-preset or --cpu-family/,
      2,
    ],
    [
      ['--firmware=x', '--sev-es', '--cpus=2', '--cpu-preset=EPYC', '--vmsa-variant=new'],
      /legacy or kvm-init2/,
      2,
    ],
    [
      ['--firmware=x', '--sev-es', '--cpus=2', '--cpu-family=25', '--cpu-model=1', '--cpu-stepping=16'],
      /0\.\.15/,
      2,
    ],
    [['--firmware=/nonexistent/OVMF.fd'], /ENOENT/, 2],
    [['--firmware=package.json'], /not an OVMF image with a footer table/, 1],
    [[`--firmware=${join(V, 'ovmf_OvmfX64_suffix.bin')}`, '--kernel=/dev/null'], /firmware-unsupported/, 1],
    [
      [`--firmware=${join(V, 'ovmf_AmdSev_suffix.bin')}`, '--kernel-hash=abcd'],
      /kernel-hash must be a SHA-256/,
      1,
    ],
  ];
  for (const [args, msg, code] of bad) {
    it(`rejects ${args.join(' ') || '(no options)'} with a clear message`, async () => {
      const r = await run(args);
      expect(r.out).toBe('');
      expect(r.err).toMatch(msg);
      expect(r.err).toMatch(/^sev-attest digest: /);
      expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
      expect(r.code).toBe(code);
    });
  }
});
