/**
 * A simulated SEV-SNP platform (docs/protocol.md §11, §12) for tests, the benchmark and the demo: one chip
 * of a product (Milan, Genoa, Turin) with its own AMD-shaped PKI, not AMD's:
 *  - a test ARK (RSA-4096, self-signed) and ASK/ASVK signed by it, all RSASSA-PSS/SHA-384 (salt 48);
 *  - per TCB, a VCEK (P-384) signed by the ASK with AMD's extensions (SPLs, hwid, product name), as the key
 *    server issues them;
 *  - an ARK-signed CRL, optionally revoking the ASK or the ASVK.
 * `launch()` gives a guest whose `getReport()` returns the 0x4A0 bytes the firmware signs (ECDSA P-384 over
 * [0, 0x2A0), r and s little-endian in 72-byte fields), and `getEvidence()` the same report in the JSON form
 * guest-components sends (virtee/sev's serde of the report plus the host's certificates, if any).
 * Trust it only through `trustStore()`: its roots are never AMD's pinned ones.
 */
import {
  createHash,
  generateKeyPair,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { OFF, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH } from '../snp/report';
import { makeRootSet, SnpTrustStore, type SnpProduct, type SnpRootSet } from '../snp/roots';
import { decodeTcb, encodeTcb, tcbComponents, type TcbParts } from '../snp/tcb';
import { amdName, derIa5, derInt, derOctets, issueCertificate, issueCrl, toPem } from './der-writer';
import { stringifyExact, type ExactJson } from './exact-json';
import { kdsStandIn, type SnpKdsStandIn } from './snp-kds-stand-in';

const generateKeyPairAsync = promisify(generateKeyPair);

/** CPUID family/model/stepping a v3+ report carries, per product (go-sev-guest's product table). */
export const SIM_CPUID: Record<SnpProduct, { family: number; model: number; stepping: number }> = {
  Milan: { family: 0x19, model: 0x01, stepping: 0x01 },
  Genoa: { family: 0x19, model: 0x11, stepping: 0x01 },
  Turin: { family: 0x1a, model: 0x02, stepping: 0x00 },
};

/** The cert table GUIDs (SEV-SNP GHCB spec; virtee/sev CertType; go-sev-guest abi). */
export const CERT_TABLE_GUID = {
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  CRL: '92f81bc3-5811-4d3d-97ff-d19f88dc67ea',
} as const;
export type CertTableType = keyof typeof CERT_TABLE_GUID;

const AMD_EXT = '1.3.6.1.4.1.3704.1';
const DEFAULT_TCB: TcbParts = { bootloader: 4, tee: 0, snp: 22, microcode: 213 };
const DEFAULT_TURIN_TCB: TcbParts = { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 72 };
/** SEV-SNP guest policy: reserved bit 17 set, SMT allowed (QEMU's default 0x30000). */
export const DEFAULT_SNP_POLICY = 0x30000n;
/** The default ARK/ASK serials; the CRL revokes by these. */
const SERIAL = { ark: 0x10000n, ask: 0x10001n, asvk: 0x10002n } as const;

export interface SimulatedSnpFirmwareOptions {
  product: SnpProduct;
  /** The platform's reported TCB (default: a recent-looking one for the product). */
  tcb?: TcbParts;
  /** 64 bytes; default random (Turin: 8 random bytes then zeros, as Turin chips report). */
  chipId?: Uint8Array;
  /** RSA size of the ARK/ASK/ASVK: 4096 as AMD's (default); tests may use 2048 for speed. */
  rsaModulusBits?: 2048 | 3072 | 4096;
  /** Put this intermediate on the CRL (its serial). */
  revoke?: 'ask' | 'asvk';
  crlThisUpdate?: Date;
  crlNextUpdate?: Date;
  /** Validity of every certificate issued (default 2020-01-01 .. 2045-01-01). */
  notBefore?: Date;
  notAfter?: Date;
  /** CURRENT/COMMITTED firmware version in reports (default 1.55.21). */
  firmwareVersion?: { major: number; minor: number; build: number };
  /** PLATFORM_INFO (u64) in reports (default 0x3: SMT and TSME enabled). */
  platformInfo?: bigint;
}

export interface SnpLaunchOptions {
  /** The 48-byte launch digest. */
  measurement: Uint8Array;
  /** The guest policy (u64); bit 17 must be set. */
  policy: bigint;
  hostData?: Uint8Array;
  idKeyDigest?: Uint8Array;
  /** Sets AUTHOR_KEY_EN in the signer info. */
  authorKeyDigest?: Uint8Array;
  familyId?: Uint8Array;
  imageId?: Uint8Array;
  guestSvn?: number;
  /** A reported TCB for this guest's reports (a platform running older firmware); default the chip's. */
  tcb?: TcbParts;
  /** 2..5; default 3. A v2 report has no CPUID fields. */
  reportVersion?: number;
  /**
   * What the host hands the guest with the report (configfs-tsm auxblob / the extended report):
   * nothing (default; guest-components then sends `cert_chain: null`), the VCEK, or ARK+ASK+VCEK.
   */
  hostCertificates?: 'none' | 'vcek' | 'chain';
}

export interface CertTableEntry {
  certType: CertTableType;
  data: Uint8Array;
}

/** The report as guest-components sends it: virtee/sev's serde form plus the host's certificates. */
export interface SnpEvidence {
  /** The 0x4A0 signed bytes. */
  report: Uint8Array;
  /** The certificates the host supplied, or null. */
  certChain: CertTableEntry[] | null;
  /** The host's certificate table bytes (GUID table), when it supplied certificates. */
  certTable: Uint8Array | undefined;
  /** `{attestation_report, cert_chain}` with bigint for u64 values. */
  json: { attestation_report: Record<string, ExactJson>; cert_chain: ExactJson };
  /** `json` as JSON text with exact integers. */
  jsonText: string;
}

interface IssuedKey {
  der: Uint8Array;
  key: KeyObject;
}

function checkBytes(name: string, b: Uint8Array | undefined, size: number): Uint8Array {
  const out = new Uint8Array(size);
  if (b === undefined) return out;
  if (b.length !== size) throw new RangeError(`${name}: expected ${size} bytes, got ${b.length}`);
  out.set(b);
  return out;
}

function tcbKey(product: SnpProduct, tcb: TcbParts): string {
  return tcbComponents(product)
    .map((c) => `${c}=${tcb[c] ?? 0}`)
    .join('&');
}

/** One simulated chip; see the module comment. Build with `SimulatedSnpFirmware.create()`. */
export class SimulatedSnpFirmware {
  readonly product: SnpProduct;
  readonly chipId: Uint8Array;
  readonly tcb: TcbParts;
  /** DER of the ARK, ASK, ASVK and CRL; `certChainPem` as the key server's cert_chain (ASK, then ARK). */
  readonly roots: {
    ark: Uint8Array;
    ask: Uint8Array;
    asvk: Uint8Array;
    crl: Uint8Array;
    certChainPem: string;
    vlekChainPem: string;
  };
  private readonly vceks = new Map<string, IssuedKey>();
  private readonly askKey: KeyObject;
  private readonly notBefore: Date;
  private readonly notAfter: Date;
  readonly firmwareVersion: { major: number; minor: number; build: number };
  readonly platformInfo: bigint;
  private rootSetMemo: SnpRootSet | undefined;

  private constructor(
    opts: SimulatedSnpFirmwareOptions,
    keys: { ark: KeyObject; ask: KeyObject },
    roots: SimulatedSnpFirmware['roots'],
  ) {
    this.product = opts.product;
    this.tcb = { ...(opts.tcb ?? (opts.product === 'Turin' ? DEFAULT_TURIN_TCB : DEFAULT_TCB)) };
    if (opts.product !== 'Turin') delete this.tcb.fmc;
    else this.tcb.fmc ??= 0;
    this.chipId = opts.chipId
      ? checkBytes('chipId', opts.chipId, 64)
      : SimulatedSnpFirmware.randomChipId(opts.product);
    this.askKey = keys.ask;
    this.roots = roots;
    this.notBefore = opts.notBefore ?? new Date('2020-01-01T00:00:00Z');
    this.notAfter = opts.notAfter ?? new Date('2045-01-01T00:00:00Z');
    this.firmwareVersion = opts.firmwareVersion ?? { major: 1, minor: 55, build: 21 };
    this.platformInfo = opts.platformInfo ?? 0x3n;
  }

  private static randomChipId(product: SnpProduct): Uint8Array {
    const id = new Uint8Array(64);
    id.set(randomBytes(product === 'Turin' ? 8 : 64));
    if (id.every((b) => b === 0)) id[0] = 1;
    return id;
  }

  /** Generates the ARK, ASK and ASVK (RSA, off the event loop), issues the certificates and the CRL. */
  static async create(opts: SimulatedSnpFirmwareOptions): Promise<SimulatedSnpFirmware> {
    const bits = opts.rsaModulusBits ?? 4096;
    const [ark, ask, asvk] = await Promise.all(
      [0, 1, 2].map(() => generateKeyPairAsync('rsa', { modulusLength: bits, publicExponent: 0x10001 })),
    );
    const p = opts.product;
    const notBefore = opts.notBefore ?? new Date('2020-01-01T00:00:00Z');
    const notAfter = opts.notAfter ?? new Date('2045-01-01T00:00:00Z');
    const arkName = amdName(`ARK-${p}`);
    const issue = (serial: bigint, cn: string, subjectKey: KeyObject) =>
      issueCertificate({
        serial,
        issuerName: arkName,
        issuerKey: ark!.privateKey,
        subjectName: amdName(cn),
        subjectPublicKey: subjectKey,
        notBefore,
        notAfter,
      });
    const arkDer = issue(SERIAL.ark, `ARK-${p}`, ark!.publicKey);
    const askDer = issue(SERIAL.ask, `SEV-${p}`, ask!.publicKey);
    const asvkDer = issue(SERIAL.asvk, `SEV-VLEK-${p}`, asvk!.publicKey);
    const revokedSerial = opts.revoke ? SERIAL[opts.revoke] : undefined;
    const crl = issueCrl({
      issuerName: arkName,
      issuerKey: ark!.privateKey,
      thisUpdate: opts.crlThisUpdate ?? new Date('2024-01-01T00:00:00Z'),
      nextUpdate: opts.crlNextUpdate ?? new Date('2044-01-01T00:00:00Z'),
      revoked:
        revokedSerial !== undefined
          ? [{ serial: revokedSerial, date: new Date('2024-01-01T00:00:00Z') }]
          : [],
    });
    return new SimulatedSnpFirmware(
      opts,
      { ark: ark!.privateKey, ask: ask!.privateKey },
      {
        ark: new Uint8Array(arkDer),
        ask: new Uint8Array(askDer),
        asvk: new Uint8Array(asvkDer),
        crl: new Uint8Array(crl),
        certChainPem: toPem('CERTIFICATE', askDer) + toPem('CERTIFICATE', arkDer),
        vlekChainPem: toPem('CERTIFICATE', asvkDer) + toPem('CERTIFICATE', arkDer),
      },
    );
  }

  /** The ARK/ASK/ASVK as a checked root set (app/snp/roots.ts makeRootSet). */
  rootSet(): SnpRootSet {
    return (this.rootSetMemo ??= makeRootSet(this.product, this.roots, 'simulated'));
  }

  /** A trust store holding only this simulated chip's roots (never AMD's). */
  trustStore(): SnpTrustStore {
    return SnpTrustStore.of([this.rootSet()]);
  }

  /** The hwid the key server names this chip by (Turin: the first 8 bytes of the chip id). */
  hwid(): Uint8Array {
    return this.product === 'Turin' ? this.chipId.slice(0, 8) : this.chipId.slice();
  }

  /** Normalises a TCB to this product's components (Turin carries fmc; the others do not). */
  private normaliseTcb(tcb: TcbParts): TcbParts {
    return decodeTcb(encodeTcb(tcb, this.product), this.product);
  }

  /** The VCEK for this chip at a TCB (default the chip's), issued once and then remembered. */
  vcek(tcb: TcbParts = this.tcb): IssuedKey {
    const t = this.normaliseTcb(tcb);
    const k = tcbKey(this.product, t);
    let issued = this.vceks.get(k);
    if (!issued) {
      const { privateKey, publicKey } = generateKeyPairSyncEc();
      const ext: [string, Uint8Array][] = [
        [`${AMD_EXT}.1`, derInt(1)],
        [`${AMD_EXT}.2`, derIa5(`${this.product}-B0`)],
        [`${AMD_EXT}.3.1`, derInt(t.bootloader)],
        [`${AMD_EXT}.3.2`, derInt(t.tee)],
        [`${AMD_EXT}.3.3`, derInt(t.snp)],
        [`${AMD_EXT}.3.4`, derInt(0)],
        [`${AMD_EXT}.3.5`, derInt(0)],
        [`${AMD_EXT}.3.6`, derInt(0)],
        [`${AMD_EXT}.3.7`, derInt(0)],
        [`${AMD_EXT}.3.8`, derInt(t.microcode)],
      ];
      if (this.product === 'Turin') ext.push([`${AMD_EXT}.3.9`, derInt(t.fmc ?? 0)]);
      ext.push([`${AMD_EXT}.4`, derOctets(this.hwid())]);
      const der = issueCertificate({
        serial: 0n,
        issuerName: amdName(`SEV-${this.product}`),
        issuerKey: this.askKey,
        subjectName: amdName('SEV-VCEK'),
        subjectPublicKey: publicKey,
        notBefore: this.notBefore,
        notAfter: this.notAfter,
        extensions: ext,
      });
      issued = { der: new Uint8Array(der), key: privateKey };
      this.vceks.set(k, issued);
    }
    return issued;
  }

  /** A key-server stand-in on 127.0.0.1 serving this chip (snp-kds-stand-in.ts); stop() it when done. */
  kdsStandIn(): Promise<SnpKdsStandIn & { url: string }> {
    return kdsStandIn([this]);
  }

  /** Starts a guest with these launch-time values (see SnpLaunchOptions). */
  launch(opts: SnpLaunchOptions): SimulatedSnpGuest {
    return new SimulatedSnpGuest(this, opts);
  }

  /** Fills and signs a report body (used by SimulatedSnpGuest). */
  signReport(body: Uint8Array, tcb: TcbParts): Uint8Array {
    const { key } = this.vcek(tcb);
    const sig = sign('sha384', body.subarray(0, SNP_SIGNED_LENGTH), { key, dsaEncoding: 'ieee-p1363' });
    const out = Uint8Array.from(body);
    out.fill(0, OFF.signatureR, SNP_REPORT_SIZE);
    out.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), OFF.signatureR);
    out.set(Uint8Array.from(sig.subarray(48, 96)).reverse(), OFF.signatureS);
    return out;
  }
}

function generateKeyPairSyncEc(): { privateKey: KeyObject; publicKey: KeyObject } {
  // P-384 generation takes well under a millisecond; only RSA is moved off the event loop.
  return generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
}

/** A guest launched on a SimulatedSnpFirmware; asks it for reports. */
export class SimulatedSnpGuest {
  readonly reportId = new Uint8Array(randomBytes(32));
  readonly reportVersion: number;
  readonly tcb: TcbParts;
  private readonly launchTcb: TcbParts;

  constructor(
    readonly firmware: SimulatedSnpFirmware,
    readonly launchOptions: SnpLaunchOptions,
  ) {
    const v = launchOptions.reportVersion ?? 3;
    if (!Number.isInteger(v) || v < 2 || v > 5) throw new RangeError(`reportVersion ${v}: expected 2..5`);
    checkBytes('measurement', launchOptions.measurement, 48);
    if (((launchOptions.policy >> 17n) & 1n) !== 1n) {
      throw new RangeError('policy: reserved bit 17 must be set (the firmware refuses the launch)');
    }
    this.reportVersion = v;
    this.tcb = launchOptions.tcb ?? firmware.tcb;
    this.launchTcb = this.tcb;
  }

  /** The unsigned report body for this request (everything but the signature). */
  private body(reportData: Uint8Array, vmpl: number): Uint8Array {
    if (!(reportData instanceof Uint8Array) || reportData.length !== 64) {
      throw new RangeError(`report_data: expected 64 bytes, got ${reportData?.length}`);
    }
    if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) throw new RangeError(`VMPL ${vmpl}: expected 0..3`);
    const fw = this.firmware;
    const o = this.launchOptions;
    const b = Buffer.alloc(SNP_REPORT_SIZE);
    b.writeUInt32LE(this.reportVersion, OFF.version);
    b.writeUInt32LE(o.guestSvn ?? 0, OFF.guestSvn);
    b.writeBigUInt64LE(o.policy, OFF.policy);
    b.set(checkBytes('familyId', o.familyId, 16), OFF.familyId);
    b.set(checkBytes('imageId', o.imageId, 16), OFF.imageId);
    b.writeUInt32LE(vmpl, OFF.vmpl);
    b.writeUInt32LE(1, OFF.signatureAlgo);
    const tcb = encodeTcb(this.tcb, fw.product);
    b.set(tcb, OFF.currentTcb);
    b.writeBigUInt64LE(fw.platformInfo, OFF.platformInfo);
    b.writeUInt32LE(o.authorKeyDigest ? 1 : 0, OFF.signerInfo); // signing key 0: VCEK
    b.set(reportData, OFF.reportData);
    b.set(o.measurement, OFF.measurement);
    b.set(checkBytes('hostData', o.hostData, 32), OFF.hostData);
    b.set(checkBytes('idKeyDigest', o.idKeyDigest, 48), OFF.idKeyDigest);
    b.set(checkBytes('authorKeyDigest', o.authorKeyDigest, 48), OFF.authorKeyDigest);
    b.set(this.reportId, OFF.reportId);
    b.fill(0xff, OFF.reportIdMa, OFF.reportIdMa + 32); // no migration agent
    b.set(tcb, OFF.reportedTcb);
    if (this.reportVersion >= 3) {
      const c = SIM_CPUID[fw.product];
      b[OFF.cpuidFamily] = c.family;
      b[OFF.cpuidModel] = c.model;
      b[OFF.cpuidStepping] = c.stepping;
    }
    b.set(fw.chipId, OFF.chipId);
    b.set(tcb, OFF.committedTcb);
    const v = fw.firmwareVersion;
    b[OFF.currentBuild] = v.build;
    b[OFF.currentMinor] = v.minor;
    b[OFF.currentMajor] = v.major;
    b[OFF.committedBuild] = v.build;
    b[OFF.committedMinor] = v.minor;
    b[OFF.committedMajor] = v.major;
    b.set(encodeTcb(this.launchTcb, fw.product), OFF.launchTcb);
    return new Uint8Array(b);
  }

  /** SNP_GUEST_REQUEST(MSG_REPORT_REQ): the signed 0x4A0 bytes binding `reportData` at `vmpl`. */
  getReport(reportData: Uint8Array, vmpl = 0): Uint8Array {
    return this.firmware.signReport(this.body(reportData, vmpl), this.tcb);
  }

  /** The certificates the host hands out with a report (launch option `hostCertificates`). */
  hostCertificates(): CertTableEntry[] | null {
    const mode = this.launchOptions.hostCertificates ?? 'none';
    if (mode === 'none') return null;
    const vcek: CertTableEntry = { certType: 'VCEK', data: this.firmware.vcek(this.tcb).der };
    if (mode === 'vcek') return [vcek];
    return [
      { certType: 'ARK', data: this.firmware.roots.ark },
      { certType: 'ASK', data: this.firmware.roots.ask },
      vcek,
    ];
  }

  /** A report plus the host's certificates, in raw and in guest-components' JSON form. */
  getEvidence(reportData: Uint8Array, vmpl = 0): SnpEvidence {
    const report = this.getReport(reportData, vmpl);
    const certChain = this.hostCertificates();
    const json = {
      attestation_report: reportToVirteeJson(report, this.firmware.product),
      cert_chain: certChain
        ? certChain.map((c) => ({ cert_type: c.certType, data: Array.from(c.data) }))
        : null,
    };
    return {
      report,
      certChain,
      certTable: certChain ? encodeCertTable(certChain) : undefined,
      json,
      jsonText: stringifyExact(json),
    };
  }
}

/** RFC 4122 text GUID -> 16 bytes in the order the text reads (go-sev-guest's cert table encoding). */
function guidBytes(guid: string): Uint8Array {
  return new Uint8Array(Buffer.from(guid.replace(/-/g, ''), 'hex'));
}

/**
 * The host's certificate table (SEV-SNP GHCB spec, extended guest request): entries of
 * {GUID (16), offset (u32), length (u32)} ending with an all-zero entry, then the certificates.
 */
export function encodeCertTable(entries: readonly CertTableEntry[]): Uint8Array {
  const headerSize = (entries.length + 1) * 24;
  const total = headerSize + entries.reduce((n, e) => n + e.data.length, 0);
  const out = Buffer.alloc(total);
  let offset = headerSize;
  entries.forEach((e, i) => {
    out.set(guidBytes(CERT_TABLE_GUID[e.certType]), i * 24);
    out.writeUInt32LE(offset, i * 24 + 16);
    out.writeUInt32LE(e.data.length, i * 24 + 20);
    out.set(e.data, offset);
    offset += e.data.length;
  });
  return new Uint8Array(out);
}

/** Reads a certificate table back (the simulator's own tests; a guest agent does this). */
export function decodeCertTable(table: Uint8Array): CertTableEntry[] {
  const b = Buffer.from(table.buffer, table.byteOffset, table.byteLength);
  const byGuid = new Map(Object.entries(CERT_TABLE_GUID).map(([k, g]) => [g.replace(/-/g, ''), k]));
  const out: CertTableEntry[] = [];
  for (let i = 0; (i + 1) * 24 <= b.length; i++) {
    const guid = b.subarray(i * 24, i * 24 + 16).toString('hex');
    if (/^0+$/.test(guid)) return out;
    const type = byGuid.get(guid);
    const off = b.readUInt32LE(i * 24 + 16);
    const len = b.readUInt32LE(i * 24 + 20);
    if (!type || off + len > b.length) throw new RangeError(`cert table entry ${i} is not readable`);
    out.push({ certType: type as CertTableType, data: new Uint8Array(b.subarray(off, off + len)) });
  }
  throw new RangeError('cert table has no terminating entry');
}

function tcbJson(bytes: Uint8Array, product: SnpProduct): Record<string, ExactJson> {
  const t = decodeTcb(bytes, product);
  return {
    fmc: product === 'Turin' ? (t.fmc ?? 0) : null,
    bootloader: t.bootloader,
    tee: t.tee,
    snp: t.snp,
    microcode: t.microcode,
  };
}

/**
 * A report's 0x4A0 bytes in virtee/sev's serde form (`AttestationReport`, sev 6: byte arrays as arrays of
 * numbers, TCBs as `{fmc, bootloader, tee, snp, microcode}`, policy/plat_info/key_info as integers,
 * `current`/`committed` as `{major, minor, build}`, CPUID fields null on v2, the mitigation vectors only on v5,
 * signature `{r, s}` of 72 little-endian bytes). u64 values are bigint so stringifyExact keeps them exact.
 */
export function reportToVirteeJson(raw: Uint8Array, product: SnpProduct): Record<string, ExactJson> {
  if (raw.length !== SNP_REPORT_SIZE) throw new RangeError(`report: expected ${SNP_REPORT_SIZE} bytes`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => dv.getBigUint64(o, true);
  const arr = (o: number, n: number) => Array.from(raw.subarray(o, o + n));
  const tcb = (o: number) => tcbJson(raw.subarray(o, o + 8), product);
  const version = u32(OFF.version);
  const v3 = version >= 3;
  const json: Record<string, ExactJson> = {
    version,
    guest_svn: u32(OFF.guestSvn),
    policy: u64(OFF.policy),
    family_id: arr(OFF.familyId, 16),
    image_id: arr(OFF.imageId, 16),
    vmpl: u32(OFF.vmpl),
    sig_algo: u32(OFF.signatureAlgo),
    current_tcb: tcb(OFF.currentTcb),
    plat_info: u64(OFF.platformInfo),
    key_info: u32(OFF.signerInfo),
    report_data: arr(OFF.reportData, 64),
    measurement: arr(OFF.measurement, 48),
    host_data: arr(OFF.hostData, 32),
    id_key_digest: arr(OFF.idKeyDigest, 48),
    author_key_digest: arr(OFF.authorKeyDigest, 48),
    report_id: arr(OFF.reportId, 32),
    report_id_ma: arr(OFF.reportIdMa, 32),
    reported_tcb: tcb(OFF.reportedTcb),
    cpuid_fam_id: v3 ? raw[OFF.cpuidFamily]! : null,
    cpuid_mod_id: v3 ? raw[OFF.cpuidModel]! : null,
    cpuid_step: v3 ? raw[OFF.cpuidStepping]! : null,
    chip_id: arr(OFF.chipId, 64),
    committed_tcb: tcb(OFF.committedTcb),
    current: { major: raw[OFF.currentMajor]!, minor: raw[OFF.currentMinor]!, build: raw[OFF.currentBuild]! },
    committed: {
      major: raw[OFF.committedMajor]!,
      minor: raw[OFF.committedMinor]!,
      build: raw[OFF.committedBuild]!,
    },
    launch_tcb: tcb(OFF.launchTcb),
  };
  if (version >= 5) {
    json.launch_mit_vector = u64(OFF.launchMitVector);
    json.current_mit_vector = u64(OFF.currentMitVector);
  }
  json.signature = { r: arr(OFF.signatureR, 72), s: arr(OFF.signatureS, 72) };
  return json;
}

/** SHA-384 of bytes (measurements in tests and the demo). */
export function sha384(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(data).digest());
}
