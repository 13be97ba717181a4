/**
 * The public reports in test/fixtures/snp (Trustee's Milan VCEK and VLEK reports, virtee/sev's Milan report;
 * real AMD firmware, AMD's pinned roots) against the service's decision.
 *
 * They cannot go through /kbs/v0/attest and be accepted: their report_data was fixed when they were taken,
 * and the service requires it to be the hash of this session's nonce and the guest's key. So:
 *  - the appraisal stage is tested directly (verifyReport with AMD's pinned roots, the clock pinned where a
 *    key expired, no CRL in the fixtures so revocation is allowed to be unchecked; then decideSnpGuest with
 *    the report's own report_data as the binding): accepted when a profile expects the report's
 *    measurement, refused naming the measurement when it does not;
 *  - through the real listener, a real report in virtee/sev's JSON form (with its VCEK as cert_chain) is
 *    rebuilt, verified against AMD's pinned roots and appraised, and refused for report_data alone.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideSnpGuest } from '../../app/decision/snp';
import { parseTeePubkey } from '../../app/kbs/jwk';
import { secretAccount, VmProfileSchema, type VmProfile } from '../../app/profile';
import { parseReport, reportBytesFromFile } from '../../app/snp/report';
import { verifyReport, type VerifyReportOptions } from '../../app/snp/verify';
import {
  DEFAULT_SNP_POLICY,
  reportToVirteeJson,
  sha384,
  SimulatedSnpFirmware,
} from '../../app/sim/snp-firmware';
import { SnpGuestClient } from '../../app/sim/snp-guest';
import { startService, type RunningService } from '../../server/serve/serve';
import { InMemorySecretStore } from '../../server/services/secret-store';
import { OWNER_TOKEN } from '../helpers/http';

const FIX = join(process.cwd(), 'test/fixtures/snp/reports');
const rd = (p: string) => new Uint8Array(fs.readFileSync(join(FIX, p)));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface RealReport {
  name: string;
  report: Uint8Array;
  key: Pick<VerifyReportOptions, 'vcek' | 'vlek'>;
  /** The VLEK fixture expired: its time is pinned to when it was valid. */
  now?: Date;
}

const REAL: RealReport[] = [
  {
    name: 'Trustee Milan (VCEK)',
    report: rd('trustee-milan/test-report.bin'),
    key: { vcek: rd('trustee-milan/test-vcek.der') },
  },
  {
    name: 'virtee/sev Milan (VCEK)',
    report: reportBytesFromFile(rd('virtee-sev-milan/report_milan.hex')),
    key: { vcek: rd('virtee-sev-milan/vcek_milan.der') },
  },
  {
    name: 'Trustee Milan (VLEK)',
    report: rd('trustee-vlek/test-vlek-report.bin'),
    key: { vlek: rd('trustee-vlek/test-vlek.der') },
    now: new Date('2025-06-01T00:00:00Z'),
  },
];

const teeKey = () => {
  const { x, y } = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  return parseTeePubkey({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x, y });
};

/** A profile made for a real report: its policy, VMPL and version accepted; the measurement as given. */
function profileFor(r: RealReport, id: string, measurement: string): VmProfile {
  const p = parseReport(r.report);
  return VmProfileSchema.parse({
    id,
    name: id,
    scheme: 'amd-sev-snp',
    policy: Number(p.policy.raw),
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: [measurement] },
    approval: 'auto',
    secrets: [{ guid: '0d7e2b9a-4c1f-4e8d-9a6b-3f2e1d0c9b8a', kind: 'raw', resource: 'real/key/disk' }],
    snp: { vmpl: p.vmpl, minimumReportVersion: Math.min(p.version, 3) },
    revision: 'r1',
  });
}

describe('the appraisal stage with real AMD reports (report_data bound to itself; see the file comment)', () => {
  it.each(REAL)('$name: accepted when a profile expects its measurement', (r) => {
    const v = verifyReport(r.report, { ...r.key, allowMissingCrl: true, ...(r.now ? { now: r.now } : {}) });
    expect(v.product).toBe('Milan');
    const d = decideSnpGuest(
      v,
      [
        {
          profile: profileFor(r, 'real', hex(v.report.measurement)),
          measurements: [hex(v.report.measurement)],
        },
      ],
      {
        reportData: v.report.reportData,
        teePubkey: teeKey(),
      },
    );
    expect(d.refusal).toBeUndefined();
    expect(d.guest?.profileId).toBe('real');
    expect(d.verdicts[0]).toMatchObject({ accepted: true, vouchedBy: 'measurement' });
  });

  it.each(REAL)('$name: refused, naming the measurement, when no profile expects it', (r) => {
    const v = verifyReport(r.report, { ...r.key, allowMissingCrl: true, ...(r.now ? { now: r.now } : {}) });
    const other = hex(sha384('another image'));
    const d = decideSnpGuest(v, [{ profile: profileFor(r, 'real', other), measurements: [other] }], {
      reportData: v.report.reportData,
      teePubkey: teeKey(),
    });
    expect(d.guest).toBeUndefined();
    expect(d.refusal?.reason).toBe('no-match');
    expect(d.verdicts[0]!.refusals.map((x) => x.field)).toEqual(['measurement']);
  });

  it('a real report with one bit flipped does not verify (so never reaches the appraisal)', () => {
    const r = REAL[0]!;
    const bad = Uint8Array.from(r.report);
    bad[0x90]! ^= 1;
    expect(() => verifyReport(bad, { ...r.key, allowMissingCrl: true })).toThrow(/signature/);
  });
});

describe('a real report through the listener', () => {
  let svc: RunningService;
  let dataDir: string;
  let guestClient: SnpGuestClient;
  const real = REAL[0]!; // Trustee's Milan VCEK report: its VCEK is valid at the real clock

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(join(os.tmpdir(), 'kbs-real-'));
    // AMD's pinned roots (the default trust); no key server: the VCEK comes in the evidence's cert_chain.
    svc = await startService({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      secretStore: new InMemorySecretStore(),
      ownerToken: OWNER_TOKEN,
      rateLimit: false,
      audit: { aggregateWindowMs: 0 },
      kdsUrl: 'http://127.0.0.1:9',
    });
    // The fixtures hold no AMD CRL: the owner allows a missing one here (the refusal without it is tested in kbs-http).
    svc.settings.update({ snpAllowMissingCrl: true });
    const p = parseReport(real.report);
    svc.profiles.put(profileFor(real, 'real', hex(p.measurement)));
    await svc.secretStore.set(
      secretAccount('real', '0d7e2b9a-4c1f-4e8d-9a6b-3f2e1d0c9b8a'),
      Buffer.from('x'),
    );
    // The guest's own report is replaced by the real one in the evidence it sends.
    const fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
    guestClient = new SnpGuestClient({
      baseUrl: svc.url,
      guest: fw.launch({ measurement: p.measurement, policy: DEFAULT_SNP_POLICY }),
      handshakeAttempts: 1,
      hooks: {
        evidence: () => ({
          attestation_report: reportToVirteeJson(real.report, 'Milan'),
          cert_chain: [{ cert_type: 'VCEK', data: Array.from(real.key.vcek!) }],
        }),
      },
    });
  });

  afterAll(async () => {
    guestClient?.close();
    await svc?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("verifies against AMD's pinned roots and is refused for report_data only", async () => {
    const before = svc.audit.list().at(-1)?.seq ?? 0;
    await expect(guestClient.handshake()).rejects.toMatchObject({ status: 401, kind: 'AttestationError' });
    let refusal;
    for (let i = 0; i < 100 && !refusal; i++) {
      refusal = svc.audit
        .list()
        .find((e) => e.seq > before && e.type === 'snp-attest' && e.result === 'refused');
      if (!refusal) await new Promise((r) => setTimeout(r, 20));
    }
    expect(refusal?.reason).toBe('not-accepted');
    expect(refusal?.anchor).toBe('amd-ark:milan');
    const profiles = refusal?.details?.profiles as { refusals: { rule: string }[] }[];
    expect(profiles[0]!.refusals.map((x) => x.rule)).toEqual(['report_data']);
    expect(svc.audit.list().filter((e) => e.type === 'secret-release')).toEqual([]);
  });
});
