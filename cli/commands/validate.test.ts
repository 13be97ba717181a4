import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../run';
import { validateCommand } from './validate';
import { computeMeasurement } from '../../app/sev/measurement';
import { LUKS_PASSPHRASE_GUID, SecretTable } from '../../app/sev/secret';
import { concat, fromBase64, toBase64, toHex } from '../../app/sev/bytes';
import { createDecipheriv } from 'node:crypto';

const SEVCTL = join(process.cwd(), 'test/fixtures/vectors/sevctl');
const FIRMWARE = join(SEVCTL, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const TOOL = '/usr/bin/virt-qemu-sev-validate';

async function run(args: string[], cwd = process.cwd()) {
  let out = '';
  let err = '';
  const code = await runCli(
    ['validate', ...args],
    { out: (t) => (out += t), err: (t) => (err += t), env: {}, cwd },
    [validateCommand],
  );
  return { code, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'sev-validate-'));
const tek = new Uint8Array(randomBytes(16));
const tik = new Uint8Array(randomBytes(16));
writeFileSync(join(dir, 'tek.bin'), tek);
writeFileSync(join(dir, 'tik.bin'), tik);
writeFileSync(join(dir, 'tk.bin'), concat(tek, tik));
const mnonce = new Uint8Array(randomBytes(16));
const fwDigest = new Uint8Array(createHash('sha256').update(readFileSync(FIRMWARE)).digest());

function blobFor(
  digest: Uint8Array,
  over: Partial<{ policy: number; build: number; apiMajor: number; apiMinor: number }> = {},
) {
  const m = computeMeasurement({
    tik,
    apiMajor: 1,
    apiMinor: 49,
    build: 6,
    policy: 1,
    digest,
    mnonce,
    ...over,
  });
  return toBase64(concat(m, mnonce));
}

const common = (measurement: string, policy = '1') => [
  '--tik',
  join(dir, 'tik.bin'),
  '--tek',
  join(dir, 'tek.bin'),
  '--measurement',
  measurement,
  '--api-major',
  '1',
  '--api-minor',
  '49',
  '--build-id',
  '6',
  '--policy',
  policy,
];

/** The OK-path arguments with one luks-key secret, its header and payload written to `h` and `p`. */
const withSecret = (secret: string, h: string, p: string) => [
  ...common(blobFor(fwDigest)),
  '-f',
  FIRMWARE,
  '-s',
  `luks-key:${secret}`,
  '--secret-header',
  h,
  '--secret-payload',
  p,
];

describe('sev-attest validate', () => {
  it('OK path: firmware, and the same check with --launch-digest, -q, relative paths', async () => {
    const r = await run([...common(blobFor(fwDigest)), '--firmware', FIRMWARE]);
    expect(r).toEqual({ code: 0, out: 'OK: Looks good to me\n', err: '' });
    const d = await run([...common(blobFor(fwDigest)), '--launch-digest', toHex(fwDigest)]);
    expect(d.code).toBe(0);
    const q = await run(['-q', ...common(blobFor(fwDigest)), '--launch-digest', toBase64(fwDigest)]);
    expect(q).toEqual({ code: 0, out: '', err: '' });
    const rel = await run(['--tk', 'tk.bin', ...common(blobFor(fwDigest)).slice(4), '-f', FIRMWARE], dir);
    expect(rel.code).toBe(0);
  });

  it("mismatch: exit 1 and libvirt's error line; quiet prints nothing", async () => {
    const r = await run([...common(blobFor(fwDigest, { build: 7 })), '--firmware', FIRMWARE]);
    expect(r).toEqual({
      code: 1,
      out: '',
      err: 'ERROR: Measurement does not match, VM is not trustworthy\n',
    });
    const q = await run(['--quiet', ...common(blobFor(fwDigest, { build: 7 })), '--firmware', FIRMWARE]);
    expect(q).toEqual({ code: 1, out: '', err: '' });
  });

  it('--debug prints the digest and both measurements', async () => {
    const r = await run(['--debug', ...common(blobFor(fwDigest)), '--firmware', FIRMWARE]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`[DEBUG]: Launch digest(hex): ${toHex(fwDigest)}`);
    expect(r.err).toMatch(/Measurement computed\(hex\): [0-9a-f]{64}/);
  });

  it('SEV-ES with VMSA files (sevctl vmsa0/vmsa1) and with a CPU SKU give the same answer', async () => {
    const v0 = readFileSync(join(SEVCTL, 'vmsa0.bin'));
    const v1 = readFileSync(join(SEVCTL, 'vmsa1.bin'));
    const digest = new Uint8Array(
      createHash('sha256').update(readFileSync(FIRMWARE)).update(v0).update(v1).update(v1).digest(),
    );
    const m = blobFor(digest, { policy: 5 });
    const files = await run([
      ...common(m, '5'),
      '-f',
      FIRMWARE,
      '-n',
      '3',
      '-0',
      join(SEVCTL, 'vmsa0.bin'),
      '-1',
      join(SEVCTL, 'vmsa1.bin'),
    ]);
    expect(files.err).toBe('');
    expect(files.code).toBe(0);
    const withSku = (family: string, model: string, stepping: string) =>
      run([
        ...common(m, '5'),
        '-f',
        FIRMWARE,
        '-n',
        '3',
        '--cpu-family',
        family,
        '--cpu-model',
        model,
        '--cpu-stepping',
        stepping,
      ]);
    const sku = await withSku('25', '1', '1');
    expect(sku.code).toBe(0);
    const wrongCpu = await withSku('25', '17', '0');
    expect(wrongCpu.code).toBe(1);
  });

  it('writes secret header/payload as base64 files that decrypt to the table', async () => {
    const secret = join(dir, 'pass.txt');
    writeFileSync(secret, 'open sesame\0');
    const h = join(dir, 'h.b64');
    const p = join(dir, 'p.b64');
    const r = await run(withSecret(secret, h, p));
    expect(r).toEqual({ code: 0, out: 'OK: Looks good to me\nOK: Injected 1 secrets\n', err: '' });
    const header = fromBase64(readFileSync(h, 'utf8'));
    const payload = fromBase64(readFileSync(p, 'utf8'));
    expect(header.length).toBe(52);
    const d = createDecipheriv('aes-128-ctr', tek, header.subarray(4, 20));
    const table = SecretTable.parse(new Uint8Array(Buffer.concat([d.update(payload), d.final()])));
    expect(table.entries[0]!.guid).toBe(LUKS_PASSPHRASE_GUID);
    expect(Buffer.from(table.entries[0]!.data).toString()).toBe('open sesame\0');
    expect(payload.length).toBe(64); // 20 + 20 + 12 = 52 bytes, zero-padded to 64
  });

  it('warns when a luks-key file lacks the NUL grub needs, and honours --secret-padding libvirt9', async () => {
    const secret = join(dir, 'pass24.txt');
    writeFileSync(secret, 'x'.repeat(24));
    const h = join(dir, 'h2.b64');
    const p = join(dir, 'p2.b64');
    const r = await run([...withSecret(secret, h, p), '--secret-padding', 'libvirt9']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/does not end with a NUL byte/);
    expect(fromBase64(readFileSync(p, 'utf8')).length).toBe(80);
  });

  describe('bad arguments: exit 2 with a clear message', () => {
    const cases: [string, string[], RegExp][] = [
      ['no keys', ['--measurement', 'x'], /Either --tk or both of --tek\/--tik are required/],
      ['tk and tik', ['--tk', 'a', '--tik', 'b'], /--tk is mutually exclusive with --tek\/--tik/],
      ['no measurement', ['--tk', 'a'], /--measurement is required/],
      ['no firmware', [...common('AAAA')], /--firmware \(or --launch-digest\) is required/],
      [
        'initrd without kernel',
        [...common('AAAA'), '-f', FIRMWARE, '-r', 'x'],
        /--initrd\/--cmdline require --kernel/,
      ],
      [
        'partial sku',
        [...common('AAAA'), '-f', FIRMWARE, '--cpu-family', '25'],
        /CPU SKU needs family, model and stepping/,
      ],
      [
        'vmsa and sku',
        [
          ...common('AAAA'),
          '-f',
          FIRMWARE,
          '-0',
          'a',
          '--cpu-family',
          '25',
          '--cpu-model',
          '1',
          '--cpu-stepping',
          '1',
        ],
        /mutually exclusive with CPU SKU/,
      ],
      [
        'secret without header',
        [...common('AAAA'), '-f', FIRMWARE, '-s', 'luks-key:x'],
        /requires --secret-header/,
      ],
      [
        'bad policy',
        [...common(blobFor(fwDigest), 'lots'), '-f', FIRMWARE],
        /--policy: guest policy must be a decimal or 0x-hex/,
      ],
      [
        'ES without cpus',
        [...common(blobFor(fwDigest), '5'), '-f', FIRMWARE],
        /Number of virtual CPUs must be specified for SEV-ES domain/,
      ],
      [
        'ES without vmsa',
        [...common(blobFor(fwDigest), '5'), '-f', FIRMWARE, '-n', '2'],
        /VMSA for boot CPU required/,
      ],
      ['domain', ['--domain', 'vm1'], /not supported by sev-attest validate; use sev-attest-host/],
      [
        'unknown alias',
        [
          ...common(blobFor(fwDigest)),
          '-f',
          FIRMWARE,
          '-s',
          'disk:x',
          '--secret-header',
          'h',
          '--secret-payload',
          'p',
        ],
        /Secret alias 'disk' is not known/,
      ],
      [
        'bad secret spec',
        [
          ...common(blobFor(fwDigest)),
          '-f',
          FIRMWARE,
          '-s',
          'a:b:c',
          '--secret-header',
          'h',
          '--secret-payload',
          'p',
        ],
        /Expecting ALIAS-OR-GUID:PATH/,
      ],
      [
        'digest plus firmware',
        [...common('AAAA'), '-f', FIRMWARE, '--launch-digest', '00'],
        /replaces the firmware/,
      ],
      [
        'bad digest',
        [...common(blobFor(fwDigest)), '--launch-digest', 'abcd'],
        /--launch-digest must be 32 bytes/,
      ],
    ];
    for (const [name, args, re] of cases) {
      it(name, async () => {
        const r = await run(args);
        expect(r.err).toMatch(re);
        expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
        expect(r.code).toBe(2);
      });
    }
    it('short TIK file', async () => {
      writeFileSync(join(dir, 'short.bin'), new Uint8Array(15));
      const args = [...common(blobFor(fwDigest)), '-f', FIRMWARE].map((a) =>
        a.endsWith('tik.bin') ? join(dir, 'short.bin') : a,
      );
      const r = await run(args);
      expect(r).toMatchObject({ code: 2, err: 'ERROR: Expected 16 bytes in TIK file, but got 15\n' });
    });
    it('unknown option (parseArgs)', async () => {
      const r = await run(['--frobnicate']);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/Unknown option '--frobnicate'/);
    });
  });

  it('missing firmware file: exit 6 like libvirt', async () => {
    const r = await run([...common(blobFor(fwDigest)), '-f', join(dir, 'nope.fd')]);
    expect(r.code).toBe(6);
    expect(r.err).toMatch(/^ERROR: .*no such file/i);
  });

  it('--min-api refuses older firmware (exit 1)', async () => {
    const r = await run([...common(blobFor(fwDigest)), '-f', FIRMWARE, '--min-api', '1.51']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/firmware API 1\.49 is older than the required minimum 1\.51/);
  });

  it.skipIf(!existsSync(TOOL))(
    'gives the same exit codes and lines as libvirt for OK and mismatch',
    async () => {
      for (const blob of [blobFor(fwDigest), blobFor(fwDigest, { policy: 3 })]) {
        const args = [...common(blob), '--firmware', FIRMWARE];
        const ours = await run(args);
        const theirs = spawnSync('/usr/bin/python3', [TOOL, ...args], { encoding: 'utf8' });
        expect(ours.code).toBe(theirs.status);
        expect(ours.out).toBe(theirs.stdout);
        expect(ours.err).toBe(theirs.stderr);
      }
    },
  );

  describe('as a drop-in for libvirt (compared with /usr/bin/virt-qemu-sev-validate)', () => {
    const libvirt = (args: string[]) => {
      const r = spawnSync('/usr/bin/python3', [TOOL, ...args], { encoding: 'utf8' });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    const withApi = (major: string) =>
      common(blobFor(fwDigest)).map((a, i, all) => (all[i - 1] === '--api-major' ? major : a));
    const cases: Array<[string, string[]]> = [
      [
        '--connect without --domain is ignored',
        [...common(blobFor(fwDigest)), '-f', FIRMWARE, '--connect', 'qemu:///system'],
      ],
      [
        'unambiguous prefixes of long options',
        [
          '--meas',
          blobFor(fwDigest),
          '--tik',
          join(dir, 'tik.bin'),
          '--tek',
          join(dir, 'tek.bin'),
          '--api-maj',
          '1',
          '--api-min=49',
          '--build',
          '6',
          '--pol',
          '1',
          '--firm',
          FIRMWARE,
        ],
      ],
      ['a short measurement is a mismatch', [...common('AAAA'), '-f', FIRMWARE]],
      ['characters outside base64 are dropped, as Python does', [...common('@@@'), '-f', FIRMWARE]],
      ['base64 with bad padding', [...common('abc'), '-f', FIRMWARE]],
      ['an API major above 255', [...withApi('300'), '-f', FIRMWARE]],
      [
        'a negative API major',
        [
          ...withApi('300').filter((a) => a !== '--api-major' && a !== '300'),
          '--api-major=-1',
          '-f',
          FIRMWARE,
        ],
      ],
      ['a policy above 32 bits', [...common(blobFor(fwDigest), '4294967297'), '-f', FIRMWARE]],
    ];
    for (const [name, args] of cases) {
      it.skipIf(!existsSync(TOOL))(name, async () => {
        const theirs = libvirt(args);
        const ours = await run(args);
        expect(ours.code, ours.err).toBe(theirs.code);
        expect(ours.out).toBe(theirs.out);
        expect(ours.err).toBe(theirs.err);
      });
    }

    it.skipIf(!existsSync(TOOL))('an ambiguous prefix is a usage error (exit 2) in both', async () => {
      const args = [...common(blobFor(fwDigest)), '-f', FIRMWARE, '--api', '1'];
      expect(libvirt(args).code).toBe(2);
      const ours = await run(args);
      expect(ours.code).toBe(2);
      expect(ours.err).toMatch(/ambiguous option: --api could match --api-major, --api-minor/);
    });

    it.skipIf(!existsSync(TOOL))("--debug prints libvirt's line names with the same values", async () => {
      const args = ['--debug', ...common(blobFor(fwDigest, { build: 7 })), '-f', FIRMWARE];
      const theirs = libvirt(args);
      const ours = await run(args);
      expect(ours.code).toBe(theirs.code);
      const lines = (text: string) =>
        text
          .split('\n')
          .filter((l) =>
            /^\[DEBUG\]: (Firmware|Measured-data|Measured-msg|Measurement reported|Measurement computed)/.test(
              l,
            ),
          );
      expect(lines(ours.err)).toEqual(lines(theirs.err));
      expect(lines(ours.err)).toHaveLength(5);
      // Never the keys, unlike libvirt.
      expect(ours.err).not.toMatch(/TIK\(hex\)|TEK\(hex\)/);
    });
  });
});
