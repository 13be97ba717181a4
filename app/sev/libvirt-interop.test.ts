/**
 * Agreement with libvirt's own validator (/usr/bin/virt-qemu-sev-validate, Debian libvirt-clients-qemu):
 * measurements we compute are accepted by it, and secret packets it writes decrypt, authenticate and parse
 * with our code (and ours are byte-identical given the same IV and padding).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeLaunchDigest } from '../digest/launch-digest';
import { computeMeasurement } from './measurement';
import { LUKS_PASSPHRASE_GUID, SecretTable, packageSecret } from './secret';
import { concat, fromBase64, toBase64, toHex, u32le } from './bytes';

const TOOL = '/usr/bin/virt-qemu-sev-validate';
const PYTHON = '/usr/bin/python3';
const haveTool = existsSync(TOOL) && existsSync(PYTHON);
const SEVCTL = join(process.cwd(), 'test/fixtures/vectors/sevctl');
const TRIMMED = join(SEVCTL, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';

function libvirt(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(PYTHON, [TOOL, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function keyFiles(dir: string) {
  const tek = new Uint8Array(randomBytes(16));
  const tik = new Uint8Array(randomBytes(16));
  writeFileSync(join(dir, 'tek.bin'), tek);
  writeFileSync(join(dir, 'tik.bin'), tik);
  writeFileSync(join(dir, 'tk.bin'), concat(tek, tik));
  return {
    tek,
    tik,
    tekPath: join(dir, 'tek.bin'),
    tikPath: join(dir, 'tik.bin'),
    tkPath: join(dir, 'tk.bin'),
  };
}

describe.skipIf(!haveTool)(`libvirt virt-qemu-sev-validate agrees (needs ${TOOL} and ${PYTHON})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sev-libvirt-'));
  const keys = keyFiles(dir);
  const mnonce = new Uint8Array(randomBytes(16));

  interface Case {
    name: string;
    firmware: string;
    policy: number;
    kernel?: boolean;
    es?: { cpus: number; family: number; model: number; stepping: number };
  }
  const cases: Case[] = [
    { name: 'SEV, sevctl trimmed AmdSev firmware', firmware: TRIMMED, policy: 0x1 },
    { name: 'SEV, trimmed firmware + kernel/initrd/cmdline', firmware: TRIMMED, policy: 0x3, kernel: true },
    {
      name: 'SEV-ES, trimmed firmware, 4 vCPUs EPYC-Milan',
      firmware: TRIMMED,
      policy: 0x5,
      es: { cpus: 4, family: 25, model: 1, stepping: 1 },
    },
    { name: "SEV, Debian's OVMF.fd", firmware: DEBIAN_OVMF, policy: 0x1 },
    {
      name: "SEV-ES, Debian's OVMF.fd, 2 vCPUs EPYC-v4",
      firmware: DEBIAN_OVMF,
      policy: 0x7,
      es: { cpus: 2, family: 23, model: 1, stepping: 2 },
    },
  ];

  for (const c of cases) {
    it.skipIf(!existsSync(c.firmware))(`${c.name}: our measurement is accepted`, async () => {
      const kernel = join(SEVCTL, 'measurement/vmlinuz-fake');
      const initrd = join(SEVCTL, 'measurement/initrd-fake');
      const cmdline = 'console=ttyS0 root=/dev/vda1';
      const r = await computeLaunchDigest({
        firmware: c.firmware,
        sevEs: c.es !== undefined,
        ...(c.kernel ? { kernel, initrd, cmdline } : {}),
        ...(c.es ? { cpus: c.es.cpus, cpuSignature: c.es, vmsaVariant: 'legacy' as const } : {}),
      });
      const params = {
        tik: keys.tik,
        apiMajor: 1,
        apiMinor: 49,
        build: 6,
        policy: c.policy,
        digest: r.digest,
        mnonce,
      };
      const blob = toBase64(concat(computeMeasurement(params), mnonce));
      const args = [
        '--tik',
        keys.tikPath,
        '--tek',
        keys.tekPath,
        '--measurement',
        blob,
        '--api-major',
        '1',
        '--api-minor',
        '49',
        '--build-id',
        '6',
        '--policy',
        String(c.policy),
        '--firmware',
        c.firmware,
      ];
      if (c.kernel) args.push('--kernel', kernel, '--initrd', initrd, '--cmdline', cmdline);
      if (c.es)
        args.push(
          '--num-cpus',
          String(c.es.cpus),
          '--cpu-family',
          String(c.es.family),
          '--cpu-model',
          String(c.es.model),
          '--cpu-stepping',
          String(c.es.stepping),
        );
      const ok = libvirt(args);
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe('OK: Looks good to me\n');
      expect(ok.status).toBe(0);

      // A different build id must be rejected by libvirt too: the agreement is not vacuous.
      const wrong = libvirt(args.map((a, i) => (args[i - 1] === '--build-id' ? '7' : a)));
      expect(wrong.status).toBe(1);
      expect(wrong.stderr).toBe('ERROR: Measurement does not match, VM is not trustworthy\n');
    });
  }

  it('a secret packaged by libvirt decrypts, authenticates and parses with our code; ours is byte-identical', async () => {
    const digest = (await computeLaunchDigest({ firmware: TRIMMED, sevEs: false })).digest;
    const params = { tik: keys.tik, apiMajor: 1, apiMinor: 49, build: 6, policy: 1, digest, mnonce };
    const measure = computeMeasurement(params);
    // 24 bytes of data make the table 64 bytes: aligned, so libvirt 9 adds a 16-byte block.
    const passphrase = new TextEncoder().encode('correct horse battery\0\0\0');
    expect(passphrase.length).toBe(24);
    const secretFile = join(dir, 'luks.txt');
    writeFileSync(secretFile, passphrase);
    const headerPath = join(dir, 'header.b64');
    const payloadPath = join(dir, 'payload.b64');
    const r = libvirt([
      '--tk',
      keys.tkPath,
      '--measurement',
      toBase64(concat(measure, mnonce)),
      '--api-major',
      '1',
      '--api-minor',
      '49',
      '--build-id',
      '6',
      '--policy',
      '1',
      '--firmware',
      TRIMMED,
      '--inject-secret',
      `luks-key:${secretFile}`,
      '--secret-header',
      headerPath,
      '--secret-payload',
      payloadPath,
    ]);
    expect(r.stdout).toBe('OK: Looks good to me\nOK: Injected 1 secrets\n');
    expect(r.status).toBe(0);
    const header = fromBase64(readFileSync(headerPath, 'utf8'));
    const payload = fromBase64(readFileSync(payloadPath, 'utf8'));
    expect(header.length).toBe(52);
    expect(payload.length).toBe(80); // libvirt9 padding of an aligned 64-byte table

    // Firmware-side check written from docs/protocol.md §7: MAC over ciphertext and measure, then AES-CTR with the TEK.
    const iv = header.subarray(4, 20);
    const mac = createHmac('sha256', keys.tik)
      .update(Uint8Array.of(1))
      .update(header.subarray(0, 4))
      .update(iv)
      .update(u32le(payload.length))
      .update(u32le(payload.length))
      .update(payload)
      .update(measure)
      .digest();
    expect(toHex(mac)).toBe(toHex(header.subarray(20)));
    const d = createDecipheriv('aes-128-ctr', keys.tek, iv);
    const plain = new Uint8Array(Buffer.concat([d.update(payload), d.final()]));
    const table = SecretTable.parse(plain);
    expect(table.entries).toHaveLength(1);
    expect(table.entries[0]!.guid).toBe(LUKS_PASSPHRASE_GUID);
    expect(toHex(table.entries[0]!.data)).toBe(toHex(passphrase));

    // Ours, with the same IV and libvirt's padding, produces the very same packet.
    const ours = packageSecret({
      tek: keys.tek,
      tik: keys.tik,
      table: new SecretTable().add(LUKS_PASSPHRASE_GUID, passphrase).build({ padding: 'libvirt9' }),
      measurement: measure,
      apiMajor: 1,
      apiMinor: 49,
      iv: Uint8Array.from(iv),
    });
    expect(toBase64(ours.header)).toBe(toBase64(header));
    expect(toBase64(ours.payload)).toBe(toBase64(payload));
    // With our default (aligned) padding the table is one block shorter.
    expect(new SecretTable().add(LUKS_PASSPHRASE_GUID, passphrase).build().length).toBe(64);
  });
});
