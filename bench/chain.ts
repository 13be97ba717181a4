// Chain verification cost: a full Rome / Naples chain cold, with a warm VerifiedLinkCache, and the
// per-primitive figures (ECDSA P-384 and RSA-PSS 4096 verifications through node:crypto).
import { readFileSync } from 'node:fs';
import { verifyChain, VerifiedLinkCache } from '../app/sev/chain';
import { parseSevCert, verifySevCertSignature } from '../app/sev/cert';
import { pinnedAnchor, TrustStore } from '../app/sev/roots';
import { concat } from '../app/sev/bytes';

const rd = (p: string) => new Uint8Array(readFileSync(`test/fixtures/platforms/${p}`));

function time(label: string, n: number, f: () => void): void {
  for (let i = 0; i < Math.min(20, n); i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  const ms = (performance.now() - t) / n;
  console.log(`${label.padEnd(44)} ${ms.toFixed(3)} ms/op  (${Math.round(1000 / ms)} op/s)`);
}

const trust = TrustStore.pinned();
for (const gen of ['naples', 'rome'] as const) {
  const input = {
    pdh: rd(`${gen}-real/pdh.cert`),
    certChain: concat(rd(`${gen}-real/pek.cert`), rd(`${gen}-real/oca.cert`), rd(`${gen}-real/cek.cert`)),
  };
  time(`verifyChain ${gen} (no cache)`, 200, () => verifyChain(input, trust));
  const cache = new VerifiedLinkCache();
  time(`verifyChain ${gen} (warm link cache)`, 2000, () => verifyChain(input, trust, { linkCache: cache }));
}
const pek = parseSevCert(rd('rome-real/pek.cert'));
const pdh = rd('rome-real/pdh.cert');
time('ECDSA P-384 PEK -> PDH', 500, () => verifySevCertSignature(pdh, pek));
const cek = rd('rome-real/cek.cert');
const ask = pinnedAnchor('rome').ask;
time('RSA-PSS-4096/SHA-384 ASK -> CEK', 2000, () => verifySevCertSignature(cek, ask));
