// SNP report verification throughput on one core (docs/protocol.md §11): full verifyReport with a warm
// SnpVerifyCache (the chain's RSA-PSS links and parsed certificates cached, so each report costs its parse,
// the extension/TCB/hwid checks and one ECDSA P-384 verification). Target: >= 1,000 reports/s.
import { readFileSync } from 'node:fs';
import { verify } from 'node:crypto';
import { verifyReport } from '../app/snp/verify';
import { SnpVerifyCache } from '../app/snp/chain';
import { SnpTrustStore } from '../app/snp/roots';
import { chipId, makeCrl, makeKey, makeReport, makeTestRoots } from '../test/helpers/snp-pki';

const rd = (p: string) => new Uint8Array(readFileSync(`test/fixtures/snp/reports/${p}`));

/**
 * Runs f n times; prints wall time and this process's CPU time per operation. On a shared machine the CPU
 * figure is the one-core throughput (wall time includes waiting for a core); both are printed.
 */
function time(label: string, n: number, f: () => void): number {
  for (let i = 0; i < Math.min(50, n); i++) f();
  const cpu0 = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  const wallMs = (performance.now() - t) / n;
  const c = process.cpuUsage(cpu0);
  const cpuMs = (c.user + c.system) / 1000 / n;
  const perSec = Math.round(1000 / cpuMs);
  console.log(
    `${label.padEnd(58)} cpu ${cpuMs.toFixed(3)} ms/op (${perSec}/s per core)  wall ${wallMs.toFixed(3)} ms/op`,
  );
  return perSec;
}

const report = rd('trustee-milan/test-report.bin');
const vcek = rd('trustee-milan/test-vcek.der');
const cache = new SnpVerifyCache();
const real = time('real Milan report, pinned roots, warm cache (no CRL)', 3000, () =>
  verifyReport(report, { vcek, cache, allowMissingCrl: true }),
);

// With a CRL check: a synthetic chain (test ARK-signed CRL), the same per-report work plus the CRL lookup.
const roots = makeTestRoots('Milan', 'bench');
const tcb = { bootloader: 4, tee: 1, snp: 22, microcode: 213 };
const key = makeKey(roots, 'vcek', { product: 'Milan', tcb, hwid: chipId(1) });
const synthetic = makeReport({ product: 'Milan', tcb, chipId: chipId(1) }, key.key);
const opts = {
  vcek: key.der,
  trust: SnpTrustStore.of([roots.set]),
  crl: makeCrl(roots, { revokedSerials: [1, 2, 3] }),
  now: new Date('2026-01-01T00:00:00Z'),
  cache: new SnpVerifyCache(),
};
const withCrl = time('synthetic Milan report + ARK-signed CRL, warm cache', 3000, () =>
  verifyReport(synthetic, opts),
);

const cold = () => verifyReport(report, { vcek, cache: new SnpVerifyCache(), allowMissingCrl: true });
time('real Milan report, cold cache (parse + 2 RSA-PSS links)', 300, cold);

const v = verifyReport(report, { vcek, cache, allowMissingCrl: true });
const sig = Buffer.concat([v.report.signatureR, v.report.signatureS]);
const ecdsa = time('ECDSA P-384 verify alone (node:crypto)', 3000, () =>
  verify('sha384', report.subarray(0, 0x2a0), { key: v.key.cert.publicKey, dsaEncoding: 'ieee-p1363' }, sig),
);

const figure = Math.min(real, withCrl);
console.log(`\nSNP report verifications per second (one core, cached chain): ${figure}`);
console.log(
  `  floor: one ECDSA P-384 verification through node:crypto (Node ${process.versions.node}, OpenSSL ${process.versions.openssl}) allows ${ecdsa}/s here`,
);
console.log(figure >= 1000 ? 'target >= 1,000/s: met' : 'target >= 1,000/s: NOT met on this machine');
