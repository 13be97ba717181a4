/**
 * SEV platform chain validation (docs/protocol.md §3):
 * ARK -> ASK -> CEK -> PEK -> PDH, OCA -> PEK, OCA self-signed, anchored to a TrustStore.
 * The ARK self-signature and ARK -> ASK are checked when an anchor enters the TrustStore.
 */
import { createHash } from 'node:crypto';
import {
  Algo,
  cachedEccPublicKeyObject,
  isEmptySlot,
  parseSevCert,
  SEV_CERT_BODY_SIZE,
  SEV_CERT_SIZE,
  SIG_SLOT_SIZE,
  Usage,
  usageName,
  sevCertSignatureProblem,
  type SevCertificate,
  type SevCertSigner,
} from './cert';
import { bytesEqual } from './bytes';
import { SevError } from './errors';
import {
  anchorName,
  type Generation,
  type TrustAnchor,
  type TrustAnchorLabel,
  type TrustStore,
} from './roots';

/** libvirt's / QEMU's `cert-chain`: PEK || OCA || CEK. */
export const CERT_CHAIN_SIZE = 3 * SEV_CERT_SIZE;

export interface ChainInput {
  /** The platform's PDH cert (2084 bytes). */
  pdh: Uint8Array;
  /** PEK || OCA || CEK (6252 bytes), as PDH_CERT_EXPORT / libvirt `cert-chain` return it. */
  certChain: Uint8Array;
  /** An ASK-signed CEK (from AMD KDS or the host), needed when the chain's CEK is unsigned. */
  cek?: Uint8Array;
}

export interface ChainResult {
  anchor: TrustAnchorLabel;
  /** The AMD generation when anchored to a pinned root; undefined for an 'extra' anchor. */
  generation: Generation | undefined;
  pdh: SevCertificate;
  pek: SevCertificate;
  oca: SevCertificate;
  /** The ASK-signed CEK that anchored the chain. */
  cek: SevCertificate;
  /** The firmware API version stamped in the PDH. */
  apiMajor: number;
  apiMinor: number;
  cekSource: 'chain' | 'supplied';
}

/** What the platform's own links say, before any AMD anchoring. */
export interface PlatformLinks {
  pdh: SevCertificate;
  pek: SevCertificate;
  oca: SevCertificate;
  /** The CEK as it sits in the chain (possibly unsigned). */
  chainCek: SevCertificate;
  /** True when the chain's CEK carries no signature at all (current firmware). */
  chainCekUnsigned: boolean;
  /** OCA self-signature, OCA -> PEK, CEK -> PEK and PEK -> PDH all verified. */
  verified: true;
}

/**
 * Remembers links that verified, keyed by SHA-256 of (signer key, signed cert bytes), so a
 * service that sees the same platform again (or a test that changes one certificate at a time)
 * does not redo the ECDSA work. Only successes are cached. Bounded, oldest entries dropped first.
 */
export class VerifiedLinkCache {
  private readonly seen = new Map<string, true>();
  constructor(private readonly maxEntries = 4096) {}

  key(signerBytes: Uint8Array, certBytes: Uint8Array): string {
    const h = createHash('sha256');
    h.update(Uint8Array.of(signerBytes.length & 0xff, (signerBytes.length >> 8) & 0xff));
    h.update(signerBytes);
    h.update(certBytes);
    return h.digest('hex');
  }

  has(k: string): boolean {
    return this.seen.has(k);
  }

  add(k: string): void {
    if (this.seen.size >= this.maxEntries) {
      const first = this.seen.keys().next();
      if (!first.done) this.seen.delete(first.value);
    }
    this.seen.set(k, true);
  }

  get size(): number {
    return this.seen.size;
  }
}

export interface VerifyOptions {
  linkCache?: VerifiedLinkCache;
}

/** Splits libvirt's 6252-byte cert-chain into its PEK, OCA and CEK bytes. */
export function splitCertChain(bytes: Uint8Array): { pek: Uint8Array; oca: Uint8Array; cek: Uint8Array } {
  if (bytes.length !== CERT_CHAIN_SIZE) {
    throw new SevError(
      'bad-length',
      `cert-chain: expected ${CERT_CHAIN_SIZE} bytes (PEK || OCA || CEK), got ${bytes.length}`,
    );
  }
  return {
    pek: bytes.slice(0, SEV_CERT_SIZE),
    oca: bytes.slice(SEV_CERT_SIZE, 2 * SEV_CERT_SIZE),
    cek: bytes.slice(2 * SEV_CERT_SIZE),
  };
}

function parseAs(bytes: Uint8Array, what: string, usage: number, algos: number[]): SevCertificate {
  const c = parseSevCert(bytes, what);
  if (c.usage !== usage) {
    throw new SevError('bad-usage', `${what}: expected usage ${usageName(usage)}, got ${usageName(c.usage)}`);
  }
  if (!algos.includes(c.algo)) {
    throw new SevError('bad-algorithm', `${what}: unexpected key algorithm 0x${c.algo.toString(16)}`);
  }
  // An empty slot must be entirely zero (all real certs are), so no byte changes unnoticed.
  c.sigs.forEach((s, i) => {
    if (isEmptySlot(s) && s.sig.some((b) => b !== 0)) {
      throw new SevError('bad-signature', `${what}: empty signature slot ${i + 1} holds non-zero bytes`);
    }
  });
  // Validates the point now, so a bad key is reported as such and not as a bad signature.
  cachedEccPublicKeyObject(c);
  return c;
}

/** End of the ECC public key in an SEV cert: 0x14 + 2 * 72. */
const ECC_KEY_END = 0xa4;
const SIGNING = [Algo.ECDSA_SHA256, Algo.ECDSA_SHA384];
const DH = [Algo.ECDH_SHA256, Algo.ECDH_SHA384];

/** True when the link verifies (or is in the cache); the cache key covers the signer's key only. */
function linkHolds(
  cache: VerifiedLinkCache | undefined,
  certBytes: Uint8Array,
  signer: SevCertSigner,
  signerBytes: Uint8Array,
): { code: 'bad-signature'; message: string } | null {
  // Only the signer's key decides whether it signed: usage, algo, curve, Qx, Qy = bytes [0x08, 0xA4).
  const id = signerBytes.length === SEV_CERT_SIZE ? signerBytes.subarray(0x08, ECC_KEY_END) : signerBytes;
  const k = cache?.key(id, certBytes);
  if (k !== undefined && cache!.has(k)) return null;
  const problem = sevCertSignatureProblem(certBytes, signer);
  if (!problem && k !== undefined) cache!.add(k);
  return problem;
}

function link(
  cache: VerifiedLinkCache | undefined,
  certBytes: Uint8Array,
  signer: SevCertSigner,
  signerBytes: Uint8Array,
  what: string,
): void {
  const problem = linkHolds(cache, certBytes, signer, signerBytes);
  if (problem) throw new SevError(problem.code, `${what}: ${problem.message}`);
}

/**
 * Verifies the platform's own links: OCA self-signature, OCA -> PEK, CEK -> PEK, PEK -> PDH (the CEK
 * here is the chain's, signed or not). Does not anchor anything to AMD.
 */
export function verifyPlatformLinks(
  input: Pick<ChainInput, 'pdh' | 'certChain'>,
  opts: VerifyOptions = {},
): PlatformLinks {
  const parts = splitCertChain(input.certChain);
  const pdh = parseAs(input.pdh, 'PDH', Usage.PDH, DH);
  const pek = parseAs(parts.pek, 'PEK (cert-chain)', Usage.PEK, SIGNING);
  const oca = parseAs(parts.oca, 'OCA (cert-chain)', Usage.OCA, SIGNING);
  const cek = parseAs(parts.cek, 'CEK (cert-chain)', Usage.CEK, SIGNING);
  const c = opts.linkCache;
  link(c, parts.oca, oca, parts.oca, 'OCA self-signature');
  link(c, parts.pek, oca, parts.oca, 'OCA -> PEK');
  link(c, parts.pek, cek, parts.cek, 'CEK -> PEK');
  link(c, input.pdh, pek, parts.pek, 'PEK -> PDH');
  return {
    pdh,
    pek,
    oca,
    chainCek: cek,
    chainCekUnsigned: isEmptySlot(cek.sigs[0]) && isEmptySlot(cek.sigs[1]),
    verified: true,
  };
}

/** True when two CEKs hold the same key: usage, algorithm and the whole public key field agree. */
function sameCekKey(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a.subarray(0x08, SEV_CERT_BODY_SIZE), b.subarray(0x08, SEV_CERT_BODY_SIZE));
}

/**
 * True when two CEK certificates (2084 bytes each, signed or not) hold the same public key: e.g. the
 * cert-chain's CEK and the CEK AMD's key server gives for a chip id, which proves the chain is that chip's.
 */
export function cekKeysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === SEV_CERT_SIZE && b.length === SEV_CERT_SIZE && sameCekKey(a, b);
}

export const CEK_UNSIGNED_MESSAGE =
  'the CEK in the cert-chain is unsigned (both signature slots empty, as current firmware exports it); ' +
  'PEK -> PDH and OCA -> PEK verified, but anchoring to AMD needs the ASK-signed CEK: ' +
  "download it from AMD's key server with the chip id (cpu0-id) or supply it";

/**
 * Verifies the whole chain and anchors it: platform links (see verifyPlatformLinks), then the
 * ASK-signed CEK (the chain's own if signed, else the supplied one, which must hold the same key)
 * under each trusted ASK in turn. Throws SevError naming the failing link; 'cek-unsigned' when no
 * signed CEK is available, 'chain-not-trusted' when the CEK verifies under no trusted ASK.
 */
export function verifyChain(input: ChainInput, trust: TrustStore, opts: VerifyOptions = {}): ChainResult {
  const platform = verifyPlatformLinks(input, opts);
  const chainCekBytes = input.certChain.subarray(2 * SEV_CERT_SIZE);
  let cekBytes: Uint8Array;
  let cek: SevCertificate;
  let cekSource: 'chain' | 'supplied';
  if (input.cek !== undefined) {
    cek = parseAs(input.cek, 'supplied CEK', Usage.CEK, SIGNING);
    if (!sameCekKey(input.cek, chainCekBytes)) {
      throw new SevError(
        'bad-key',
        "supplied CEK: its public key differs from the cert-chain's CEK (it belongs to another chip or the platform was tampered with)",
      );
    }
    if (isEmptySlot(cek.sigs[0]) && isEmptySlot(cek.sigs[1])) {
      throw new SevError('cek-unsigned', 'supplied CEK: it is unsigned too; the ASK-signed CEK is needed');
    }
    cekBytes = input.cek;
    cekSource = 'supplied';
  } else {
    if (platform.chainCekUnsigned) throw new SevError('cek-unsigned', CEK_UNSIGNED_MESSAGE);
    cekBytes = chainCekBytes;
    cek = platform.chainCek;
    cekSource = 'chain';
  }
  const what = cekSource === 'chain' ? 'CEK (cert-chain)' : 'supplied CEK';
  const askSlot = cek.sigs.find((s) => s.usage === Usage.ASK);
  if (!askSlot) {
    throw new SevError('chain-not-trusted', `ASK -> ${what}: the CEK carries no ASK signature`);
  }
  const anchors = trust.anchors();
  let anchor: TrustAnchor | undefined;
  for (const a of anchors) {
    if (!linkHolds(opts.linkCache, cekBytes, a.ask, a.askBytes)) {
      anchor = a;
      break;
    }
  }
  if (!anchor) {
    const names = anchors.map((a) => anchorName(a.label)).join(', ') || 'none';
    throw new SevError(
      'chain-not-trusted',
      `ASK -> ${what}: the CEK's ASK signature (algorithm 0x${askSlot.algo.toString(16)}, ` +
        `${SIG_SLOT_SIZE}-byte slot) verifies under no trusted ASK (trusted: ${names})`,
    );
  }
  return {
    anchor: anchor.label,
    generation: anchor.label.kind === 'amd' ? anchor.label.generation : undefined,
    pdh: platform.pdh,
    pek: platform.pek,
    oca: platform.oca,
    cek,
    apiMajor: platform.pdh.apiMajor,
    apiMinor: platform.pdh.apiMinor,
    cekSource,
  };
}
