/**
 * A secret that libvirt's own validator packages for a real (simulated) launch is accepted and decrypted
 * by our simulated firmware's LAUNCH_SECRET, and so is ours: the firmware side of both packets agrees.
 * The simulated firmware is written from the protocol document, independently of app/sev/secret.ts.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concat, fromBase64, toBase64, toHex } from '../../app/sev/bytes';
import { LUKS_PASSPHRASE_GUID, SecretTable, packageSecret } from '../../app/sev/secret';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import { buildSessionForTest } from '../helpers/sim-testing';

const TOOL = '/usr/bin/virt-qemu-sev-validate';
const PYTHON = '/usr/bin/python3';
const haveTool = existsSync(TOOL) && existsSync(PYTHON);
const TRIMMED = join(
  process.cwd(),
  'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9',
);

describe.skipIf(!haveTool)(`libvirt-packaged secrets reach the simulated guest (needs ${TOOL})`, () => {
  it('libvirt packages for our simulated launch; the simulated firmware verifies and decrypts both its packet and ours', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sev-libvirt-sim-'));
    const platform = SimulatedSevPlatform.create();
    const tek = new Uint8Array(randomBytes(16));
    const tik = new Uint8Array(randomBytes(16));
    writeFileSync(join(dir, 'tk.bin'), concat(tek, tik));
    const policy = 0x1;
    const firmware = new Uint8Array(readFileSync(TRIMMED));
    // Two guests launched identically: LAUNCH_SECRET is accepted once per measurement context.
    const launch = () => {
      const { ownerCert, session } = buildSessionForTest({ pdh: platform.pdh, policy, tek, tik });
      const guest = platform.launchStart({ policy, ownerCert, session });
      guest.launchUpdateData(firmware);
      return { guest, measurement: guest.launchMeasure() };
    };
    const passphrase = new TextEncoder().encode('correct horse battery staple\0');
    writeFileSync(join(dir, 'luks.txt'), passphrase);

    const a = launch();
    const r = spawnSync(
      PYTHON,
      [
        TOOL,
        '--tk',
        join(dir, 'tk.bin'),
        '--measurement',
        toBase64(a.measurement),
        '--api-major',
        String(platform.apiMajor),
        '--api-minor',
        String(platform.apiMinor),
        '--build-id',
        String(platform.build),
        '--policy',
        String(policy),
        '--firmware',
        TRIMMED,
        '--inject-secret',
        `luks-key:${join(dir, 'luks.txt')}`,
        '--secret-header',
        join(dir, 'hdr.b64'),
        '--secret-payload',
        join(dir, 'payload.b64'),
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.stdout).toBe('OK: Looks good to me\nOK: Injected 1 secrets\n');
    const header = fromBase64(readFileSync(join(dir, 'hdr.b64'), 'utf8'));
    const payload = fromBase64(readFileSync(join(dir, 'payload.b64'), 'utf8'));
    const fromLibvirt = a.guest.launchSecret({ header, payload });
    expect(fromLibvirt.entries.map((e) => e.guid)).toEqual([LUKS_PASSPHRASE_GUID]);
    expect(toHex(fromLibvirt.entries[0]!.data)).toBe(toHex(passphrase));

    const b = launch();
    const ours = packageSecret({
      tek,
      tik,
      table: new SecretTable().add(LUKS_PASSPHRASE_GUID, passphrase).build(),
      measurement: b.measurement.subarray(0, 32),
      apiMajor: platform.apiMajor,
      apiMinor: platform.apiMinor,
    });
    const fromUs = b.guest.launchSecret(ours);
    expect(toHex(fromUs.entries[0]!.data)).toBe(toHex(passphrase));

    // libvirt's packet is bound to launch A's measurement: launch B's firmware refuses it.
    const c = launch();
    expect(() => c.guest.launchSecret({ header, payload })).toThrow(/BAD_MEASUREMENT|MAC|mac/i);
  });
});
