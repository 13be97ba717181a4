import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  computeMeasurement,
  measurementHasPrefix,
  requireMinimumApi,
  splitMeasurementBlob,
  verifyMeasurement,
} from './measurement';
import { concat, fromBase64, fromHex, toBase64, toHex } from './bytes';
import { SevError } from './errors';
import { buildHashesTable, hashCmdline } from '../digest/hashes-table';
import { computeLaunchDigest } from '../digest/launch-digest';

const SEVCTL = join(process.cwd(), 'test/fixtures/vectors/sevctl');
const FIRMWARE = join(SEVCTL, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const read = (p: string) => new Uint8Array(readFileSync(p));
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

describe('measurement known answers', () => {
  it('virtee/sev session/mod.rs `verify`', () => {
    const params = {
      tik: fromHex('66320db73158a35a255d051758e95ed4'),
      apiMajor: 0,
      apiMinor: 0x12,
      build: 0x0f,
      policy: 0,
      digest: sha256(),
      mnonce: fromHex('4fbe0bedbad6c86ae8f68971d103e554'),
    };
    const m = computeMeasurement(params);
    expect(toHex(m)).toBe('6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea');
    expect(verifyMeasurement({ ...params, measurement: m })).toBe(true);
    expect(verifyMeasurement({ ...params, measurement: concat(m, params.mnonce), mnonce: undefined })).toBe(
      true,
    );
    const bad = Uint8Array.from(m);
    bad[31]! ^= 1;
    expect(verifyMeasurement({ ...params, measurement: bad })).toBe(false);
    expect(verifyMeasurement({ ...params, build: 0x10, measurement: m })).toBe(false);
  });

  // sevctl tests/measurementbuild.rs: TIK tik1.bin, api 1.40, build 40, policy 0x03.
  const tik = read(join(SEVCTL, 'measurement/tik1.bin'));
  const nonce = fromBase64('wxP6tRHCFrFQWxsuqZA8QA==');
  const sevctl = (
    digest: Uint8Array,
    over: Partial<{
      apiMajor: number;
      apiMinor: number;
      build: number;
      policy: number;
      mnonce: Uint8Array;
    }> = {},
  ) => {
    const p = { tik, apiMajor: 1, apiMinor: 40, build: 40, policy: 0x03, digest, mnonce: nonce, ...over };
    return toBase64(concat(computeMeasurement(p), p.mnonce));
  };

  it('sevctl: launch digest given', () => {
    expect(sevctl(fromBase64('xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM='))).toBe(
      'lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA',
    );
  });

  it('sevctl: firmware only (digest via app/digest and via plain SHA-256)', async () => {
    const expected = 'oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA';
    expect(sevctl(sha256(read(FIRMWARE)))).toBe(expected);
    const r = await computeLaunchDigest({ firmware: FIRMWARE, sevEs: false });
    expect(sevctl(r.digest)).toBe(expected);
  });

  it('sevctl: firmware + kernel + initrd + cmdline', async () => {
    const expected = 'h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA';
    const kernel = join(SEVCTL, 'measurement/vmlinuz-fake');
    const initrd = join(SEVCTL, 'measurement/initrd-fake');
    const cmdline = 'foo bar baz fake kernel=cmdline';
    const r = await computeLaunchDigest({ firmware: FIRMWARE, kernel, initrd, cmdline, sevEs: false });
    expect(sevctl(r.digest)).toBe(expected);
    // And from the table built by hand (docs/protocol.md §6.2), so this vector does not rest on app/digest alone.
    const table = buildHashesTable({
      kernel: sha256(read(kernel)),
      initrd: sha256(read(initrd)),
      cmdline: hashCmdline(cmdline),
    });
    expect(sevctl(sha256(read(FIRMWARE), table))).toBe(expected);
  });

  it('sevctl: SEV-ES, 4 vCPUs from vmsa0.bin + 3 x vmsa1.bin, and from the digest module (EPYC-Milan)', async () => {
    const expectedBlob = '/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny';
    const mnonce = splitMeasurementBlob(fromBase64(expectedBlob)).mnonce;
    const over = { apiMajor: 1, apiMinor: 49, build: 6, policy: 0x05, mnonce };
    const v0 = read(join(SEVCTL, 'vmsa0.bin'));
    const v1 = read(join(SEVCTL, 'vmsa1.bin'));
    expect(sevctl(sha256(read(FIRMWARE), v0, v1, v1, v1), over)).toBe(expectedBlob);
    const r = await computeLaunchDigest({
      firmware: FIRMWARE,
      sevEs: true,
      cpus: 4,
      cpuSignature: { family: 25, model: 1, stepping: 1 },
      vmsaVariant: 'legacy',
    });
    expect(sevctl(r.digest, over)).toBe(expectedBlob);
  });
});

describe('API versions', () => {
  const base = {
    tik: new Uint8Array(16).fill(7),
    build: 3,
    policy: 1,
    digest: new Uint8Array(32).fill(9),
    mnonce: new Uint8Array(16).fill(5),
  };

  it('API >= 0.17 has the 0x04 prefix, older firmware the legacy form without it (sev-tool)', () => {
    expect(measurementHasPrefix(0, 16)).toBe(false);
    expect(measurementHasPrefix(0, 17)).toBe(true);
    expect(measurementHasPrefix(1, 0)).toBe(true);
    const legacy = computeMeasurement({ ...base, apiMajor: 0, apiMinor: 16 });
    const expected = createHmac('sha256', base.tik)
      .update(Uint8Array.of(1, 0, 0, 0))
      .update(base.digest)
      .update(base.mnonce)
      .digest();
    expect(toHex(legacy)).toBe(expected.toString('hex'));
    // With the prefix the build id matters; without it it does not.
    expect(toHex(computeMeasurement({ ...base, apiMajor: 0, apiMinor: 16, build: 99 }))).toBe(toHex(legacy));
    expect(toHex(computeMeasurement({ ...base, apiMajor: 0, apiMinor: 17, build: 99 }))).not.toBe(
      toHex(computeMeasurement({ ...base, apiMajor: 0, apiMinor: 17 })),
    );
  });

  it('enforces an owner minimum API with api-too-old', () => {
    expect(() => requireMinimumApi(0, 16, { major: 0, minor: 17 })).toThrow(
      /0\.16 is older than the required minimum 0\.17/,
    );
    expect(() => requireMinimumApi(1, 0, { major: 0, minor: 17 })).not.toThrow();
    const m = computeMeasurement({ ...base, apiMajor: 0, apiMinor: 16 });
    try {
      verifyMeasurement({
        ...base,
        apiMajor: 0,
        apiMinor: 16,
        measurement: m,
        minApi: { major: 1, minor: 0 },
      });
      expect.unreachable();
    } catch (e) {
      expect((e as SevError).code).toBe('api-too-old');
    }
    expect(
      verifyMeasurement({
        ...base,
        apiMajor: 0,
        apiMinor: 16,
        measurement: m,
        minApi: { major: 0, minor: 16 },
      }),
    ).toBe(true);
  });

  it('rejects malformed inputs with clear errors', () => {
    const ok = { ...base, apiMajor: 1, apiMinor: 0 };
    expect(() => computeMeasurement({ ...ok, tik: new Uint8Array(15) })).toThrow(
      /TIK must be 16 bytes, got 15/,
    );
    expect(() => computeMeasurement({ ...ok, digest: new Uint8Array(31) })).toThrow(
      /launch digest must be 32 bytes/,
    );
    expect(() => computeMeasurement({ ...ok, apiMajor: 256 })).toThrow(
      /API major must be an integer in 0..255/,
    );
    expect(() => computeMeasurement({ ...ok, policy: -1 })).toThrow(SevError);
    expect(() => verifyMeasurement({ ...ok, measurement: new Uint8Array(40) })).toThrow(
      /32-byte HMAC or the 48-byte/,
    );
    expect(() => verifyMeasurement({ ...ok, mnonce: undefined, measurement: new Uint8Array(32) })).toThrow(
      /needs its 16-byte mnonce/,
    );
  });
});

describe('splitMeasurementBlob', () => {
  it('splits 48 bytes into measure and mnonce', () => {
    const b = Uint8Array.from({ length: 48 }, (_, i) => i);
    const { measure, mnonce } = splitMeasurementBlob(b);
    expect(measure).toEqual(b.slice(0, 32));
    expect(mnonce).toEqual(b.slice(32));
  });

  it('property: any other length is a bad-length SevError, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        if (b.length === 48) {
          expect(splitMeasurementBlob(b).measure.length).toBe(32);
          return;
        }
        expect(() => splitMeasurementBlob(b)).toThrow(/a launch measurement is 48 bytes/);
      }),
    );
  });
});
