import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { concat, fromBase64, fromHex, guidBytesLe, toHex, u32le } from '../sev/bytes';
import { SimFirmwareError } from './errors';
import {
  computeLaunchMeasure,
  firmwareKdf,
  openSecretPacket,
  parseEfiSecretTable,
  unwrapSession,
  verifyPolicyMac,
  checkPolicy,
} from './firmware-crypto';

const fixtures = path.join(process.cwd(), 'test/fixtures/vectors/sevctl');
const read = (p: string) => new Uint8Array(readFileSync(path.join(fixtures, p)));
const LUKS_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

function expectStatus(fn: () => unknown, status: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SimFirmwareError);
    expect((e as SimFirmwareError).status).toBe(status);
    return;
  }
  throw new Error(`expected SimFirmwareError ${status}, nothing was thrown`);
}

describe('firmware KDF and session unwrap (docs/protocol.md §9 virtee vectors)', () => {
  it('KDF(00x16, "sev-master-secret", 00x16, 128)', () => {
    const out = firmwareKdf(new Uint8Array(16), 'sev-master-secret', new Uint8Array(16), 128);
    expect(toHex(out)).toBe('ab4d269fcc62bedb4511d56c386ce706');
  });

  it('KDF blocks use a LE counter and LE bit length', () => {
    const k = fromHex('00112233445566778899aabbccddeeff');
    const long = firmwareKdf(k, 'x', Uint8Array.of(7), 512);
    const block = (i: number) =>
      createHmac('sha256', k)
        .update(concat(u32le(i), new TextEncoder().encode('x'), Uint8Array.of(0, 7), u32le(512)))
        .digest('hex');
    expect(toHex(long)).toBe(block(1) + block(2));
    expect(toHex(firmwareKdf(k, 'x', Uint8Array.of(7), 256))).not.toBe(block(1));
  });

  const wrapTk = fromHex('2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4');
  const wrapMac = fromHex('3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d');
  const policyMac = fromHex('aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af');
  const session = concat(new Uint8Array(16), wrapTk, new Uint8Array(16), wrapMac, policyMac);

  it('unwraps the Z=00x16 session vector to TEK=TIK=00x16 and accepts its policy_mac', () => {
    const { tek, tik } = unwrapSession(new Uint8Array(16), session);
    expect(toHex(tek)).toBe('00'.repeat(16));
    expect(toHex(tik)).toBe('00'.repeat(16));
    expect(() => verifyPolicyMac(tik, 0, session.subarray(96))).not.toThrow();
    expectStatus(() => verifyPolicyMac(tik, 1, session.subarray(96)), 'BAD_MEASUREMENT');
  });

  it('rejects every flipped bit of the 128-byte session with BAD_MEASUREMENT', () => {
    // wrap_mac covers only wrap_tk: a flipped wrap_iv bit unwraps to other keys, which policy_mac catches.
    for (let bit = 0; bit < 128 * 8; bit++) {
      const s = Uint8Array.from(session);
      s[bit >> 3]! ^= 1 << (bit & 7);
      expectStatus(() => {
        const { tik } = unwrapSession(new Uint8Array(16), s);
        verifyPolicyMac(tik, 0, s.subarray(96));
      }, 'BAD_MEASUREMENT');
    }
  });

  it('rejects a session of the wrong length with INVALID_LENGTH', () => {
    expectStatus(() => unwrapSession(new Uint8Array(16), session.subarray(0, 127)), 'INVALID_LENGTH');
  });
});

describe('policy checks (docs/protocol.md §8)', () => {
  it('reserved bits give POLICY_FAILURE, a minimum API above the platform too', () => {
    expect(() => checkPolicy(0x5, 1, 51)).not.toThrow();
    for (let bit = 6; bit < 16; bit++) expectStatus(() => checkPolicy(1 << bit, 1, 51), 'POLICY_FAILURE');
    expect(() => checkPolicy((51 << 24) | (1 << 16), 1, 51)).not.toThrow();
    expectStatus(() => checkPolicy((52 << 24) | (1 << 16), 1, 51), 'POLICY_FAILURE');
    expectStatus(() => checkPolicy(2 << 16, 1, 51), 'POLICY_FAILURE');
    expect(() => checkPolicy((0 << 24) | (0 << 16), 0, 16)).not.toThrow();
  });
});

describe('LAUNCH_MEASURE (docs/protocol.md §9)', () => {
  it('virtee verify vector (api 0.18, build 0x0f)', () => {
    const m = computeLaunchMeasure({
      tik: fromHex('66320db73158a35a255d051758e95ed4'),
      apiMajor: 0,
      apiMinor: 0x12,
      build: 0x0f,
      policy: 0,
      launchDigest: new Uint8Array(createHash('sha256').digest()),
      mnonce: fromHex('4fbe0bedbad6c86ae8f68971d103e554'),
    });
    expect(toHex(m)).toBe('6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea');
  });

  const tik = read('measurement/tik1.bin');
  const nonce = fromBase64('wxP6tRHCFrFQWxsuqZA8QA==');
  it('sevctl measurementbuild: given digest and SHA256(firmware)', () => {
    const base = { tik, apiMajor: 1, apiMinor: 40, build: 40, policy: 0x03, mnonce: nonce };
    const given = computeLaunchMeasure({
      ...base,
      launchDigest: fromBase64('xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM='),
    });
    expect(concat(given, nonce)).toEqual(
      fromBase64('lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA'),
    );
    const fw = read('OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
    const m = computeLaunchMeasure({
      ...base,
      launchDigest: new Uint8Array(createHash('sha256').update(fw).digest()),
    });
    expect(concat(m, nonce)).toEqual(
      fromBase64('oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA'),
    );
  });

  it('pre-0.17 firmware omits the 0x04||api||build prefix', () => {
    const p = { tik, build: 7, policy: 1, launchDigest: new Uint8Array(32), mnonce: nonce };
    const old = computeLaunchMeasure({ ...p, apiMajor: 0, apiMinor: 16 });
    const expected = createHashHmac(tik, concat(u32le(1), new Uint8Array(32), nonce));
    expect(toHex(old)).toBe(expected);
    expect(toHex(computeLaunchMeasure({ ...p, apiMajor: 0, apiMinor: 17 }))).not.toBe(expected);
  });
});

function createHashHmac(key: Uint8Array, msg: Uint8Array): string {
  return createHmac('sha256', key).update(msg).digest('hex');
}

describe('LAUNCH_SECRET (sevctl secretbuild vectors, docs/protocol.md §9)', () => {
  const tek = read('secret/tek1.bin');
  const tik = read('secret/tik1.bin');
  const measure = fromBase64('TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS').subarray(
    0,
    32,
  );
  const header1 = fromBase64('AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==');
  const payload1 = fromBase64(
    '0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==',
  );
  const header2 = fromBase64('AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==');
  const payload2 = fromBase64(
    '0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe',
  );

  it('accepts, decrypts and parses secret1.txt out of the table', () => {
    const plain = openSecretPacket({ tek, tik, measure, header: header1, payload: payload1 });
    expect(plain.subarray(0, 16)).toEqual(guidBytesLe('1e74f542-71dd-4d66-963e-ef4287ff173b'));
    const entries = parseEfiSecretTable(plain);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.guid).toBe(LUKS_GUID);
    expect(entries[0]!.data).toEqual(read('secret/secret1.txt'));
  });

  it('accepts the two-entry vector', () => {
    const entries = parseEfiSecretTable(
      openSecretPacket({ tek, tik, measure, header: header2, payload: payload2 }),
    );
    expect(entries.map((e) => e.guid)).toEqual([LUKS_GUID, '736869e5-aaaa-4973-92ec-06879ce3da0b']);
    expect(entries[0]!.data).toEqual(read('secret/secret1.txt'));
    expect(entries[1]!.data).toEqual(read('secret/secret2.txt'));
  });

  it('rejects every flipped bit of header, payload and measurement', () => {
    const flip = (b: Uint8Array, bit: number) => {
      const c = Uint8Array.from(b);
      c[bit >> 3]! ^= 1 << (bit & 7);
      return c;
    };
    for (let bit = 0; bit < 52 * 8; bit++) {
      const header = flip(header1, bit);
      expect(() => openSecretPacket({ tek, tik, measure, header, payload: payload1 })).toThrow(
        SimFirmwareError,
      );
    }
    for (let bit = 0; bit < payload1.length * 8; bit++) {
      expectStatus(
        () => openSecretPacket({ tek, tik, measure, header: header1, payload: flip(payload1, bit) }),
        'BAD_MEASUREMENT',
      );
    }
    for (let bit = 0; bit < 32 * 8; bit++) {
      expectStatus(
        () => openSecretPacket({ tek, tik, measure: flip(measure, bit), header: header1, payload: payload1 }),
        'BAD_MEASUREMENT',
      );
    }
    // Without the measurement (pre-0.17 MAC) the 0.17+ packet does not verify either.
    expectStatus(
      () => openSecretPacket({ tek, tik, measure: undefined, header: header1, payload: payload1 }),
      'BAD_MEASUREMENT',
    );
  });

  it('checks header size, flags and length rules before the MAC', () => {
    const base = { tek, tik, measure, header: header1, payload: payload1 };
    expectStatus(() => openSecretPacket({ ...base, header: header1.subarray(0, 51) }), 'INVALID_LENGTH');
    const compressed = Uint8Array.from(header1);
    compressed[0] = 1;
    expectStatus(() => openSecretPacket({ ...base, header: compressed }), 'UNSUPPORTED');
    expectStatus(() => openSecretPacket({ ...base, payload: new Uint8Array(0) }), 'INVALID_LENGTH');
    expectStatus(() => openSecretPacket({ ...base, payload: payload1.subarray(0, 63) }), 'INVALID_LENGTH');
    expectStatus(() => openSecretPacket({ ...base, payload: new Uint8Array(0x5010) }), 'INVALID_LENGTH');
  });
});

describe('EFI secret table parser', () => {
  const table = (entries: { guid: string; data: Uint8Array }[], pad = 0) => {
    const body = concat(
      ...entries.map((e) => concat(guidBytesLe(e.guid), u32le(20 + e.data.length), e.data)),
    );
    return concat(
      guidBytesLe('1e74f542-71dd-4d66-963e-ef4287ff173b'),
      u32le(20 + body.length),
      body,
      new Uint8Array(pad),
    );
  };

  it('parses an empty table and zero-padded tables', () => {
    expect(parseEfiSecretTable(table([], 12))).toEqual([]);
    const data = new TextEncoder().encode('abc');
    expect(parseEfiSecretTable(table([{ guid: LUKS_GUID, data }], 9))).toEqual([{ guid: LUKS_GUID, data }]);
  });

  it('rejects a wrong GUID, bad lengths and non-zero padding', () => {
    const good = table([{ guid: LUKS_GUID, data: new Uint8Array(5) }], 7);
    const wrongGuid = Uint8Array.from(good);
    wrongGuid[0]! ^= 1;
    expectStatus(() => parseEfiSecretTable(wrongGuid), 'GUEST_SECRET_TABLE_INVALID');
    const tooLong = Uint8Array.from(good);
    tooLong[16] = 200;
    expectStatus(() => parseEfiSecretTable(tooLong), 'GUEST_SECRET_TABLE_INVALID');
    const badEntry = Uint8Array.from(good);
    badEntry[36] = 19;
    expectStatus(() => parseEfiSecretTable(badEntry), 'GUEST_SECRET_TABLE_INVALID');
    const dirtyPad = Uint8Array.from(good);
    dirtyPad[dirtyPad.length - 1] = 1;
    expectStatus(() => parseEfiSecretTable(dirtyPad), 'GUEST_SECRET_TABLE_INVALID');
    expectStatus(() => parseEfiSecretTable(good.subarray(0, 19)), 'GUEST_SECRET_TABLE_INVALID');
  });
});
