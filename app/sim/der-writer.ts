/**
 * A small DER writer for the simulated SNP key server (docs/protocol.md §12): just enough X.509 to issue
 * AMD-shaped certificates and CRLs (RSASSA-PSS/SHA-384 links, P-384 VCEKs with AMD's extensions).
 * Reading DER stays in app/snp/chain-der.ts; this module only writes.
 */
import { constants, sign, type KeyObject } from 'node:crypto';

function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function derTlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthOctets(body.length), body]);
}
export const derSeq = (...c: Uint8Array[]) => derTlv(0x30, ...c);
export const derSet = (...c: Uint8Array[]) => derTlv(0x31, ...c);
export const derNull = () => derTlv(0x05);
export const derOctets = (b: Uint8Array) => derTlv(0x04, b);
export const derIa5 = (s: string) => derTlv(0x16, Buffer.from(s, 'ascii'));
export const derUtf8 = (s: string) => derTlv(0x0c, Buffer.from(s, 'utf8'));

export function derOid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const b: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return derTlv(0x06, Buffer.from(out));
}

/** A non-negative INTEGER in minimal form. */
export function derInt(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) throw new RangeError('derInt: negative values are not written here');
  const bytes: number[] = [];
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v > 0n);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return derTlv(0x02, Buffer.from(bytes));
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5). */
export function derTime(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? derTlv(0x17, Buffer.from(iso.slice(2))) : derTlv(0x18, Buffer.from(iso));
}

/** The names AMD uses: OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=<cn>. */
export function amdName(cn: string): Buffer {
  const rdn = (oid: string, value: Buffer) => derSet(derSeq(derOid(oid), value));
  return derSeq(
    rdn('2.5.4.11', derUtf8('Engineering')),
    rdn('2.5.4.6', derTlv(0x13, Buffer.from('US'))),
    rdn('2.5.4.7', derUtf8('Santa Clara')),
    rdn('2.5.4.8', derUtf8('CA')),
    rdn('2.5.4.10', derUtf8('Advanced Micro Devices')),
    rdn('2.5.4.3', derUtf8(cn)),
  );
}

const SHA384_ALG = derSeq(derOid('2.16.840.1.101.3.4.2.2'), derNull());

/** RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48: the parameters AMD signs with. */
export function pss384Algorithm(): Buffer {
  return derSeq(
    derOid('1.2.840.113549.1.1.10'),
    derSeq(
      derTlv(0xa0, SHA384_ALG),
      derTlv(0xa1, derSeq(derOid('1.2.840.113549.1.1.8'), SHA384_ALG)),
      derTlv(0xa2, derInt(48)),
    ),
  );
}

export function pss384Sign(key: KeyObject, data: Uint8Array): Buffer {
  return sign('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
}

export interface CertificateSpec {
  serial: bigint | number;
  issuerName: Buffer;
  issuerKey: KeyObject;
  subjectName: Buffer;
  subjectPublicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** [oid, extnValue content (DER)] */
  extensions?: [string, Uint8Array][];
}

/** An X.509 v3 certificate signed with RSASSA-PSS/SHA-384 by the issuer's RSA key. */
export function issueCertificate(spec: CertificateSpec): Buffer {
  const alg = pss384Algorithm();
  const spki = spec.subjectPublicKey.export({ type: 'spki', format: 'der' });
  const exts = spec.extensions?.length
    ? [derTlv(0xa3, derSeq(...spec.extensions.map(([id, v]) => derSeq(derOid(id), derOctets(v)))))]
    : [];
  const tbs = derSeq(
    derTlv(0xa0, derInt(2)),
    derInt(spec.serial),
    alg,
    spec.issuerName,
    derSeq(derTime(spec.notBefore), derTime(spec.notAfter)),
    spec.subjectName,
    spki,
    ...exts,
  );
  return derSeq(tbs, alg, derTlv(0x03, Buffer.from([0]), pss384Sign(spec.issuerKey, tbs)));
}

export interface CrlSpec {
  issuerName: Buffer;
  issuerKey: KeyObject;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: { serial: bigint | number; date: Date }[];
}

/** An X.509 v2 CRL signed with RSASSA-PSS/SHA-384. */
export function issueCrl(spec: CrlSpec): Buffer {
  const alg = pss384Algorithm();
  const revoked = spec.revoked.length
    ? [derSeq(...spec.revoked.map((r) => derSeq(derInt(r.serial), derTime(r.date))))]
    : [];
  const tbs = derSeq(
    derInt(1),
    alg,
    spec.issuerName,
    derTime(spec.thisUpdate),
    derTime(spec.nextUpdate),
    ...revoked,
  );
  return derSeq(tbs, alg, derTlv(0x03, Buffer.from([0]), pss384Sign(spec.issuerKey, tbs)));
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
