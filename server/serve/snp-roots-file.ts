/**
 * `serve --snp-roots FILE`: the ARK, ASK and ASVK of a lab or simulated SEV-SNP platform and its
 * ARK-signed CRL (PEM, any order), trusted as an extra root set beside AMD's pinned roots
 * (app/snp/roots.ts ExtraSnpRoots; docs/protocol.md §12.2). The set is checked as the pinned ones are (ARK
 * self-signed, ARK -> ASK, ARK -> ASVK), and audit events and approvals name it by its label, never as AMD.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { DomainError, messageOf } from '../../app/errors';
import { parseSnpCert } from '../../app/snp/chain';
import { makeRootSet, parseProduct, type ExtraSnpRoots, type SnpProduct } from '../../app/snp/roots';

const PEM_BLOCK = /-----BEGIN (CERTIFICATE|X509 CRL)-----([A-Za-z0-9+/=\s]+)-----END \1-----/g;

/** One extra root set from PEM text: exactly an ARK-<product>, SEV-<product>, SEV-VLEK-<product> and a CRL. */
export function extraSnpRootsFromPem(text: string, label: string): ExtraSnpRoots {
  const found: { ark?: Uint8Array; ask?: Uint8Array; asvk?: Uint8Array; crl?: Uint8Array } = {};
  let product: SnpProduct | undefined;
  let n = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    const der = new Uint8Array(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
    if (m[1] === 'X509 CRL') {
      if (found.crl) throw new DomainError('bad-arguments', `${label}: two CRLs`);
      found.crl = der;
      continue;
    }
    n++;
    const cn = parseSnpCert(der, `${label} certificate ${n}`).subjectCn ?? '';
    const c = /^(ARK|SEV-VLEK|SEV)-(Milan|Genoa|Turin)$/i.exec(cn);
    if (!c)
      throw new DomainError(
        'bad-arguments',
        `${label}: certificate ${n} is '${cn}', not an ARK, ASK or ASVK`,
      );
    const p = parseProduct(c[2]!);
    if (product !== undefined && p !== product)
      throw new DomainError('bad-arguments', `${label}: certificates of ${product} and ${p} in one file`);
    product = p;
    const kind = c[1]!.toUpperCase();
    const role = kind === 'ARK' ? 'ark' : kind === 'SEV' ? 'ask' : 'asvk';
    if (found[role])
      throw new DomainError('bad-arguments', `${label}: two ${role.toUpperCase()} certificates`);
    found[role] = der;
  }
  if (!product || !found.ark || !found.ask || !found.asvk || !found.crl)
    throw new DomainError(
      'bad-arguments',
      `${label}: needs the ARK, ASK and ASVK certificates of one product and the ARK's CRL (PEM)`,
    );
  const set = makeRootSet(product, { ark: found.ark, ask: found.ask, asvk: found.asvk }, label);
  return { set, label, crl: found.crl };
}

/** Reads one `--snp-roots` file; its label names the file and says it is not AMD's. */
export function readExtraSnpRoots(file: string): ExtraSnpRoots {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DomainError('bad-arguments', `--snp-roots ${file}: cannot read it (${messageOf(e)})`);
  }
  try {
    const extra = extraSnpRootsFromPem(text, `--snp-roots ${file}`);
    return { ...extra, label: `${basename(file)} (--snp-roots, not AMD)` };
  } catch (e) {
    const m = messageOf(e);
    throw new DomainError('bad-arguments', m.startsWith('--snp-roots') ? m : `--snp-roots ${file}: ${m}`);
  }
}
