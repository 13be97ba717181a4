/**
 * AMD's pinned SNP roots (docs/protocol.md §12): per product the ARK, the ASK (signs VCEKs) and the ASVK
 * (signs VLEKs), embedded from assets/amd-roots/snp by scripts/gen-snp-roots.mjs. Trust is pinned by the
 * ARK: an intermediate from elsewhere (the key server, the host) is accepted only if the pinned ARK signed it.
 */
import { SNP_ROOTS_BASE64 } from './roots.generated';
import { parseSnpCert, verifySignedBy, type SnpCert } from './chain';
import { SnpError } from './errors';

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin';
export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin'];

/** 'milan', 'Milan', 'MILAN' -> 'Milan'. */
export function parseProduct(s: string): SnpProduct {
  const p = SNP_PRODUCTS.find((x) => x.toLowerCase() === s.trim().toLowerCase());
  if (!p) throw new SnpError('unknown-product', `unknown SNP product '${s}' (Milan, Genoa or Turin)`);
  return p;
}

export interface SnpRootSet {
  product: SnpProduct;
  ark: SnpCert;
  /** Signs VCEKs. */
  ask: SnpCert;
  /** Signs VLEKs. */
  asvk: SnpCert;
}

/** Parses and checks a root set: ARK self-signed, ARK -> ASK, ARK -> ASVK. */
export function makeRootSet(
  product: SnpProduct,
  der: { ark: Uint8Array; ask: Uint8Array; asvk: Uint8Array },
  label: string,
): SnpRootSet {
  const ark = parseSnpCert(der.ark, `${label} ${product} ARK`);
  const ask = parseSnpCert(der.ask, `${label} ${product} ASK`);
  const asvk = parseSnpCert(der.asvk, `${label} ${product} ASVK`);
  verifySignedBy(ark, ark, `${label} ${product} ARK (self-signed)`);
  verifySignedBy(ask, ark, `${label} ${product} ARK -> ASK`);
  verifySignedBy(asvk, ark, `${label} ${product} ARK -> ASVK`);
  return { product, ark, ask, asvk };
}

/** The AMD names the pinned certificates must carry. */
const EXPECTED_CN = (p: SnpProduct) => ({ ark: `ARK-${p}`, ask: `SEV-${p}`, asvk: `SEV-VLEK-${p}` });

const pinned = new Map<SnpProduct, SnpRootSet>();

/** The pinned AMD roots of a product, parsed and checked on first use. */
export function pinnedSnpRoots(product: SnpProduct): SnpRootSet {
  let r = pinned.get(product);
  if (!r) {
    const b64 = SNP_ROOTS_BASE64[product.toLowerCase() as 'milan' | 'genoa' | 'turin'];
    const d = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
    r = makeRootSet(product, { ark: d(b64.ark), ask: d(b64.ask), asvk: d(b64.asvk) }, 'pinned');
    const cn = EXPECTED_CN(product);
    if (r.ark.subjectCn !== cn.ark || r.ask.subjectCn !== cn.ask || r.asvk.subjectCn !== cn.asvk) {
      throw new SnpError('root-not-pinned', `pinned ${product} roots: unexpected certificate names`);
    }
    pinned.set(product, r);
  }
  return r;
}

/** A root set trusted beside AMD's (a lab, the demo's simulated platform), with its label and CRL. */
export interface ExtraSnpRoots {
  set: SnpRootSet;
  /** How audit events name it (e.g. 'demo: simulated SNP platform (not AMD)'); never an AMD name. */
  label: string;
  /** Its own ARK-signed CRL: the key server's CRL is AMD's and cannot cover it. */
  crl: Uint8Array;
}

/** The root sets a report may chain to, by product. */
export class SnpTrustStore {
  private readonly extras: ExtraSnpRoots[] = [];

  private constructor(private readonly sets: ReadonlyMap<SnpProduct, SnpRootSet>) {}

  /** AMD's pinned roots for the given products (all three by default). */
  static pinned(products: readonly SnpProduct[] = SNP_PRODUCTS): SnpTrustStore {
    return new SnpTrustStore(new Map(products.map((p) => [p, pinnedSnpRoots(p)])));
  }

  /** Other roots (a lab, tests): each set is checked as the pinned ones are. */
  static of(sets: readonly SnpRootSet[]): SnpTrustStore {
    return new SnpTrustStore(new Map(sets.map((s) => [s.product, s])));
  }

  roots(product: SnpProduct): SnpRootSet {
    const r = this.sets.get(product);
    if (!r) throw new SnpError('root-not-pinned', `no pinned root for ${product}`);
    return r;
  }

  /**
   * Trusts another root set beside the store's own (which keep precedence): a report whose key its
   * intermediate signed verifies against it, with its own CRL. The set must be checked (makeRootSet).
   */
  addExtra(extra: ExtraSnpRoots): void {
    if (this.extras.some((e) => e.set.ark.id === extra.set.ark.id)) return;
    this.extras.push(extra);
  }

  /** The extra root sets of a product, in the order they were added. */
  extraRoots(product: SnpProduct): readonly ExtraSnpRoots[] {
    return this.extras.filter((e) => e.set.product === product);
  }

  /** The extra root set whose intermediate issued and signed `key` (a VCEK or VLEK), if any. */
  extraIssuerOf(product: SnpProduct, key: SnpCert, signer: 'vcek' | 'vlek'): ExtraSnpRoots | undefined {
    for (const e of this.extraRoots(product)) {
      const inter = signer === 'vcek' ? e.set.ask : e.set.asvk;
      if (Buffer.compare(key.issuerDer, inter.subjectDer) !== 0) continue;
      try {
        verifySignedBy(key, inter, `${e.label} -> ${signer.toUpperCase()}`);
        return e;
      } catch {
        // Same names, another key: not this set.
      }
    }
    return undefined;
  }

  /** The label of an extra root set by its ARK, or undefined for the store's own roots. */
  extraLabel(ark: { id: string }): string | undefined {
    return this.extras.find((e) => e.set.ark.id === ark.id)?.label;
  }
}
