/**
 * Rebuilds the 0x4A0 bytes of an SNP attestation report from the JSON form guest-components sends
 * (docs/protocol.md §11, §15): serde's rendering of virtee/sev's `AttestationReport`. Byte arrays are JSON
 * number arrays; u64 fields (policy, plat_info, mitigation vectors) are numbers, or bigints when the body
 * went through parseJsonLossless and they exceed 2^53; each TCB is `{fmc, bootloader, tee, snp,
 * microcode}` whose byte layout depends on the product (app/snp/tcb.ts); `current` / `committed` are
 * `{major, minor, build}`; the signature is `{r, s}`, 72 little-endian bytes each.
 *
 * Members accepted: those of virtee/sev 6 (`key_info`, `cpuid_*`, `current`, `committed`,
 * `launch_mit_vector`, `current_mit_vector`) and those older virtee releases wrote (`_author_key_en`,
 * `_reserved_0`..`_reserved_4`, `current_build`.., a TCB's `_reserved`, the signature's `_reserved`).
 * Legacy members inside the signed area are copied as they are (the signature covers them); the
 * signature's `_reserved` (unsigned) must be zero. Anything else is refused by name: a member this code
 * does not place would otherwise be silently dropped from what the signature check sees.
 * Newer-version fields may be missing or null (written as zero); for older versions they must be
 * missing, null or zero. Rebuilt bytes are checked by parseReport/verifyReport like raw reports.
 */
import { OFF, SIG_COMPONENT_SIZE, SNP_REPORT_SIZE, productFromCpuid } from '../snp/report';
import type { SnpProduct } from '../snp/roots';
import { encodeTcb, type TcbParts } from '../snp/tcb';
import { KbsProtocolError } from './errors';

const SIGNATURE_RESERVED = 0x4a0 - 0x2a0 - 2 * SIG_COMPONENT_SIZE;

type Obj = Record<string, unknown>;

function bad(field: string, msg: string): never {
  throw new KbsProtocolError('AttestationError', `attestation_report.${field}: ${msg}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function absent(v: unknown): boolean {
  return v === undefined || v === null;
}

function uint(v: unknown, field: string, bits: 8 | 32 | 64): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isInteger(v)) {
    if (!Number.isSafeInteger(v))
      bad(field, 'integer above 2^53 lost its precision (parse the body losslessly)');
    n = BigInt(v);
  } else return bad(field, `expected an unsigned ${bits}-bit integer, got ${describe(v)}`);
  if (n < 0n || n >= 1n << BigInt(bits))
    bad(field, `${n} is out of range for an unsigned ${bits}-bit integer`);
  return n;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? 'a string' : typeof v === 'object' ? 'an object' : String(v);
}

function bytes(v: unknown, field: string, len: number): Uint8Array {
  if (!Array.isArray(v)) bad(field, `expected an array of ${len} bytes, got ${describe(v)}`);
  const arr = v as unknown[];
  if (arr.length !== len) bad(field, `expected ${len} bytes, got ${arr.length}`);
  const out = new Uint8Array(len);
  arr.forEach((b, i) => {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255)
      bad(`${field}[${i}]`, `expected a byte (0..255), got ${describe(b)}`);
    out[i] = b;
  });
  return out;
}

function onlyMembers(o: Obj, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) bad(field ? `${field}.${k}` : k, 'unknown member');
}

const TCB_MEMBERS = ['fmc', 'bootloader', 'tee', 'snp', 'microcode', '_reserved'] as const;

function tcb(v: unknown, field: string, product: SnpProduct): Uint8Array {
  if (!isObj(v)) bad(field, `expected a TCB object, got ${describe(v)}`);
  const o = v as Obj;
  onlyMembers(o, TCB_MEMBERS, field);
  const u8 = (k: string) => Number(uint(o[k], `${field}.${k}`, 8));
  const parts: TcbParts = {
    bootloader: u8('bootloader'),
    tee: u8('tee'),
    snp: u8('snp'),
    microcode: u8('microcode'),
  };
  if (o._reserved !== undefined) {
    // Older virtee: the legacy byte layout spelled out, reserved bytes included (copied as signed).
    if (!absent(o.fmc)) bad(`${field}.fmc`, 'cannot be combined with _reserved');
    const r = bytes(o._reserved, `${field}._reserved`, 4);
    return Uint8Array.from([parts.bootloader, parts.tee, ...r, parts.snp, parts.microcode]);
  }
  if (product === 'Turin') {
    if (absent(o.fmc)) bad(`${field}.fmc`, 'a Turin TCB carries fmc');
    parts.fmc = u8('fmc');
  } else if (!absent(o.fmc)) {
    bad(`${field}.fmc`, `must be null on ${product} (FMC exists on Turin only)`);
  }
  return encodeTcb(parts, product);
}

function version3(v: unknown, field: string): [number, number, number] {
  if (!isObj(v)) bad(field, `expected {major, minor, build}, got ${describe(v)}`);
  const o = v as Obj;
  onlyMembers(o, ['major', 'minor', 'build'], field);
  return [
    Number(uint(o.build, `${field}.build`, 8)),
    Number(uint(o.minor, `${field}.minor`, 8)),
    Number(uint(o.major, `${field}.major`, 8)),
  ];
}

const REPORT_MEMBERS = [
  'version',
  'guest_svn',
  'policy',
  'family_id',
  'image_id',
  'vmpl',
  'sig_algo',
  'current_tcb',
  'plat_info',
  'key_info',
  '_author_key_en',
  '_reserved_0',
  'report_data',
  'measurement',
  'host_data',
  'id_key_digest',
  'author_key_digest',
  'report_id',
  'report_id_ma',
  'reported_tcb',
  'cpuid_fam_id',
  'cpuid_mod_id',
  'cpuid_step',
  '_reserved_1',
  'chip_id',
  'committed_tcb',
  'current',
  'committed',
  'current_build',
  'current_minor',
  'current_major',
  '_reserved_2',
  'committed_build',
  'committed_minor',
  'committed_major',
  '_reserved_3',
  'launch_tcb',
  'launch_mit_vector',
  'current_mit_vector',
  '_reserved_4',
  'signature',
] as const;

/**
 * The product whose TCB layout the report uses: from the CPUID fields of a v3+ report, else the hint
 * (for v2 reports, from the VCEK). Without either, a report whose TCBs carry no `fmc` uses the Milan /
 * Genoa layout (the two are the same); one with `fmc` needs the hint.
 */
function pickProduct(o: Obj, version: number, hint: SnpProduct | undefined): SnpProduct {
  if (version >= 3 && !absent(o.cpuid_fam_id)) {
    const cpuid = {
      family: Number(uint(o.cpuid_fam_id, 'cpuid_fam_id', 8)),
      model: Number(uint(o.cpuid_mod_id ?? 0, 'cpuid_mod_id', 8)),
      stepping: Number(uint(o.cpuid_step ?? 0, 'cpuid_step', 8)),
    };
    let fromCpuid: SnpProduct | undefined;
    try {
      fromCpuid = productFromCpuid(cpuid);
    } catch (e) {
      bad('cpuid_fam_id', (e as Error).message.replace(/^SNP report: /, ''));
    }
    if (fromCpuid) {
      if (hint && hint !== fromCpuid)
        bad('cpuid_fam_id', `the report's CPU is ${fromCpuid} but the signing key is for ${hint}`);
      return fromCpuid;
    }
  }
  if (hint) return hint;
  const tcbs = ['current_tcb', 'reported_tcb', 'committed_tcb', 'launch_tcb'].map((k) => o[k]);
  if (tcbs.some((t) => isObj(t) && !absent(t.fmc)))
    bad('version', 'the product is unknown (no CPUID fields): give the signing key');
  return 'Milan';
}

/** The report bytes from virtee's JSON form; `product` is the hint from the VCEK/VLEK for v2 reports. */
export function reportBytesFromKbsJson(report: unknown, product?: SnpProduct): Uint8Array {
  if (!isObj(report))
    throw new KbsProtocolError(
      'AttestationError',
      `attestation_report: expected an object, got ${describe(report)}`,
    );
  const o = report;
  onlyMembers(o, REPORT_MEMBERS, '');
  const out = new Uint8Array(SNP_REPORT_SIZE);
  const dv = new DataView(out.buffer);
  const u32 = (off: number, k: string) => dv.setUint32(off, Number(uint(o[k], k, 32)), true);
  const u64 = (off: number, k: string) => dv.setBigUint64(off, uint(o[k], k, 64), true);
  const arr = (off: number, k: string, len: number) => out.set(bytes(o[k], k, len), off);
  const one = (a: string, b: string) => {
    if (o[a] !== undefined && o[b] !== undefined) bad(b, `cannot be combined with ${a}`);
  };

  const version = Number(uint(o.version, 'version', 32));
  if (version < 2) bad('version', `${version} is not an SNP report version this service reads (2 and later)`);
  const prod = pickProduct(o, version, product);

  u32(OFF.version, 'version');
  u32(OFF.guestSvn, 'guest_svn');
  u64(OFF.policy, 'policy');
  arr(OFF.familyId, 'family_id', 16);
  arr(OFF.imageId, 'image_id', 16);
  u32(OFF.vmpl, 'vmpl');
  u32(OFF.signatureAlgo, 'sig_algo');
  out.set(tcb(o.current_tcb, 'current_tcb', prod), OFF.currentTcb);
  u64(OFF.platformInfo, 'plat_info');
  one('key_info', '_author_key_en');
  u32(OFF.signerInfo, o.key_info !== undefined ? 'key_info' : '_author_key_en');
  if (o._reserved_0 !== undefined) u32(OFF.signerInfo + 4, '_reserved_0');
  arr(OFF.reportData, 'report_data', 64);
  arr(OFF.measurement, 'measurement', 48);
  arr(OFF.hostData, 'host_data', 32);
  arr(OFF.idKeyDigest, 'id_key_digest', 48);
  arr(OFF.authorKeyDigest, 'author_key_digest', 48);
  arr(OFF.reportId, 'report_id', 32);
  arr(OFF.reportIdMa, 'report_id_ma', 32);
  out.set(tcb(o.reported_tcb, 'reported_tcb', prod), OFF.reportedTcb);

  const cpuidKeys = [
    ['cpuid_fam_id', OFF.cpuidFamily],
    ['cpuid_mod_id', OFF.cpuidModel],
    ['cpuid_step', OFF.cpuidStepping],
  ] as const;
  if (o._reserved_1 !== undefined) {
    for (const [k] of cpuidKeys) one('_reserved_1', k);
    arr(OFF.cpuidFamily, '_reserved_1', 24);
  } else {
    for (const [k, off] of cpuidKeys) {
      if (absent(o[k])) continue;
      const v = Number(uint(o[k], k, 8));
      if (version < 3 && v !== 0) bad(k, `must be absent in a version ${version} report`);
      out[off] = v;
    }
  }
  arr(OFF.chipId, 'chip_id', 64);
  out.set(tcb(o.committed_tcb, 'committed_tcb', prod), OFF.committedTcb);

  const versions = [
    ['current', OFF.currentBuild, 'current_build', 'current_minor', 'current_major', '_reserved_2'],
    ['committed', OFF.committedBuild, 'committed_build', 'committed_minor', 'committed_major', '_reserved_3'],
  ] as const;
  for (const [name, off, kb, kmi, kma, kr] of versions) {
    if (o[name] !== undefined) {
      for (const k of [kb, kmi, kma]) one(name, k);
      out.set(version3(o[name], name), off);
    } else {
      out[off] = Number(uint(o[kb], kb, 8));
      out[off + 1] = Number(uint(o[kmi], kmi, 8));
      out[off + 2] = Number(uint(o[kma], kma, 8));
    }
    if (o[kr] !== undefined) out[off + 3] = Number(uint(o[kr], kr, 8));
  }
  out.set(tcb(o.launch_tcb, 'launch_tcb', prod), OFF.launchTcb);

  if (o._reserved_4 !== undefined) {
    one('_reserved_4', 'launch_mit_vector');
    one('_reserved_4', 'current_mit_vector');
    arr(OFF.launchMitVector, '_reserved_4', OFF.signatureR - OFF.launchMitVector);
  } else {
    for (const [k, off] of [
      ['launch_mit_vector', OFF.launchMitVector],
      ['current_mit_vector', OFF.currentMitVector],
    ] as const) {
      if (absent(o[k])) continue;
      const v = uint(o[k], k, 64);
      if (version < 5 && v !== 0n) bad(k, `must be absent in a version ${version} report`);
      dv.setBigUint64(off, v, true);
    }
  }

  const sig = o.signature;
  if (!isObj(sig)) bad('signature', `expected {r, s}, got ${describe(sig)}`);
  onlyMembers(sig as Obj, ['r', 's', '_reserved'], 'signature');
  out.set(bytes((sig as Obj).r, 'signature.r', SIG_COMPONENT_SIZE), OFF.signatureR);
  out.set(bytes((sig as Obj).s, 'signature.s', SIG_COMPONENT_SIZE), OFF.signatureS);
  if ((sig as Obj)._reserved !== undefined) {
    const r = bytes((sig as Obj)._reserved, 'signature._reserved', SIGNATURE_RESERVED);
    if (r.some((b) => b !== 0)) bad('signature._reserved', 'must be zero');
  }
  return out;
}
