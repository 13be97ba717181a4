import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { children, decodeOid, decodeSmallUint, decodeTime, readDer } from './chain-der';
import { parseSnpCert } from './chain';
import { parseCrl } from './crl';
import { SnpError } from './errors';
import { int, makeCrl, makeTestRoots, oid, seq, time, tlv } from '../../test/helpers/snp-pki';

const vcek = new Uint8Array(
  readFileSync(path.join(process.cwd(), 'test/fixtures/snp/reports/trustee-milan/test-vcek.der')),
);

function errorCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SnpError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('DER reader', () => {
  it('reads short and long lengths and nested sequences', () => {
    const inner = tlv(0x04, Buffer.alloc(300, 7));
    const n = readDer(seq(int(5), inner), 't');
    const [a, b] = children(n, 't');
    expect(decodeSmallUint(a, 't')).toBe(5);
    expect(b!.content).toHaveLength(300);
  });

  it('refuses non-DER encodings with precise reasons', () => {
    expect(() => readDer(Uint8Array.from([0x30, 0x80, 0, 0]), 't')).toThrow(/indefinite length/);
    expect(() => readDer(Uint8Array.from([0x04, 0x81, 0x05, 1, 2, 3, 4, 5]), 't')).toThrow(
      /non-minimal length/,
    );
    expect(() => readDer(Uint8Array.from([0x04, 0x01, 1, 2]), 't')).toThrow(/1 trailing bytes/);
    expect(() => readDer(Uint8Array.from([0x04, 0x05, 1]), 't')).toThrow(/runs past the end/);
    expect(() => readDer(Uint8Array.from([0x1f, 0x01, 0x00]), 't')).toThrow(/multi-byte tag/);
    expect(() => decodeSmallUint(readDer(Uint8Array.from([0x02, 0x02, 0, 1]), 't'), 't')).toThrow(
      /non-minimal/,
    );
    expect(() => decodeTime(readDer(tlv(0x17, Buffer.from('250231000000Z')), 't'), 't')).toThrow(
      /invalid date/,
    );
  });

  it('decodes OIDs and times', () => {
    expect(decodeOid(readDer(oid('1.3.6.1.4.1.3704.1.3.8'), 't'), 't')).toBe('1.3.6.1.4.1.3704.1.3.8');
    expect(decodeOid(readDer(oid('2.16.840.1.101.3.4.2.2'), 't'), 't')).toBe('2.16.840.1.101.3.4.2.2');
    const d = new Date('2049-12-31T23:59:59Z');
    expect(decodeTime(readDer(time(d), 't'), 't')).toEqual(d);
    const g = new Date('2051-01-02T03:04:05Z');
    expect(decodeTime(readDer(time(g), 't'), 't')).toEqual(g);
  });

  it('property: random bytes never crash the reader or the certificate and CRL parsers', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        expect(['ok', 'bad-der']).toContain(
          errorCode(() => {
            const n = readDer(b, 'r');
            if (n.tag & 0x20) children(n, 'r');
          }),
        );
        expect(['ok', 'bad-der', 'bad-certificate']).toContain(errorCode(() => parseSnpCert(b, 'r')));
        expect(['ok', 'bad-der']).toContain(errorCode(() => parseCrl(b, 'r')));
      }),
      { numRuns: 500 },
    );
    // Random bytes behind a plausible SEQUENCE header reach deeper code paths.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const wrapped = seq(b);
        expect(['ok', 'bad-der', 'bad-certificate']).toContain(errorCode(() => parseSnpCert(wrapped, 'r')));
        expect(['ok', 'bad-der']).toContain(errorCode(() => parseCrl(wrapped, 'r')));
      }),
      { numRuns: 500 },
    );
  });

  it('property: every truncation and random byte change of a real VCEK is refused or parsed, never a crash', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: vcek.length - 1 }), (n) => {
        expect(['bad-der', 'bad-certificate']).toContain(
          errorCode(() => parseSnpCert(vcek.subarray(0, n), 'cut')),
        );
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: vcek.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const c = Uint8Array.from(vcek);
        c[i]! ^= x;
        expect(['ok', 'bad-der', 'bad-certificate']).toContain(errorCode(() => parseSnpCert(c, 'flip')));
      }),
      { numRuns: 500 },
    );
  });

  it('parses a CRL and every truncation of it fails cleanly', () => {
    const roots = makeTestRoots('Milan', 'der');
    const der = makeCrl(roots, { revokedSerials: [3, 0x10001] });
    const crl = parseCrl(der);
    expect([...crl.revoked.keys()]).toEqual(['03', '010001']);
    expect(crl.signedWithPss384).toBe(true);
    const pem = `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
    expect(parseCrl(new TextEncoder().encode(pem)).revoked.size).toBe(2);
    for (let n = 0; n < der.length; n++)
      expect(errorCode(() => parseCrl(der.subarray(0, n)))).toBe('bad-der');
  });
});
