import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyIdBlock } from '../../app/snp/id-block';
import type { CliIo } from '../io';
import { runCli } from '../run';
import { snpSubcommands } from './snp';

const DIR = resolve('test/fixtures/snp/measure');

/** Runs `sev-attest <args>` through the real dispatcher and command list (lazy loading included). */
async function cli(args: string[], cwd = process.cwd()) {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd };
  const code = await runCli(args, io);
  return { code, out, err };
}

interface Vector {
  args: string[];
  expected: string;
  note: string;
}
const vectors = (JSON.parse(readFileSync(join(DIR, 'vectors.json'), 'utf8')) as { cases: Vector[] }).cases;
const python = JSON.parse(readFileSync(join(DIR, 'id-block-python.json'), 'utf8')) as Record<string, string>;
const hexOfBase64 = (s: string) => Buffer.from(s, 'base64').toString('hex');

describe('sev-attest snp digest / ovmf-hash: the sev-snp-measure vectors, argument lists as given', () => {
  for (const v of vectors) {
    const mode = v.args[v.args.indexOf('--mode') + 1];
    if (mode === 'seves') continue; // SEV-ES is `sev-attest digest`; the app test checks this vector
    it(`${mode}: ${v.note}`, async () => {
      const args =
        mode === 'snp:ovmf-hash'
          ? ['snp', 'ovmf-hash', ...v.args.filter((_, i) => i > 1)]
          : ['snp', 'digest', ...v.args];
      const r = await cli(args, DIR);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toBe(v.expected + '\n');
    });
  }

  it('--verbose prints what was measured and still ends with the digest line', async () => {
    const r = await cli(
      [
        'snp',
        'digest',
        '--ovmf=ovmf_AmdSev_suffix.bin',
        '--vcpus=4',
        '--vcpu-family=25',
        '--vcpu-model=1',
        '--vcpu-stepping=1',
        '--kernel=inputs/kernel-17k.bin',
        '--initrd=inputs/initrd-9k.bin',
        '--append=root=/dev/vda1 ro quiet',
        '-v',
      ],
      DIR,
    );
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(5);
    expect(r.out).toMatch(/section kernel-hashes at 0x00810000, 1 page/);
    expect(r.out).toMatch(/vCPU signature 0x00a00f11/);
    expect(lines.at(-1)).toBe(vectors[4]!.expected);
  });

  it('ovmf-hash in base64 and the vCPU type in any case', async () => {
    const a = await cli(
      ['snp', 'ovmf-hash', '--ovmf', 'ovmf_AmdSev_suffix.bin', '--output-format=base64'],
      DIR,
    );
    expect(hexOfBase64(a.out.trim())).toBe(vectors[3]!.expected);
    const b = await cli(
      [
        'snp',
        'digest',
        '--ovmf=ovmf_AmdSev_suffix.bin',
        '--vcpus=4',
        '--vcpu-type=epyc-milan',
        '--vmm-type=qemu',
      ],
      DIR,
    );
    const c = await cli(
      ['snp', 'digest', '--ovmf=ovmf_AmdSev_suffix.bin', '--vcpus=4', '--vcpu-sig=0xa00f11'],
      DIR,
    );
    expect(b.code).toBe(0);
    expect(b.out).toBe(c.out);
  });
});

describe('sev-attest snp id-block', () => {
  const base = [
    'snp',
    'id-block',
    `--measurement=${python.measurement}`,
    '--policy=0x30000',
    '--id-key=id_key_test.pem',
    '--author-key=author_key_test.pem',
  ];

  it('prints the block, auth and key digests; block and digests equal sev-snp-measure', async () => {
    const r = await cli(base, DIR);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const fields = Object.fromEntries(
      r.out
        .trim()
        .split('\n')
        .map((l) => l.split(': ') as [string, string]),
    );
    expect(Object.keys(fields)).toEqual(['idBlock', 'idAuth', 'idKeyDigest', 'authorKeyDigest']);
    expect(fields.idBlock).toBe(python.idBlock);
    expect(fields.idKeyDigest).toBe(hexOfBase64(python.idKeyDigest!));
    expect(fields.authorKeyDigest).toBe(hexOfBase64(python.authorKeyDigest!));
    const v = verifyIdBlock(Buffer.from(fields.idBlock!, 'base64'), Buffer.from(fields.idAuth!, 'base64'));
    expect(Buffer.from(v.idKeyDigest).toString('hex')).toBe(fields.idKeyDigest);
  });

  it('--json with family/image IDs and an SVN', async () => {
    const r = await cli(
      [...base, '--family-id', '11'.repeat(16), '--image-id', '22'.repeat(16), '--svn', '7', '--json'],
      DIR,
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as Record<string, string>;
    const block = Buffer.from(j.idBlock!, 'base64');
    expect(block.length).toBe(96);
    expect(block.subarray(0x30, 0x40).toString('hex')).toBe('11'.repeat(16));
    expect(block.subarray(0x40, 0x50).toString('hex')).toBe('22'.repeat(16));
    expect(block.readUInt32LE(0x54)).toBe(7);
    expect(Buffer.from(j.idAuth!, 'base64').length).toBe(4096);
    expect(j.authorKeyDigest).toBe(hexOfBase64(python.authorKeyDigest!));
  });
});

describe('sev-attest snp verify-id-block', () => {
  const given = ['snp', 'verify-id-block', `--id-block=${python.idBlock}`, `--id-auth=${python.idAuth}`];

  it("accepts sev-snp-measure's block with the expected digests, measurement and policy", async () => {
    const r = await cli([
      ...given,
      `--id-key-digest=${hexOfBase64(python.idKeyDigest!)}`,
      `--author-key-digest=${hexOfBase64(python.authorKeyDigest!)}`,
      `--measurement=${python.measurement}`,
      '--policy=0x30000',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^signatures: valid \(ID key over the block, author key over the ID key\)\n/);
    expect(r.out).toContain(`idKeyDigest: ${hexOfBase64(python.idKeyDigest!)}\n`);
    expect(r.out).not.toMatch(/MISMATCH/);
  });

  it('a different measurement or policy is exit 1 with the mismatch named', async () => {
    const r = await cli([...given, `--measurement=${'00'.repeat(48)}`, '--policy=0x30001', '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out) as { ok: boolean; problems: string[] };
    expect(j.ok).toBe(false);
    expect(j.problems).toHaveLength(2);
  });

  it('a changed auth byte or another expected key is exit 1 with the reason', async () => {
    const auth = Buffer.from(python.idAuth!, 'base64');
    auth[0x50]! ^= 1; // inside r of the block signature
    const r = await cli([
      'snp',
      'verify-id-block',
      `--id-block=${python.idBlock}`,
      `--id-auth=${auth.toString('base64')}`,
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^sev-attest snp verify-id-block: the ID block signature does not verify .*\(bad-signature\)\n$/,
    );
    const k = await cli([...given, `--id-key-digest=${hexOfBase64(python.authorKeyDigest!)}`]);
    expect(k.code).toBe(1);
    expect(k.err).toMatch(/not the expected one .*\(bad-key\)/);
  });
});

describe('sev-attest snp: help and dispatch', () => {
  it('lists the subcommands; each subcommand has its own --help', async () => {
    const top = await cli(['--help']);
    expect(top.out).toMatch(/\n {2}snp {12}SEV-SNP/);
    const r = await cli(['snp', '--help']);
    expect(r.code).toBe(0);
    for (const s of snpSubcommands) expect(r.out).toContain(s.name);
    const d = await cli(['snp', 'digest', '--help']);
    expect(d.code).toBe(0);
    expect(d.out).toMatch(/^usage: sev-attest snp digest --ovmf FILE/);
    const i = await cli(['snp', 'id-block', '-h']);
    expect(i.out).toMatch(/^usage: sev-attest snp id-block/);
  });

  it("subcommand entries have their commands' names and summaries", async () => {
    for (const s of snpSubcommands) {
      const cmd = await s.load();
      expect({ name: cmd.name, summary: cmd.summary }).toEqual({ name: s.name, summary: s.summary });
    }
  });

  it('no subcommand is a usage error (exit 2) that prints the list', async () => {
    const r = await cli(['snp']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/subcommands:/);
  });
});

const FW = '--ovmf=ovmf_AmdSev_suffix.bin';
const bad: [string[], RegExp, number][] = [
  [['snp', 'verify-id-block', '--id-auth=AAAA'], /--id-block is required/, 2],
  [
    ['snp', 'verify-id-block', '--id-block=not base64!', '--id-auth=AAAA'],
    /--id-block must be standard base64/,
    2,
  ],
  [
    ['snp', 'verify-id-block', '--id-block=AAAA', '--id-auth=AAAA'],
    /an ID block is 96 bytes, got 3 \(bad-length\)/,
    1,
  ],
  [
    ['snp', 'frobnicate'],
    /^sev-attest snp: unknown subcommand 'frobnicate'; known: digest, ovmf-hash, id-block, verify-id-block, verify-report$/,
    2,
  ],
  [['snp', 'digest', '--vcpus=1', '--vcpu-type=EPYC'], /--ovmf FILE is required/, 2],
  [['snp', 'digest', FW, '--vcpu-type=EPYC'], /--vcpus N is required/, 2],
  [['snp', 'digest', FW, '--vcpus=0', '--vcpu-type=EPYC'], /at least 1/, 2],
  [['snp', 'digest', FW, '--vcpus=4097', '--vcpu-type=EPYC'], /--vcpus must be an integer in 0\.\.4096/, 2],
  [['snp', 'digest', FW, '--vcpus=2'], /QEMU puts the guest CPU signature/, 2],
  [
    ['snp', 'digest', FW, '--vcpus=2', '--vcpu-type=Pentium'],
    /unknown --vcpu-type 'Pentium'; known: EPYC,/,
    2,
  ],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-type=EPYC', '--vcpu-sig=1'], /give one of --vcpu-type/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-family=25'], /go together/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=0x1ffffffff'], /--vcpu-sig must be an integer/, 2],
  [
    ['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--vmm-type=xen'],
    /--vmm-type must be QEMU, ec2 or gce/,
    2,
  ],
  [
    ['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--guest-features=0x1ffffffffffffffff'],
    /guest-features/,
    2,
  ],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--guest-features=lots'], /guest-features/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--initrd=x'], /--initrd needs --kernel/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--append=quiet'], /--append needs --kernel/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--output-format=json'], /hex or base64/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--snp-ovmf-hash=00'], /96 hex digits/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--mode=seves'], /'sev-attest digest' for SEV/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--frobnicate'], /Unknown option '--frobnicate'/, 2],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', 'extra'], /unexpected argument 'extra'/, 2],
  [
    ['snp', 'digest', '--ovmf=missing.fd', '--vcpus=2', '--vcpu-sig=1'],
    /the --ovmf file 'missing.fd' does not exist$/,
    2,
  ],
  [
    ['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--kernel=nope'],
    /the --kernel file 'nope' does not exist$/,
    2,
  ],
  [['snp', 'digest', FW, '--vcpus=2', '--vcpu-sig=1', '--kernel=inputs'], /is a directory/, 2],
  [
    ['snp', 'digest', '--ovmf=vectors.json', '--vcpus=2', '--vcpu-sig=1'],
    /not an OVMF image with a footer table.*\(bad-format\)/,
    1,
  ],
  [
    ['snp', 'digest', '--ovmf=ovmf_OvmfX64_suffix.bin', '--vcpus=2', '--vcpu-sig=1', '--kernel=/dev/null'],
    /KERNEL_HASHES.*\(firmware-unsupported\)/,
    1,
  ],
  [['snp', 'ovmf-hash'], /--ovmf FILE is required/, 2],
  [['snp', 'ovmf-hash', '--ovmf=gone.fd'], /the --ovmf file 'gone.fd' does not exist/, 2],
  [['snp', 'id-block', '--policy=0x30000'], /--measurement is required/, 2],
  [
    ['snp', 'id-block', '--measurement=abcd', '--policy=0x30000', '--id-key=a', '--author-key=b'],
    /--measurement must be 48 bytes in hex/,
    2,
  ],
  [
    [
      'snp',
      'id-block',
      `--measurement=${'00'.repeat(48)}`,
      '--policy=0x10000',
      '--id-key=a',
      '--author-key=b',
    ],
    /lacks bit 17/,
    2,
  ],
  [
    [
      'snp',
      'id-block',
      `--measurement=${'00'.repeat(48)}`,
      '--policy=0x30000',
      '--id-key=none.pem',
      '--author-key=b',
    ],
    /the --id-key file 'none.pem' does not exist/,
    2,
  ],
  [
    [
      'snp',
      'id-block',
      `--measurement=${'00'.repeat(48)}`,
      '--policy=0x30000',
      '--id-key=vectors.json',
      '--author-key=author_key_test.pem',
    ],
    /the ID key is not a readable unencrypted PEM private key .*\(bad-key\)/,
    1,
  ],
  [
    [
      'snp',
      'id-block',
      `--measurement=${'00'.repeat(48)}`,
      '--policy=0x30000',
      '--id-key=id_key_test.pem',
      '--author-key=author_key_test.pem',
      '--family-id=00',
    ],
    /--family-id must be 16 bytes in hex/,
    2,
  ],
];

describe('sev-attest snp: bad arguments are one clear line', () => {
  for (const [args, msg, code] of bad) {
    it(`${args.slice(1).join(' ')}`, async () => {
      const r = await cli(args, DIR);
      expect(r.out).toBe('');
      expect(r.err.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.err.trimEnd()).toMatch(msg);
      expect(r.err).toMatch(/^sev-attest snp( [a-z-]+)?: /);
      expect(r.err).not.toMatch(/ENOENT|\n\s+at /);
      expect(r.code).toBe(code);
    });
  }
});
