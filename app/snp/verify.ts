/**
 * SNP report verification (docs/protocol.md §11, §12): the report's structure, its ECDSA P-384 signature
 * with the VCEK or VLEK, the key's chain to the product's pinned ARK (RSASSA-PSS/SHA-384), certificate
 * validity at `now`, the ARK-signed CRL, and the key's TCB / hwid extensions against the report. Only a
 * report that passed all of it becomes a VerifiedSnpReport, the one type appraisal.ts accepts.
 */
import { createHash, verify as cryptoVerify } from 'node:crypto';
import {
  checkValidity,
  keyExtensions,
  productOfKey,
  SnpVerifyCache,
  type KeyExtensions,
  type SnpCert,
} from './chain';
import { checkNotRevoked, parseCrl, verifyCrl, type SnpCrl } from './crl';
import { SnpError } from './errors';
import { parseReport, productFromCpuid, SNP_SIGNED_LENGTH, type SnpReport } from './report';
import { SnpTrustStore, type SnpProduct } from './roots';
import { decodeTcb, tcbComponents, tcbReservedNonZero, type TcbParts } from './tcb';

declare const verifiedBrand: unique symbol;

export type Revocation =
  { checked: true; thisUpdate: Date; nextUpdate: Date | undefined } | { checked: false; reason: string };

/** A report whose signature, chain, validity, revocation and key extensions verified. */
export interface VerifiedSnpReport {
  readonly [verifiedBrand]: true;
  readonly report: SnpReport;
  readonly product: SnpProduct;
  readonly signer: 'vcek' | 'vlek';
  readonly tcb: { reported: TcbParts; current: TcbParts; committed: TcbParts; launch: TcbParts };
  readonly key: { cert: SnpCert; extensions: KeyExtensions };
  readonly intermediate: SnpCert;
  readonly ark: SnpCert;
  readonly revocation: Revocation;
  readonly verifiedAt: Date;
}

export interface VerifyReportOptions {
  /** The VCEK (DER or PEM), for a report signed by a VCEK. */
  vcek?: Uint8Array;
  /** The VLEK (DER or PEM), for a report signed by a VLEK. */
  vlek?: Uint8Array;
  /** Required for a v2 report unless the key names it; must agree with the report and the key. */
  product?: SnpProduct;
  /**
   * An ASK/ASVK and ARK from elsewhere (the key server's cert_chain, the host). The ARK must be the
   * pinned one; the intermediate must be signed by it. Default: the pinned intermediate.
   */
  chain?: { ark: Uint8Array; intermediate: Uint8Array };
  /** The product's ARK-signed CRL (DER or PEM). Absent: refused unless allowMissingCrl. */
  crl?: Uint8Array;
  /** Why no CRL is given (shown in the refusal or in the result). */
  crlUnavailableReason?: string;
  /** Proceed without a CRL; the result says revocation was not checked. */
  allowMissingCrl?: boolean;
  /** The verification time for certificate validity and CRL freshness (default: the clock). */
  now?: Date;
  trust?: SnpTrustStore;
  cache?: SnpVerifyCache;
}

let defaultTrust: SnpTrustStore | undefined;
const defaultCache = new SnpVerifyCache();

function resolveProduct(report: SnpReport, key: SnpCert, given: SnpProduct | undefined): SnpProduct {
  const sources: [string, SnpProduct | undefined][] = [
    ['the report CPUID', productFromCpuid(report.cpuid)],
    ['the signing key', productOfKey(key)],
    ['the given product', given],
  ];
  const known = sources.filter((s): s is [string, SnpProduct] => s[1] !== undefined);
  const first = known[0];
  if (!first) {
    throw new SnpError(
      'unknown-product',
      `the product is unknown: a version ${report.version} report carries no CPUID and the key does not name it; give the product`,
    );
  }
  for (const [src, p] of known) {
    if (p !== first[1]) {
      throw new SnpError('product-mismatch', `${first[0]} says ${first[1]} but ${src} says ${p}`);
    }
  }
  return first[1];
}

function cachedCrl(cache: SnpVerifyCache, bytes: Uint8Array, ark: SnpCert): SnpCrl {
  const digest = createHash('sha256').update(bytes).digest('hex');
  return cache.remember(`crl:${ark.id}:${digest}`, () => parseCrl(bytes));
}

/** Verifies a report (see the module comment); throws SnpError with the exact reason. */
export function verifyReport(reportBytes: Uint8Array, opts: VerifyReportOptions): VerifiedSnpReport {
  const report = parseReport(reportBytes);
  const now = opts.now ?? new Date();
  const cache = opts.cache ?? defaultCache;
  const trust = opts.trust ?? (defaultTrust ??= SnpTrustStore.pinned());

  const signer = report.signerInfo.signingKey;
  if (signer === 'none') {
    throw new SnpError('signer-mismatch', 'the report says it is not signed (signing key 7, none)');
  }
  if (opts.vcek && opts.vlek) throw new SnpError('signer-mismatch', 'give either a VCEK or a VLEK, not both');
  const keyBytes = signer === 'vcek' ? opts.vcek : opts.vlek;
  if (!keyBytes) {
    const other = signer === 'vcek' ? 'VLEK' : 'VCEK';
    throw new SnpError(
      'signer-mismatch',
      `the report is signed by a ${signer.toUpperCase()}` +
        (opts.vcek || opts.vlek ? `, but a ${other} was given` : ', and none was given'),
    );
  }
  const keyName = signer.toUpperCase();
  const key = cache.cert(keyBytes, keyName);
  const details = key.publicKey.asymmetricKeyDetails;
  if (key.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'secp384r1') {
    throw new SnpError('bad-certificate', `${keyName}: not an ECDSA P-384 key`);
  }
  const product = resolveProduct(report, key, opts.product);
  // The store's own roots, unless the key was issued under an extra root set (the demo's simulated chip).
  let roots = trust.roots(product);
  let crlBytes = opts.crl;
  const extra = opts.chain ? undefined : trust.extraIssuerOf(product, key, signer);
  if (extra) {
    roots = extra.set;
    crlBytes = extra.crl;
  }

  // The chain: the pinned ARK, an intermediate it signed, the key the intermediate signed.
  let intermediate = signer === 'vcek' ? roots.ask : roots.asvk;
  const interName = signer === 'vcek' ? 'ASK' : 'ASVK';
  if (opts.chain) {
    const ark = cache.cert(opts.chain.ark, `supplied ${product} ARK`);
    if (ark.id !== roots.ark.id) {
      throw new SnpError(
        'root-not-pinned',
        `the supplied chain ends in '${ark.subjectCn ?? '?'}', which is not the pinned ${product} ARK`,
      );
    }
    intermediate = cache.cert(opts.chain.intermediate, `supplied ${interName}`);
    cache.verifySignedBy(intermediate, roots.ark, `${product} ARK -> ${interName}`);
  }
  cache.verifySignedBy(key, intermediate, `${product} ${interName} -> ${keyName}`);
  checkValidity(roots.ark, now, `the ${product} ARK`);
  checkValidity(intermediate, now, `the ${product} ${interName}`);
  checkValidity(key, now, `the ${keyName}`);

  // Revocation: the ARK-signed CRL must not list the intermediate.
  let revocation: Revocation;
  if (crlBytes) {
    const crl = cachedCrl(cache, crlBytes, roots.ark);
    verifyCrl(crl, roots.ark, now, `the ${product} CRL`);
    checkNotRevoked(crl, intermediate, `the ${product} ${interName}`);
    revocation = { checked: true, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate };
  } else {
    const reason = opts.crlUnavailableReason ?? 'no CRL was given';
    if (!opts.allowMissingCrl) {
      throw new SnpError(
        'crl-unavailable',
        `the ${product} revocation list is unavailable (${reason}); refusing without it`,
      );
    }
    revocation = { checked: false, reason };
  }

  // The key's extensions must describe this report's chip and TCB.
  const ext = keyExtensions(key, product, keyName);
  const reported = decodeTcb(report.reportedTcb, product);
  const reservedSet = tcbReservedNonZero(report.reportedTcb, product);
  if (reservedSet.length) {
    throw new SnpError(
      'tcb-mismatch',
      `reported_tcb has non-zero reserved byte(s) ${reservedSet.join(', ')} for ${product}`,
    );
  }
  const diffs = tcbComponents(product)
    .filter((c) => ext.tcb[c] !== reported[c])
    .map((c) => `${c}: ${keyName} ${ext.tcb[c]}, report ${reported[c]}`);
  if (diffs.length) {
    throw new SnpError(
      'tcb-mismatch',
      `the ${keyName} is for another TCB than reported_tcb (${diffs.join('; ')})`,
    );
  }
  if (ext.productName !== undefined && !ext.productName.startsWith(product)) {
    throw new SnpError('product-mismatch', `the ${keyName} is for '${ext.productName}', not ${product}`);
  }
  if (signer === 'vcek') {
    const chip = product === 'Turin' ? report.chipId.subarray(0, 8) : report.chipId;
    if (report.signerInfo.maskChipKey || report.chipId.every((b) => b === 0)) {
      throw new SnpError(
        'chip-id-masked',
        'the report masks its chip id (MASK_CHIP_KEY), so it cannot be bound to a VCEK (chip-specific key)',
      );
    }
    if (!ext.hwid) throw new SnpError('bad-certificate', 'the VCEK carries no hwid extension');
    if (Buffer.compare(ext.hwid, chip) !== 0) {
      throw new SnpError(
        'hwid-mismatch',
        `the VCEK is for chip ${Buffer.from(ext.hwid).toString('hex')}, the report's chip_id is ${Buffer.from(chip).toString('hex')}`,
      );
    }
  }

  // The signature: r and s were turned big-endian by parseReport; P1363 is r || s.
  const sig = Buffer.concat([report.signatureR, report.signatureS]);
  const ok = cryptoVerify(
    'sha384',
    report.raw.subarray(0, SNP_SIGNED_LENGTH),
    { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
    sig,
  );
  if (!ok) {
    throw new SnpError('bad-signature', `the report's signature does not verify with the ${keyName}`);
  }

  return {
    report,
    product,
    signer,
    tcb: {
      reported,
      current: decodeTcb(report.currentTcb, product),
      committed: decodeTcb(report.committedTcb, product),
      launch: decodeTcb(report.launchTcb, product),
    },
    key: { cert: key, extensions: ext },
    intermediate,
    ark: roots.ark,
    revocation,
    verifiedAt: now,
  } as VerifiedSnpReport;
}
