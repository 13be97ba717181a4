/**
 * `serve --snp-roots FILE`: the ARK, ASK and ASVK of a lab or simulated SEV-SNP platform (PEM, any order),
 * trusted for their product in place of AMD's pinned roots (docs/protocol.md §12). The other products
 * keep AMD's roots. The set is checked as the pinned ones are: ARK self-signed, ARK -> ASK, ARK -> ASVK.
 */
import { readFileSync } from 'node:fs';
import { DomainError, messageOf } from '../../app/errors';
import { parseSnpCert } from '../../app/snp/chain';
import {
  makeRootSet,
  parseProduct,
  pinnedSnpRoots,
  SNP_PRODUCTS,
  SnpTrustStore,
  type SnpProduct,
  type SnpRootSet,
} from '../../app/snp/roots';

const PEM = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g;

/** One root set from a PEM file holding exactly an ARK-<product>, SEV-<product> and SEV-VLEK-<product>. */
export function snpRootSetFromPem(text: string, label: string): SnpRootSet {
  const ders = [...text.matchAll(PEM)].map(
    (m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')),
  );
  const found: { ark?: Uint8Array; ask?: Uint8Array; asvk?: Uint8Array } = {};
  let product: SnpProduct | undefined;
  for (const [i, der] of ders.entries()) {
    const cn = parseSnpCert(der, `${label} certificate ${i + 1}`).subjectCn ?? '';
    const m = /^(ARK|SEV-VLEK|SEV)-(Milan|Genoa|Turin)$/i.exec(cn);
    if (!m)
      throw new DomainError(
        'bad-arguments',
        `${label}: certificate ${i + 1} is '${cn}', not an ARK, ASK or ASVK`,
      );
    const p = parseProduct(m[2]!);
    if (product !== undefined && p !== product)
      throw new DomainError('bad-arguments', `${label}: certificates of ${product} and ${p} in one file`);
    product = p;
    const role = m[1]!.toUpperCase() === 'ARK' ? 'ark' : m[1]!.toUpperCase() === 'SEV' ? 'ask' : 'asvk';
    if (found[role])
      throw new DomainError('bad-arguments', `${label}: two ${role.toUpperCase()} certificates`);
    found[role] = der;
  }
  if (!product || !found.ark || !found.ask || !found.asvk)
    throw new DomainError(
      'bad-arguments',
      `${label}: needs the ARK, ASK and ASVK certificates of one product (PEM)`,
    );
  return makeRootSet(product, { ark: found.ark, ask: found.ask, asvk: found.asvk }, label);
}

/** AMD's pinned roots, with each file's product replaced by the set in that file. */
export function snpTrustWithRootFiles(
  files: readonly string[],
  log: (line: string) => void = () => {},
): SnpTrustStore {
  const extra = new Map<SnpProduct, SnpRootSet>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new DomainError('bad-arguments', `--snp-roots ${file}: cannot read it (${messageOf(e)})`);
    }
    let set: SnpRootSet;
    try {
      set = snpRootSetFromPem(text, `--snp-roots ${file}`);
    } catch (e) {
      throw new DomainError(
        'bad-arguments',
        messageOf(e).startsWith('--snp-roots') ? messageOf(e) : `--snp-roots ${file}: ${messageOf(e)}`,
      );
    }
    if (extra.has(set.product))
      throw new DomainError('bad-arguments', `--snp-roots: two files give ${set.product} roots`);
    extra.set(set.product, set);
    // Said at start-up: reports of this product are no longer checked against AMD's roots.
    log(`SEV-SNP ${set.product} reports are verified against the roots in ${file}, NOT AMD's pinned roots`);
  }
  return SnpTrustStore.of(SNP_PRODUCTS.map((p) => extra.get(p) ?? pinnedSnpRoots(p)));
}
