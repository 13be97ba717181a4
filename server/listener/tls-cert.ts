/**
 * The listener's self-signed TLS certificate: an ECDSA P-256 key and an X.509 v3 certificate built here
 * with a minimal DER encoder and signed with node:crypto. Why not openssl or a library: the desktop app
 * runs on machines without an openssl binary (Windows) or with a different one (LibreSSL on macOS), and
 * the ~80 lines below avoid a new dependency; Node's own X509Certificate parser and a real TLS handshake
 * check the result in the tests. Generated on first use into the data dir (key mode 0600) and reused;
 * the owner pins its SHA-256 fingerprint on the host side.
 */
import { createHash, createSign, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const b: number[] = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}
function positiveInteger(bytes: Buffer): Buffer {
  return tlv(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}
function name(cn: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand '::'.
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

export interface SelfSignedCert {
  keyPem: string;
  certPem: string;
  /** SHA-256 of the DER certificate, colon-separated upper-case hex (what openssl and browsers show). */
  fingerprint: string;
}

/** Builds a self-signed ECDSA P-256 certificate for the given DNS names and IP addresses. */
export function generateSelfSignedCert(opts: { names: string[]; days?: number; now?: Date }): SelfSignedCert {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 24 * 3600_000);
  const notAfter = new Date(now.getTime() + (opts.days ?? 3650) * 24 * 3600_000);
  const serial = randomBytes(16);
  // Positive and minimal: a first byte of 0x00 would be a padding byte DER forbids (parsers refuse it).
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const altNames = opts.names.map((n) =>
    isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, 'ascii')),
  );
  const extensions = tlv(
    0xa3,
    seq(
      seq(oid('2.5.29.17'), tlv(0x04, seq(...altNames))),
      seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq())),
      seq(oid('2.5.29.37'), tlv(0x04, seq(oid('1.3.6.1.5.5.7.3.1')))),
    ),
  );
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    positiveInteger(serial),
    ecdsaSha256,
    name('sev-attest listener'),
    seq(time(notBefore), time(notAfter)),
    name('sev-attest listener'),
    spki,
    extensions,
  );
  const signature = createSign('sha256').update(tbs).sign(privateKey);
  const der = seq(tbs, ecdsaSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd()}\n-----END CERTIFICATE-----\n`;
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { keyPem, certPem, fingerprint: fingerprintOf(der) };
}

function fingerprintOf(der: Buffer): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/**
 * The listener's certificate from `dir/tls-key.pem` + `dir/tls-cert.pem`, generated on first use.
 * Written key first (0600) then certificate, each through a temp file and a rename.
 */
export function loadOrCreateTlsCert(dir: string, names: string[]): SelfSignedCert & { created: boolean } {
  const keyFile = join(dir, 'tls-key.pem');
  const certFile = join(dir, 'tls-cert.pem');
  if (fs.existsSync(keyFile) && fs.existsSync(certFile)) {
    const certPem = fs.readFileSync(certFile, 'utf8');
    const keyPem = fs.readFileSync(keyFile, 'utf8');
    const x = new X509Certificate(certPem);
    return { keyPem, certPem, fingerprint: x.fingerprint256, created: false };
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const c = generateSelfSignedCert({ names });
  for (const [file, data, mode] of [
    [keyFile, c.keyPem, 0o600],
    [certFile, c.certPem, 0o644],
  ] as const) {
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    fs.writeFileSync(tmp, data, { mode });
    fs.renameSync(tmp, file);
  }
  return { ...c, created: true };
}
