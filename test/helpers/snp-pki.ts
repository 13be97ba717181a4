/**
 * Test-only SNP PKI: a small DER writer, an RSA-PSS ARK/ASK/ASVK set, P-384 VCEKs/VLEKs with AMD's TCB and
 * hwid extensions, ARK-signed CRLs and signed SNP reports, so negative cases (revoked ASK, wrong TCB, wrong
 * hwid, expired key, …) can be built. Never used by product code.
 */
import { constants, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { makeRootSet, type SnpProduct, type SnpRootSet } from '../../app/snp/roots';
import { OFF, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH } from '../../app/snp/report';
import { encodeTcb, type TcbParts } from '../../app/snp/tcb';
import {
  derInt as int,
  derOid as oid,
  derSeq as seq,
  derSet as set,
  derTlv as tlv,
  derTime as time,
} from '../../app/sim/der-writer';

// --- DER writer: the simulator's (app/sim/der-writer.ts), under the short names these tests use ------
export {
  derTlv as tlv,
  derSeq as seq,
  derSet as set,
  derOid as oid,
  derInt as int,
  derTime as time,
} from '../../app/sim/der-writer';
export function name(cn: string): Buffer {
  return seq(
    set(seq(oid('2.5.4.11'), tlv(0x0c, Buffer.from('Engineering')))),
    set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn)))),
  );
}
const sha384Alg = seq(oid('2.16.840.1.101.3.4.2.2'), tlv(0x05));
/** RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (AMD's parameters). */
export function pssAlg(salt = 48): Buffer {
  return seq(
    oid('1.2.840.113549.1.1.10'),
    seq(tlv(0xa0, sha384Alg), tlv(0xa1, seq(oid('1.2.840.113549.1.1.8'), sha384Alg)), tlv(0xa2, int(salt))),
  );
}
function pssSign(key: KeyObject, data: Uint8Array, salt = 48): Buffer {
  return sign('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: salt });
}

// --- certificates ----------------------------------------------------------------------------------------
export interface TestCert {
  der: Buffer;
  key: KeyObject;
  subject: string;
}

export interface CertSpec {
  subject: string;
  issuer: { subject: string; key: KeyObject };
  publicKey: KeyObject;
  serial?: number;
  notBefore?: Date;
  notAfter?: Date;
  extensions?: [string, Uint8Array][];
  /** Sign with another salt than 48 (a deviating algorithm). */
  salt?: number;
}

export function makeCert(spec: CertSpec): Buffer {
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' });
  const alg = pssAlg(spec.salt);
  const exts = spec.extensions?.length
    ? [tlv(0xa3, seq(...spec.extensions.map(([id, v]) => seq(oid(id), tlv(0x04, v)))))]
    : [];
  const tbs = seq(
    tlv(0xa0, int(2)),
    int(spec.serial ?? 1),
    alg,
    name(spec.issuer.subject),
    seq(
      time(spec.notBefore ?? new Date('2020-01-01T00:00:00Z')),
      time(spec.notAfter ?? new Date('2045-01-01T00:00:00Z')),
    ),
    name(spec.subject),
    spki,
    ...exts,
  );
  return seq(tbs, alg, tlv(0x03, Buffer.from([0]), pssSign(spec.issuer.key, tbs, spec.salt)));
}

const rsaKeys = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }>();
/** An RSA key pair (2048 bits: test speed; AMD's are 4096), memoised by label within a test file. */
export function rsaKey(label: string) {
  let k = rsaKeys.get(label);
  if (!k) {
    k = generateKeyPairSync('rsa', { modulusLength: 2048 });
    rsaKeys.set(label, k);
  }
  return k;
}

export interface TestRoots {
  product: SnpProduct;
  ark: TestCert;
  ask: TestCert;
  asvk: TestCert;
  set: SnpRootSet;
}

export function makeTestRoots(
  product: SnpProduct = 'Milan',
  label = 'test',
  opts: { askSerial?: number } = {},
): TestRoots {
  const arkK = rsaKey(`${label}-ark`);
  const askK = rsaKey(`${label}-ask`);
  const asvkK = rsaKey(`${label}-asvk`);
  const arkName = `ARK-${product}`;
  const ark = makeCert({
    subject: arkName,
    issuer: { subject: arkName, key: arkK.privateKey },
    publicKey: arkK.publicKey,
    serial: 0x10000,
  });
  const issuer = { subject: arkName, key: arkK.privateKey };
  const ask = makeCert({
    subject: `SEV-${product}`,
    issuer,
    publicKey: askK.publicKey,
    serial: opts.askSerial ?? 0x10001,
  });
  const asvk = makeCert({
    subject: `SEV-VLEK-${product}`,
    issuer,
    publicKey: asvkK.publicKey,
    serial: 0x10002,
  });
  return {
    product,
    ark: { der: ark, key: arkK.privateKey, subject: arkName },
    ask: { der: ask, key: askK.privateKey, subject: `SEV-${product}` },
    asvk: { der: asvk, key: asvkK.privateKey, subject: `SEV-VLEK-${product}` },
    set: makeRootSet(product, { ark, ask, asvk }, label),
  };
}

const AMD = '1.3.6.1.4.1.3704.1';
export interface KeySpec {
  product: SnpProduct;
  tcb: TcbParts;
  /** VCEK: 64 bytes (Turin: 8); omitted for a VLEK. */
  hwid?: Uint8Array;
  notBefore?: Date;
  notAfter?: Date;
  productName?: string;
  /** Leave out one SPL extension (by OID suffix, e.g. '3.8'). */
  omit?: string;
}

/** A P-384 VCEK or VLEK signed by the ASK / ASVK, with AMD's extensions. */
export function makeKey(
  roots: TestRoots,
  kind: 'vcek' | 'vlek',
  spec: KeySpec,
): { der: Buffer; key: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
  const ext: [string, Uint8Array][] = [
    [`${AMD}.1`, int(1)],
    [`${AMD}.2`, tlv(0x16, Buffer.from(spec.productName ?? spec.product))],
    [`${AMD}.3.1`, int(spec.tcb.bootloader)],
    [`${AMD}.3.2`, int(spec.tcb.tee)],
    [`${AMD}.3.3`, int(spec.tcb.snp)],
    [`${AMD}.3.8`, int(spec.tcb.microcode)],
  ];
  if (spec.product === 'Turin') ext.push([`${AMD}.3.9`, int(spec.tcb.fmc ?? 0)]);
  if (spec.hwid) ext.push([`${AMD}.4`, tlv(0x04, spec.hwid)]);
  if (kind === 'vlek') ext.push([`${AMD}.5`, tlv(0x16, Buffer.from('CN=test-csp'))]);
  const issuer = kind === 'vcek' ? roots.ask : roots.asvk;
  const der = makeCert({
    subject: kind === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK',
    issuer: { subject: issuer.subject, key: issuer.key },
    publicKey,
    serial: 0,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    extensions: ext.filter(([id]) => !spec.omit || id !== `${AMD}.${spec.omit}`),
  });
  return { der, key: privateKey };
}

export interface CrlSpec {
  revokedSerials?: number[];
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** Sign with this key instead of the ARK's. */
  signer?: KeyObject;
}

/** An X.509 v2 CRL issued by the ARK (RSASSA-PSS / SHA-384). */
export function makeCrl(roots: TestRoots, spec: CrlSpec = {}): Buffer {
  const revoked = spec.revokedSerials?.length
    ? [seq(...spec.revokedSerials.map((s) => seq(int(s), time(new Date('2024-01-01T00:00:00Z')))))]
    : [];
  const tbs = seq(
    int(1),
    pssAlg(),
    name(roots.ark.subject),
    time(spec.thisUpdate ?? new Date('2024-06-01T00:00:00Z')),
    time(spec.nextUpdate ?? new Date('2040-01-01T00:00:00Z')),
    ...revoked,
  );
  return seq(tbs, pssAlg(), tlv(0x03, Buffer.from([0]), pssSign(spec.signer ?? roots.ark.key, tbs)));
}

// --- reports ---------------------------------------------------------------------------------------------
export interface ReportSpec {
  product: SnpProduct;
  version?: number;
  tcb: TcbParts;
  chipId?: Uint8Array;
  signer?: 'vcek' | 'vlek';
  maskChipKey?: boolean;
  authorKeyEnabled?: boolean;
  policy?: bigint;
  vmpl?: number;
  guestSvn?: number;
  measurement?: Uint8Array;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  authorKeyDigest?: Uint8Array;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  reportData?: Uint8Array;
  launchTcb?: TcbParts;
}

const CPUID: Record<SnpProduct, [number, number, number]> = {
  Milan: [0x19, 0x01, 0x01],
  Genoa: [0x19, 0x11, 0x01],
  Turin: [0x1a, 0x02, 0x00],
};

/** A report with the given fields, signed with `key` (P-384) as the firmware does. */
export function makeReport(spec: ReportSpec, key: KeyObject | string): Uint8Array {
  const b = Buffer.alloc(SNP_REPORT_SIZE);
  const version = spec.version ?? 3;
  b.writeUInt32LE(version, OFF.version);
  b.writeUInt32LE(spec.guestSvn ?? 0, OFF.guestSvn);
  b.writeBigUInt64LE(spec.policy ?? 0x30000n, OFF.policy);
  if (spec.familyId) b.set(spec.familyId, OFF.familyId);
  if (spec.imageId) b.set(spec.imageId, OFF.imageId);
  b.writeUInt32LE(spec.vmpl ?? 0, OFF.vmpl);
  b.writeUInt32LE(1, OFF.signatureAlgo);
  const tcb = encodeTcb(spec.tcb, spec.product);
  b.set(tcb, OFF.currentTcb);
  b.set(tcb, OFF.reportedTcb);
  b.set(tcb, OFF.committedTcb);
  b.set(encodeTcb(spec.launchTcb ?? spec.tcb, spec.product), OFF.launchTcb);
  const signer = (spec.signer === 'vlek' ? 1 : 0) << 2;
  b.writeUInt32LE(signer | (spec.maskChipKey ? 2 : 0) | (spec.authorKeyEnabled ? 1 : 0), OFF.signerInfo);
  if (spec.reportData) b.set(spec.reportData, OFF.reportData);
  b.set(spec.measurement ?? Buffer.alloc(48, 0xaa), OFF.measurement);
  if (spec.hostData) b.set(spec.hostData, OFF.hostData);
  if (spec.idKeyDigest) b.set(spec.idKeyDigest, OFF.idKeyDigest);
  if (spec.authorKeyDigest) b.set(spec.authorKeyDigest, OFF.authorKeyDigest);
  if (version >= 3) b.set(CPUID[spec.product], OFF.cpuidFamily);
  if (spec.chipId && !spec.maskChipKey) b.set(spec.chipId, OFF.chipId);
  const k = typeof key === 'string' ? createPrivateKey(key) : key;
  const sig = sign('sha384', b.subarray(0, SNP_SIGNED_LENGTH), { key: k, dsaEncoding: 'ieee-p1363' });
  b.set(Buffer.from(sig.subarray(0, 48)).reverse(), OFF.signatureR);
  b.set(Buffer.from(sig.subarray(48, 96)).reverse(), OFF.signatureS);
  return new Uint8Array(b);
}

/** A chip id with a recognisable pattern. */
export function chipId(seed: number): Uint8Array {
  return Uint8Array.from({ length: 64 }, (_, i) => (seed * 31 + i * 7 + 1) & 0xff);
}
