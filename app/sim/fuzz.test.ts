import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { concat, u32le } from '../sev/bytes';
import { SimFirmwareError } from './errors';
import { parseEfiSecretTable } from './firmware-crypto';
import { SimulatedSevPlatform, type SimulatedGuest } from './platform';
import { buildSessionForTest } from '../../test/helpers/sim-testing';

/** Runs fn; passes if it returns or throws a SimFirmwareError, fails on any other exception. */
function onlyFirmwareErrors(fn: () => unknown): 'ok' | string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof SimFirmwareError) return e.status;
    throw e;
  }
}

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });
const aroundLength = (n: number) =>
  fc.oneof(fc.uint8Array({ minLength: n, maxLength: n }), fc.uint8Array({ minLength: 0, maxLength: n + 8 }));

describe('simulated firmware under random input', () => {
  let plat: SimulatedSevPlatform;
  let good: { ownerCert: Uint8Array; session: Uint8Array };
  const keys = { tek: new Uint8Array(16).fill(0x11), tik: new Uint8Array(16).fill(0x22) };
  beforeAll(() => {
    plat = SimulatedSevPlatform.create({ seed: 'fuzz' });
    good = buildSessionForTest({ pdh: plat.pdh, policy: 1, ...keys });
  });

  it('launchStart: random / truncated owner certs, sessions and policies give SimFirmwareErrors', () => {
    fc.assert(
      fc.property(
        aroundLength(2084),
        aroundLength(128),
        fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer(), fc.double()),
        (ownerCert, session, policy) => {
          const status = onlyFirmwareErrors(() => plat.launchStart({ policy, ownerCert, session }));
          expect(status).not.toBe('ok');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('launchStart: a plausible GODH header with random coordinates, or a random session, is rejected', () => {
    const header = concat(u32le(1), new Uint8Array(4), u32le(0x1003), u32le(0x003), u32le(2));
    fc.assert(
      fc.property(bytes(144), fc.boolean(), aroundLength(128), (coords, useGoodCert, session) => {
        const cert = new Uint8Array(2084);
        cert.set(header, 0);
        cert.set(coords, 0x14);
        const ownerCert = useGoodCert ? good.ownerCert : cert;
        const status = onlyFirmwareErrors(() => plat.launchStart({ policy: 1, ownerCert, session }));
        expect(status).not.toBe('ok');
      }),
      { numRuns: 200 },
    );
  });

  it('launchStart: the good session with random byte edits is rejected unless nothing changed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(127), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const session = Uint8Array.from(good.session);
          for (const [i, x] of edits) session[i]! ^= x;
          const changed = session.some((b, i) => b !== good.session[i]);
          const status = onlyFirmwareErrors(() =>
            plat.launchStart({ policy: 1, ownerCert: good.ownerCert, session }),
          );
          expect(status).toBe(changed ? 'BAD_MEASUREMENT' : 'ok');
        },
      ),
      { numRuns: 200 },
    );
  });

  it('non-byte inputs give INVALID_PARAM, not a crash', () => {
    fc.assert(
      fc.property(fc.anything(), fc.anything(), (a, b) => {
        const status = onlyFirmwareErrors(() =>
          plat.launchStart({ policy: 1, ownerCert: a as Uint8Array, session: b as Uint8Array }),
        );
        expect(status).not.toBe('ok');
      }),
      { numRuns: 100 },
    );
  });

  describe('launchSecret', () => {
    let guest: SimulatedGuest;
    beforeAll(() => {
      guest = plat.launchStart({ policy: 1, ...good });
      guest.launchUpdateData(new Uint8Array(64));
      guest.launchMeasure();
    });

    it('random / truncated headers and payloads give SimFirmwareErrors', () => {
      fc.assert(
        fc.property(
          fc.tuple(aroundLength(52), fc.boolean()).map(([h, zeroFlags]) => {
            // zero flags most of the time so the MAC check is reached, not just the flag check
            if (zeroFlags) h.fill(0, 0, Math.min(4, h.length));
            return h;
          }),
          fc.oneof(
            bytes(200),
            fc.integer({ min: 1, max: 0x520 }).map((n) => new Uint8Array(n * 16)),
          ),
          (header, payload) => {
            expect(onlyFirmwareErrors(() => guest.launchSecret({ header, payload }))).not.toBe('ok');
          },
        ),
        { numRuns: 300 },
      );
      expect(guest.guestState).toBe('LSECRET');
      expect(onlyFirmwareErrors(() => guest.launchSecret(null as never))).toBe('INVALID_PARAM');
    });
  });

  it('the EFI secret table parser returns entries or GUEST_SECRET_TABLE_INVALID for any bytes', () => {
    const tableGuid = Uint8Array.from([
      0x42, 0xf5, 0x74, 0x1e, 0xdd, 0x71, 0x66, 0x4d, 0x96, 0x3e, 0xef, 0x42, 0x87, 0xff, 0x17, 0x3b,
    ]);
    fc.assert(
      fc.property(bytes(300), fc.boolean(), (body, withGuid) => {
        const plain = withGuid ? concat(tableGuid, body) : body;
        const status = onlyFirmwareErrors(() => parseEfiSecretTable(plain));
        expect(['ok', 'GUEST_SECRET_TABLE_INVALID']).toContain(status);
      }),
      { numRuns: 500 },
    );
  });
});
