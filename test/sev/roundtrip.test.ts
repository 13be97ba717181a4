/**
 * Owner side (app/sev: session, measurement, secret) against the independently written simulated
 * firmware (app/sim): every step must agree, and every flipped bit must be rejected by the other side.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { LaunchSession } from '../../app/sev/session';
import { verifyMeasurement } from '../../app/sev/measurement';
import { LUKS_PASSPHRASE_GUID, packageSecret, SecretTable } from '../../app/sev/secret';
import { SimFirmwareError } from '../../app/sim/errors';
import { SimulatedSevPlatform, type SimulatedGuest } from '../../app/sim/platform';

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

const flip = (b: Uint8Array, bit: number): Uint8Array => {
  const c = Uint8Array.from(b);
  c[bit >> 3]! ^= 1 << (bit & 7);
  return c;
};

function firmwareStatus(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SimFirmwareError) return e.status;
    throw e;
  }
  return 'SUCCESS';
}

const firmwareImage = Uint8Array.from({ length: 4096 }, (_, i) => (i * 31 + 7) & 0xff);

describe('owner side <-> simulated firmware round trip', () => {
  let plat: SimulatedSevPlatform;
  let other: SimulatedSevPlatform;
  beforeAll(() => {
    plat = SimulatedSevPlatform.create({ apiMajor: 1, apiMinor: 51, build: 3 });
    other = SimulatedSevPlatform.create();
  });

  function launch(policy: number, p = plat): { session: LaunchSession; guest: SimulatedGuest } {
    const session = LaunchSession.create({ pdh: p.pdh, policy });
    const guest = p.launchStart({ policy, ownerCert: session.ownerCert, session: session.sessionBlob });
    return { session, guest };
  }

  it('the firmware unwraps the owner TEK/TIK, the owner accepts the measurement, the firmware decrypts the secret', () => {
    const policy = 0x1;
    const { session, guest } = launch(policy);
    expect(guest.transportKeysForTest()).toEqual({ tek: session.tek, tik: session.tik });
    guest.launchUpdateData(firmwareImage);
    const blob = guest.launchMeasure();
    const common = {
      tik: session.tik,
      apiMajor: plat.apiMajor,
      apiMinor: plat.apiMinor,
      build: plat.build,
      policy,
    };
    expect(verifyMeasurement({ ...common, digest: sha256(firmwareImage), measurement: blob })).toBe(true);
    expect(verifyMeasurement({ ...common, digest: sha256(flip(firmwareImage, 5)), measurement: blob })).toBe(
      false,
    );

    const table = new SecretTable()
      .addLuksPassphrase('correct horse battery staple')
      .add('11111111-2222-3333-4444-555555555555', new TextEncoder().encode('api-token'));
    const plain = table.build();
    const packet = packageSecret({
      tek: session.tek,
      tik: session.tik,
      table: plain,
      measurement: blob.subarray(0, 32),
      apiMajor: plat.apiMajor,
      apiMinor: plat.apiMinor,
    });
    const res = guest.launchSecret(packet);
    expect(res.plaintext).toEqual(plain);
    expect(res.entries.map((e) => e.guid)).toEqual([
      LUKS_PASSPHRASE_GUID,
      '11111111-2222-3333-4444-555555555555',
    ]);
    expect(res.entries[1]!.data).toEqual(new TextEncoder().encode('api-token'));
    guest.launchFinish();
  });

  it('SEV-ES launch: VMSA pages are measured after the firmware', () => {
    const policy = 0x5;
    const { session, guest } = launch(policy);
    const vmsa0 = new Uint8Array(4096).fill(1);
    const vmsa1 = new Uint8Array(4096).fill(2);
    guest.launchUpdateData(firmwareImage);
    guest.launchUpdateVmsa(vmsa0);
    guest.launchUpdateVmsa(vmsa1);
    const blob = guest.launchMeasure();
    const p = { tik: session.tik, apiMajor: 1, apiMinor: 51, build: 3, policy, measurement: blob };
    expect(verifyMeasurement({ ...p, digest: sha256(firmwareImage, vmsa0, vmsa1) })).toBe(true);
    expect(verifyMeasurement({ ...p, digest: sha256(firmwareImage, vmsa1, vmsa0) })).toBe(false);
  });

  it('pre-0.17 firmware: both sides drop the measurement prefix and the MEASURE term of the secret MAC', () => {
    const old = SimulatedSevPlatform.create({ apiMajor: 0, apiMinor: 16, build: 7 });
    const { session, guest } = launch(0, old);
    guest.launchUpdateData(firmwareImage);
    const blob = guest.launchMeasure();
    const p = { tik: session.tik, apiMajor: 0, apiMinor: 16, build: 7, policy: 0, measurement: blob };
    expect(verifyMeasurement({ ...p, digest: sha256(firmwareImage) })).toBe(true);
    const plain = new SecretTable().addLuksPassphrase('old firmware').build();
    const packet = packageSecret({
      tek: session.tek,
      tik: session.tik,
      table: plain,
      measurement: blob.subarray(0, 32),
      apiMajor: 0,
      apiMinor: 16,
    });
    expect(guest.launchSecret(packet).plaintext).toEqual(plain);
  });

  it('a session made for another platform PDH is rejected', () => {
    const session = LaunchSession.create({ pdh: other.pdh, policy: 1 });
    expect(
      firmwareStatus(() =>
        plat.launchStart({ policy: 1, ownerCert: session.ownerCert, session: session.sessionBlob }),
      ),
    ).toBe('BAD_MEASUREMENT');
  });

  it('every flipped bit of the 128-byte session blob is rejected by LAUNCH_START', () => {
    const session = LaunchSession.create({ pdh: plat.pdh, policy: 1 });
    const ok = { policy: 1, ownerCert: session.ownerCert, session: session.sessionBlob };
    expect(firmwareStatus(() => plat.launchStart(ok))).toBe('SUCCESS');
    for (let bit = 0; bit < 128 * 8; bit++) {
      expect(firmwareStatus(() => plat.launchStart({ ...ok, session: flip(session.sessionBlob, bit) }))).toBe(
        'BAD_MEASUREMENT',
      );
    }
    // and the policy the host passes must be the one the owner MACed
    for (let bit = 0; bit < 32; bit++) {
      expect(firmwareStatus(() => plat.launchStart({ ...ok, policy: (1 ^ (1 << bit)) >>> 0 }))).not.toBe(
        'SUCCESS',
      );
    }
  });

  it('every flipped bit of the owner cert header and public key is rejected by LAUNCH_START', () => {
    const session = LaunchSession.create({ pdh: plat.pdh, policy: 1 });
    const ok = { policy: 1, ownerCert: session.ownerCert, session: session.sessionBlob };
    // version (0x00-0x03), usage, algo (0x08-0x0f), curve, qx, qy (0x10-0xa3). Bytes 4-7 (api, reserved)
    // and the signature slots are not checked by the firmware for a GODH (docs/protocol.md §1).
    const bytes = [0, 1, 2, 3, ...Array.from({ length: 0xa4 - 8 }, (_, i) => i + 8)];
    const seen = new Set<string>();
    for (const byte of bytes) {
      for (let b = 0; b < 8; b++) {
        const status = firmwareStatus(() =>
          plat.launchStart({ ...ok, ownerCert: flip(session.ownerCert, byte * 8 + b) }),
        );
        expect(status).not.toBe('SUCCESS');
        seen.add(status);
      }
    }
    // A flipped coordinate bit leaves P-384 (almost surely), so the sanity check catches it.
    expect(seen.has('INVALID_CERTIFICATE')).toBe(true);
    // A valid point that is not the owner's key: the channel keys differ, wrap_mac fails.
    const stranger = LaunchSession.create({ pdh: plat.pdh, policy: 1 });
    expect(firmwareStatus(() => plat.launchStart({ ...ok, ownerCert: stranger.ownerCert }))).toBe(
      'BAD_MEASUREMENT',
    );
  });

  it('every flipped bit of the 48-byte measurement is rejected by the owner', () => {
    const { session, guest } = launch(1);
    guest.launchUpdateData(firmwareImage);
    const blob = guest.launchMeasure();
    const p = {
      tik: session.tik,
      apiMajor: 1,
      apiMinor: 51,
      build: 3,
      policy: 1,
      digest: sha256(firmwareImage),
    };
    expect(verifyMeasurement({ ...p, measurement: blob })).toBe(true);
    for (let bit = 0; bit < 48 * 8; bit++) {
      expect(verifyMeasurement({ ...p, measurement: flip(blob, bit) })).toBe(false);
    }
    // and the wrong api/build/policy are rejected too
    expect(verifyMeasurement({ ...p, build: 4, measurement: blob })).toBe(false);
    expect(verifyMeasurement({ ...p, apiMinor: 50, measurement: blob })).toBe(false);
    expect(verifyMeasurement({ ...p, policy: 3, measurement: blob })).toBe(false);
  });

  it('every flipped bit of the secret header and payload is rejected by LAUNCH_SECRET; the good packet still works', () => {
    const { session, guest } = launch(1);
    guest.launchUpdateData(firmwareImage);
    const blob = guest.launchMeasure();
    const plain = new SecretTable().addLuksPassphrase('hunter2 hunter2 hunter2').build();
    const packet = packageSecret({
      tek: session.tek,
      tik: session.tik,
      table: plain,
      measurement: blob.subarray(0, 32),
      apiMajor: 1,
      apiMinor: 51,
    });
    for (let bit = 0; bit < 52 * 8; bit++) {
      const status = firmwareStatus(() =>
        guest.launchSecret({ ...packet, header: flip(packet.header, bit) }),
      );
      expect(status).not.toBe('SUCCESS');
      expect(['BAD_MEASUREMENT', 'UNSUPPORTED', 'INVALID_PARAM']).toContain(status);
    }
    for (let bit = 0; bit < packet.payload.length * 8; bit++) {
      expect(
        firmwareStatus(() => guest.launchSecret({ ...packet, payload: flip(packet.payload, bit) })),
      ).toBe('BAD_MEASUREMENT');
    }
    // A packet bound to another measurement (e.g. a different launch) is rejected.
    const wrongMeasure = packageSecret({
      tek: session.tek,
      tik: session.tik,
      table: plain,
      measurement: flip(blob.subarray(0, 32), 0),
      apiMajor: 1,
      apiMinor: 51,
    });
    expect(firmwareStatus(() => guest.launchSecret(wrongMeasure))).toBe('BAD_MEASUREMENT');
    expect(guest.injectedSecrets).toHaveLength(0);
    expect(guest.launchSecret(packet).plaintext).toEqual(plain);
    expect(guest.injectedSecrets).toHaveLength(1);
  });
});
