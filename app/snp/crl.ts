/**
 * AMD's SNP certificate revocation list (docs/protocol.md §12): an X.509 v2 CRL per product, served at
 * `/vcek/v1/<product>/crl`, issued and signed by the product's ARK with RSASSA-PSS/SHA-384. It lists
 * revoked intermediates (ASK, ASVK) by serial number.
 */
import { constants, verify } from 'node:crypto';
import {
  TAG,
  decodeBitString,
  decodeSmallUint,
  decodeTime,
  expectTag,
  integerBytes,
  readDer,
  sequence,
  type DerNode,
} from './chain-der';
import { isPss384, PSS_SALT_LENGTH, type SnpCert } from './chain';
import { SnpError } from './errors';

export interface SnpCrl {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Serial numbers (INTEGER content octets, lower-case hex) -> revocation date. */
  readonly revoked: ReadonlyMap<string, Date>;
  readonly signedWithPss384: boolean;
  readonly signature: Uint8Array;
}

function isTime(n: DerNode | undefined): boolean {
  return n !== undefined && (n.tag === TAG.UTC_TIME || n.tag === TAG.GENERALIZED_TIME);
}

/** Parses a DER (or PEM "X509 CRL") revocation list; structure only. */
export function parseCrl(bytes: Uint8Array, what = 'CRL'): SnpCrl {
  let der = bytes;
  if (bytes.length > 0 && bytes[0] !== TAG.SEQUENCE) {
    const m = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]*)-----END X509 CRL-----/.exec(
      Buffer.from(bytes).toString('latin1'),
    );
    if (!m) throw new SnpError('bad-der', `${what}: neither DER nor a PEM X509 CRL`);
    der = new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
  }
  der = Uint8Array.from(der);
  const [tbsNode, sigAlg, sigValue, ...extra] = sequence(readDer(der, what), what);
  if (!tbsNode || !sigAlg || !sigValue || extra.length) {
    throw new SnpError('bad-der', `${what}: a CRL has exactly 3 parts`);
  }
  const tbs = sequence(tbsNode, `${what} (tbsCertList)`);
  let i = 0;
  if (tbs[0]?.tag === TAG.INTEGER) {
    if (decodeSmallUint(tbs[0], `${what} (version)`) !== 1) {
      throw new SnpError('bad-der', `${what}: not a v2 CRL`);
    }
    i++;
  }
  const innerAlg = tbs[i++];
  if (!innerAlg || Buffer.compare(innerAlg.bytes, sigAlg.bytes) !== 0) {
    throw new SnpError('bad-der', `${what}: the inner and outer signature algorithms differ`);
  }
  const issuer = expectTag(tbs[i++], TAG.SEQUENCE, `${what} (issuer)`);
  const thisUpdate = decodeTime(tbs[i++], `${what} (thisUpdate)`);
  const nextUpdate = isTime(tbs[i]) ? decodeTime(tbs[i++], `${what} (nextUpdate)`) : undefined;
  const revoked = new Map<string, Date>();
  if (tbs[i]?.tag === TAG.SEQUENCE) {
    for (const entry of sequence(tbs[i++], `${what} (revokedCertificates)`)) {
      const [serial, date, exts, more] = sequence(entry, `${what} (revoked entry)`);
      if (more || (exts && exts.tag !== TAG.SEQUENCE)) {
        throw new SnpError('bad-der', `${what}: malformed revoked entry`);
      }
      const hex = Buffer.from(integerBytes(serial, `${what} (revoked serial)`)).toString('hex');
      revoked.set(hex, decodeTime(date, `${what} (revocationDate)`));
    }
  }
  if (tbs[i]?.tag === 0xa0) i++; // crlExtensions: nothing AMD puts there changes revocation
  if (i !== tbs.length) throw new SnpError('bad-der', `${what}: unexpected field after the revoked list`);
  return {
    der,
    tbs: tbsNode.bytes,
    issuerDer: issuer.bytes,
    thisUpdate,
    nextUpdate,
    revoked,
    signedWithPss384: isPss384(sigAlg, `${what} (signatureAlgorithm)`),
    signature: decodeBitString(sigValue, `${what} (signature)`),
  };
}

/**
 * Checks a CRL against the ARK that must have issued it and the time: issuer name, RSASSA-PSS/SHA-384
 * signature by the ARK, thisUpdate <= now <= nextUpdate. Throws SnpError('crl-invalid').
 */
export function verifyCrl(crl: SnpCrl, ark: SnpCert, now: Date, what = 'CRL'): void {
  const fail = (m: string): never => {
    throw new SnpError('crl-invalid', `${what}: ${m}`);
  };
  if (!crl.signedWithPss384) fail('not signed with RSASSA-PSS/SHA-384 (salt 48)');
  if (Buffer.compare(crl.issuerDer, ark.subjectDer) !== 0)
    fail(`not issued by ${ark.subjectCn ?? 'the ARK'}`);
  const ok = verify(
    'sha384',
    crl.tbs,
    { key: ark.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH },
    crl.signature,
  );
  if (!ok) fail(`the signature does not verify with ${ark.subjectCn ?? 'the ARK'}`);
  if (now.getTime() < crl.thisUpdate.getTime())
    fail(`issued in the future (${crl.thisUpdate.toISOString()})`);
  if (crl.nextUpdate && now.getTime() > crl.nextUpdate.getTime()) {
    fail(
      `out of date: its next update was due ${crl.nextUpdate.toISOString()} (checked at ${now.toISOString()})`,
    );
  }
}

/** Refuses a certificate the CRL lists. */
export function checkNotRevoked(crl: SnpCrl, cert: SnpCert, what: string): void {
  const when = crl.revoked.get(cert.serialHex);
  if (when) {
    throw new SnpError(
      'revoked',
      `${what} (serial 0x${cert.serialHex}) was revoked on ${when.toISOString()} by the ARK's CRL`,
    );
  }
}
