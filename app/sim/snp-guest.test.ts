import { beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { makeKbsJwe as makeJwe } from '../../test/helpers/kbs-jwe';
import canonicalize from 'canonicalize';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware, type SimulatedSnpGuest } from './snp-firmware';
import {
  computeReportData,
  CookieJar,
  KbsClientError,
  rebuildJweAad,
  SnpGuestClient,
  type TeeKeyAlgorithm,
} from './snp-guest';

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

/** The attest body's shape as these tests read it. */
interface AttestBody {
  'init-data': unknown;
  'runtime-data': { nonce: string; 'tee-pubkey': unknown };
  'tee-evidence': {
    primary_evidence: {
      attestation_report: { report_data: number[]; measurement: number[]; vmpl: number };
      cert_chain: unknown;
    };
    additional_evidence: string;
  };
}

let guest: SimulatedSnpGuest;
beforeAll(async () => {
  const fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  guest = fw.launch({ measurement: sha384('g'), policy: DEFAULT_SNP_POLICY });
});
const clientFor = (keyAlgorithm: TeeKeyAlgorithm) =>
  new SnpGuestClient({ baseUrl: 'http://127.0.0.1:9', guest, keyAlgorithm });

describe('tee key and report_data', () => {
  it('exports the JWKs guest-components offers, with fixed-length coordinates', () => {
    const p256 = clientFor('ECDH-ES+A256KW-P256').key.publicJwk;
    expect(p256).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' });
    const p521 = clientFor('ECDH-ES+A256KW-P521').key.publicJwk as { x: string; y: string };
    expect(Buffer.from(p521.x, 'base64url')).toHaveLength(66);
    expect(Buffer.from(p521.y, 'base64url')).toHaveLength(66);
    const rsa = clientFor('RSA-OAEP-256').key.publicJwk;
    expect(rsa).toMatchObject({ kty: 'RSA', alg: 'RSA-OAEP-256', e: 'AQAB' });
    expect(Object.keys(p256)).toEqual(['kty', 'crv', 'alg', 'x', 'y']);
  });

  it('report_data is SHA-384 of the RFC 8785 runtime data with additional-evidence, zero-padded', () => {
    const jwk = clientFor('ECDH-ES+A256KW-P256').key.publicJwk;
    const nonce = b64u(randomBytes(32)).replace(/-/g, '+');
    const got = computeReportData(nonce, jwk);
    const text = `{"additional-evidence":"","nonce":${JSON.stringify(nonce)},"tee-pubkey":${canonicalize(jwk)}}`;
    expect(canonicalize({ nonce, 'tee-pubkey': jwk, 'additional-evidence': '' })).toBe(text);
    const want = Buffer.concat([createHash('sha384').update(text).digest(), Buffer.alloc(16)]);
    expect(Buffer.from(got)).toEqual(want);
    expect(Buffer.from(computeReportData(nonce, jwk, 'sha512'))).toEqual(
      createHash('sha512').update(text).digest(),
    );
  });

  it('the attest body carries the report in JSON form bound to the nonce and key', () => {
    const client = clientFor('ECDH-ES+A256KW-P256');
    const body = JSON.parse(client.buildAttestBody('bm9uY2U=', {})) as AttestBody;
    expect(Object.keys(body)).toEqual(['init-data', 'runtime-data', 'tee-evidence']);
    expect(body['init-data']).toBeNull();
    expect(body['runtime-data']).toEqual({ nonce: 'bm9uY2U=', 'tee-pubkey': client.key.publicJwk });
    const rep = body['tee-evidence'].primary_evidence.attestation_report;
    expect(body['tee-evidence'].additional_evidence).toBe('');
    expect(body['tee-evidence'].primary_evidence.cert_chain).toBeNull();
    expect(Uint8Array.from(rep.report_data)).toEqual(computeReportData('bm9uY2U=', client.key.publicJwk));
  });

  it('hooks change exactly what is sent', () => {
    const client = new SnpGuestClient({
      baseUrl: 'http://127.0.0.1:9',
      guest,
      hooks: {
        nonce: () => 'other',
        reportData: () => new Uint8Array(64).fill(1),
        vmpl: () => 2,
        report: (raw) => {
          const b = Uint8Array.from(raw);
          b[0x90]! ^= 1;
          return b;
        },
      },
    });
    const body = JSON.parse(client.buildAttestBody('n', {})) as AttestBody;
    const rep = body['tee-evidence'].primary_evidence.attestation_report;
    expect(body['runtime-data'].nonce).toBe('other');
    expect(rep.report_data).toEqual(new Array(64).fill(1));
    expect(rep.vmpl).toBe(2);
    expect(rep.measurement[0]).toBe(sha384('g')[0]! ^ 1);
  });
});

describe('JWE decryption as guest-components does it', () => {
  const secret = new TextEncoder().encode('the LUKS passphrase');

  it.each(['ECDH-ES+A256KW-P256', 'ECDH-ES+A256KW-P521', 'RSA-OAEP-256'] as const)(
    '%s: a JWE with the header the real client rebuilds decrypts',
    async (alg) => {
      const client = clientFor(alg);
      const out = await client.decrypt(JSON.stringify(makeJwe(client, secret)));
      expect(new TextDecoder().decode(out)).toBe('the LUKS passphrase');
    },
  );

  it('the AAD rebuild puts alg, enc first and sorts the rest (epk crv, kty, x, y)', () => {
    const h = b64u('{"enc":"A256GCM","alg":"X","zz":1,"epk":{"y":"b","x":"a","kty":"EC","crv":"P-256"}}');
    expect(Buffer.from(rebuildJweAad(h), 'base64url').toString()).toBe(
      '{"alg":"X","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":"a","y":"b"},"zz":1}',
    );
  });

  const refusals: [string, (c: SnpGuestClient) => Record<string, string>, RegExp][] = [
    [
      'enc before alg',
      (c) =>
        makeJwe(c, secret, (epk) => `{"enc":"A256GCM","alg":"ECDH-ES+A256KW","epk":${JSON.stringify(epk)}}`),
      /form the real client rebuilds/,
    ],
    [
      'epk members unsorted',
      (c) =>
        makeJwe(
          c,
          secret,
          (epk) =>
            `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"kty":"EC","crv":"${epk!.crv}","x":"${epk!.x}","y":"${epk!.y}"}}`,
        ),
      /form the real client rebuilds/,
    ],
    [
      'spaces in the header',
      (c) =>
        makeJwe(c, secret, (epk) => `{"alg": "ECDH-ES+A256KW","enc":"A256GCM","epk":${JSON.stringify(epk)}}`),
      /form the real client rebuilds/,
    ],
    ['an aad member', (c) => ({ ...makeJwe(c, secret), aad: 'eA' }), /aad member/],
    [
      'padded base64url',
      (c) => ({ ...makeJwe(c, secret), iv: makeJwe(c, secret).iv + '=' }),
      /unpadded base64url/,
    ],
    [
      'a flipped ciphertext bit',
      (c) => {
        const j = makeJwe(c, secret);
        const ct = Buffer.from(j.ciphertext!, 'base64url');
        ct[0]! ^= 1;
        return { ...j, ciphertext: b64u(ct) };
      },
      /decryption failed/,
    ],
    [
      'A128GCM',
      (c) =>
        makeJwe(c, secret, (epk) => `{"alg":"ECDH-ES+A256KW","enc":"A128GCM","epk":${JSON.stringify(epk)}}`),
      /AES-256-GCM only/,
    ],
  ];
  it.each(refusals)('refused: %s', async (_name, make, message) => {
    const client = clientFor('ECDH-ES+A256KW-P256');
    const err = await client.decrypt(JSON.stringify(make(client))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KbsClientError);
    expect((err as KbsClientError).message).toMatch(message);
  });

  it('a JWE for another key type is refused', async () => {
    const rsa = clientFor('RSA-OAEP-256');
    const ec = clientFor('ECDH-ES+A256KW-P256');
    const err = await ec.decrypt(JSON.stringify(makeJwe(rsa, secret))).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/does not fit/);
  });
});

describe('cookie jar', () => {
  it('keeps kbs-session-id, drops it at Max-Age or when expired', () => {
    const jar = new CookieJar();
    jar.store(['kbs-session-id=abc; Path=/kbs; Max-Age=10; HttpOnly'], 1_000);
    expect(jar.header(5_000)).toBe('kbs-session-id=abc');
    expect(jar.header(11_001)).toBeUndefined();
    jar.store(['kbs-session-id=def; Expires=Thu, 01 Jan 2099 00:00:00 GMT'], 1_000);
    expect(jar.get('kbs-session-id', 2_000)).toBe('def');
    jar.store(['kbs-session-id=; Max-Age=0'], 3_000);
    expect(jar.get('kbs-session-id', 3_000)).toBeUndefined();
  });
});
