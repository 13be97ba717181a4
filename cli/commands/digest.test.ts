import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../run';
import type { CliIo } from '../io';
import { digestCommand } from './digest';
import { parseCpuSignatures } from '../../app/bundle/selection';
import { findCpuPreset } from '../../app/digest/cpu-presets';
import { DEFAULT_VMSA_VARIANT } from '../../app/digest/vmsa';
import { VmProfileSchema } from '../../app/profile';

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

describe('one default VMSA variant, preset names as people type them', () => {
  const fw = 'assets/demo/OVMF.amdsev-trimmed.fd';
  const es = ['--firmware', fw, '--sev-es', '--cpus=2', '--cpu-preset=EPYC-Milan'];

  it('without --vmsa-variant the digest is the kvm-init2 one (as profiles and the editor default to)', async () => {
    const dflt = await run(es);
    const init2 = await run([...es, '--vmsa-variant=kvm-init2']);
    const legacy = await run([...es, '--vmsa-variant=legacy']);
    expect(dflt.code).toBe(0);
    expect(dflt.out).toBe(init2.out);
    expect(dflt.out).not.toBe(legacy.out);
    expect(JSON.parse((await run([...es, '--json'])).out).inputs.vmsaVariant).toBe(DEFAULT_VMSA_VARIANT);
    expect(DEFAULT_VMSA_VARIANT).toBe(VmProfileSchema.shape.vmsaVariants.parse(undefined)[0]);
    expect(digestCommand.usage).toMatch(/kvm-init2 \(the default/);
  });

  it("runs the README's example command line (--cpu-preset milan)", async () => {
    const readme = readFileSync('README.md', 'utf8');
    const lines = readme.split('\n').filter((l) => l.startsWith('sev-attest digest ') && !l.includes('['));
    expect(lines.length).toBeGreaterThan(0);
    const explicit = await run([
      '--firmware',
      fw,
      '--sev-es',
      '--cpus',
      '4',
      '--cpu-family',
      '25',
      '--cpu-model',
      '1',
      '--cpu-stepping',
      '1',
    ]);
    expect(explicit.code).toBe(0);
    for (const line of lines) {
      const r = await run(line.split(/\s+/).slice(2));
      expect(r.err, line).toBe('');
      expect(r.code, line).toBe(0);
      if (line.includes('--cpu-preset milan')) expect(r.out).toBe(explicit.out);
    }
  });

  it('digest and bundle take the same preset names: any case, EPYC- optional', async () => {
    const outs = new Set<string>();
    for (const name of ['milan', 'Milan', 'MILAN', 'EPYC-Milan', 'epyc-milan']) {
      const r = await run(['--firmware', fw, '--sev-es', '--cpus=1', `--cpu-preset=${name}`]);
      expect(r.code, name).toBe(0);
      outs.add(r.out);
      expect(parseCpuSignatures(name)).toEqual([{ family: 25, model: 1, stepping: 1, name: 'EPYC-Milan' }]);
    }
    expect(outs.size).toBe(1);
    expect(findCpuPreset('v4')?.name).toBe('EPYC-v4');
    expect(findCpuPreset('rome')?.name).toBe('EPYC-Rome');
    expect(findCpuPreset('')).toBeUndefined();
    expect(findCpuPreset('epyc-')).toBeUndefined();
  });
});
