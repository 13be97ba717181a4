/**
 * SEV-SNP bundles over the owner REST routes of two real services: A (with the OVMF) exports, B (no
 * firmware) imports an equal SNP profile. Refusals through the same HTTP routes: the SEV-only formats
 * (409 bundle-export-unsupported), a tampered bundle (422), an SNP bundle under an SEV profile's id and
 * the reverse (409 bundle-scheme-mismatch), SNP secrets sent with the import (400).
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BundleDocument } from '../../app/bundle/bundle';
import type { VmProfile } from '../../app/profile';
import { ExpectedSnpMeasurements } from '../../server/services/expected-snp-measurements';
import { FIRMWARE_PATH, request, startHarness, type Harness } from '../helpers/listener-harness';

let a: Harness;
let b: Harness;
let snpProfile: VmProfile;
let snpDoc: BundleDocument;
let sevDoc: BundleDocument;

beforeAll(async () => {
  a = await startHarness();
  b = await startHarness();
  const fw = await a.svc.artifacts.importFile(FIRMWARE_PATH);
  snpProfile = a.svc.profiles.put({
    id: 'snp-web',
    name: 'SNP web',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [2, 4],
    cpuSignatures: [
      { family: 25, model: 1, stepping: 1 },
      { family: 25, model: 17, stepping: 0 },
    ],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    kernelHash: 'a'.repeat(64),
    initrdHash: 'b'.repeat(64),
    cmdline: 'console=ttyS0 root=/dev/mapper/root',
    approval: 'manual',
    secrets: [],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: ['cd'.repeat(48)],
      trustedAuthorKeyDigests: [],
      minimumTcb: { snp: 22, microcode: 213 },
      hostData: '5a'.repeat(32),
      vmpl: 0,
      minimumReportVersion: 3,
    },
  });
  a.svc.profiles.put({
    id: 'sev-db',
    name: 'SEV db',
    scheme: 'amd-sev',
    policy: 1,
    cpuCounts: [1],
    cpuSignatures: [],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    approval: 'manual',
    secrets: [],
  });
  const key = await a.svc.bundles.generateSigningKey();
  b.svc.trustedKeys.add({ fingerprint: key.fingerprint, publicKey: key.publicKey, label: 'owner laptop' });
  const snp = await request(a.svc.url, 'GET', '/v1/vm/snp-web/bundle');
  expect(snp.status, snp.text).toBe(200);
  snpDoc = snp.json as BundleDocument;
  const sev = await request(a.svc.url, 'GET', '/v1/vm/sev-db/bundle');
  expect(sev.status, sev.text).toBe(200);
  sevDoc = sev.json as BundleDocument;
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
});

describe('SEV-SNP bundles over REST', () => {
  it('A exports 4 measurements (2 vCPU counts x 2 signatures); B imports an equal profile', async () => {
    expect(snpDoc.body.rows.map((r) => `${r.cpus}/${r['cpu-signature']!.name}`)).toEqual([
      '2/EPYC-Milan',
      '2/EPYC-Genoa',
      '4/EPYC-Milan',
      '4/EPYC-Genoa',
    ]);
    const posted = await request(b.svc.url, 'POST', '/v1/bundles', { body: { bundle: snpDoc } });
    expect(posted.status, posted.text).toBe(200);
    expect(posted.json.rows).toBe(4);
    const imported = b.svc.profiles.get('snp-web')!;
    expect(
      fs.existsSync(
        b.svc.artifacts.path(snpProfile.firmware.kind === 'artifact' ? snpProfile.firmware.sha256 : ''),
      ),
    ).toBe(false);
    const rules = (p: VmProfile) => ({
      scheme: p.scheme,
      policy: p.policy,
      name: p.name,
      cpuCounts: p.cpuCounts,
      cpuSignatures: p.cpuSignatures,
      kernelHash: p.kernelHash,
      initrdHash: p.initrdHash,
      cmdline: p.cmdline,
      approval: p.approval,
      snp: p.snp,
    });
    expect(rules(imported)).toEqual(rules(snpProfile));
    expect(imported.firmware).toEqual({
      kind: 'digests',
      launchDigests: snpDoc.body.rows.map((r) => r.digest),
    });
    // Exported again from B's copy's rules, nothing is lost: the SNP section is the same.
    expect(b.svc.profiles.get('snp-web')!.snp).toEqual(snpProfile.snp);
  });

  it("the bundle's measurements are exactly those the KBS admits for the profile (ExpectedSnpMeasurements)", async () => {
    const kbs = new ExpectedSnpMeasurements({ firmwarePath: (sha) => a.svc.artifacts.path(sha) });
    expect(await kbs.forProfile(snpProfile)).toEqual(snpDoc.body.rows.map((r) => r.digest));
    expect(await kbs.forProfile(b.svc.profiles.get('snp-web')!)).toEqual(
      snpDoc.body.rows.map((r) => r.digest),
    );
  });

  it('vqsv, simple-kbs and simple-kbs-sql answer 409 bundle-export-unsupported; csv works', async () => {
    for (const format of ['vqsv', 'simple-kbs', 'simple-kbs-sql']) {
      const r = await request(a.svc.url, 'GET', `/v1/vm/snp-web/bundle?format=${format}`);
      expect(r.status, format).toBe(409);
      expect(r.json.error).toBe('bundle-export-unsupported');
      expect(r.json.message).toContain('SEV-SNP');
    }
    const csv = await request(a.svc.url, 'GET', '/v1/vm/snp-web/bundle?format=csv');
    expect(csv.status).toBe(200);
    expect(csv.text.split('\r\n')[4]).toContain(snpDoc.body.rows[3]!.digest);
  });

  it('a tampered SNP bundle is refused with 422 and nothing is stored', async () => {
    const edits: Array<(d: BundleDocument) => void> = [
      (d) => (d.body.rows[0]!.digest = d.body.rows[1]!.digest),
      (d) => (d.body.snp!['host-data'] = '00'.repeat(32)),
      (d) => (d.body.snp!['trusted-id-key-digests'] = ['ee'.repeat(48)]),
      (d) => (d.body.policy = 0x70000),
    ];
    for (const [i, edit] of edits.entries()) {
      const d = structuredClone(snpDoc);
      edit(d);
      const r = await request(b.svc.url, 'POST', '/v1/bundles', { body: { bundle: d, 'vm-id': `t${i}` } });
      expect(r.status, `edit ${i}`).toBe(422);
      expect(r.json.error).toBe('bundle-signature-invalid');
      expect(b.svc.profiles.get(`t${i}`)).toBeUndefined();
    }
  });

  it('an SNP bundle under an SEV profile id, and an SEV bundle under an SNP id, answer 409', async () => {
    expect((await request(b.svc.url, 'POST', '/v1/bundles', { body: { bundle: sevDoc } })).status).toBe(200);
    const snpAsSev = await request(b.svc.url, 'POST', '/v1/bundles', {
      body: { bundle: snpDoc, 'vm-id': 'sev-db' },
    });
    expect(snpAsSev.status).toBe(409);
    expect(snpAsSev.json.error).toBe('bundle-scheme-mismatch');
    expect(snpAsSev.json.message).toContain('an SEV-SNP bundle cannot be imported as an SEV profile');
    const sevAsSnp = await request(b.svc.url, 'POST', '/v1/bundles', {
      body: { bundle: sevDoc, 'vm-id': 'snp-web' },
    });
    expect(sevAsSnp.status).toBe(409);
    expect(sevAsSnp.json.error).toBe('bundle-scheme-mismatch');
    expect(b.svc.profiles.get('sev-db')!.scheme).toBe('amd-sev');
    expect(b.svc.profiles.get('snp-web')!.scheme).toBe('amd-sev-snp');
  });

  it('secrets sent with an SNP import are refused (they need resource paths): 400, nothing stored', async () => {
    const r = await request(b.svc.url, 'POST', '/v1/bundles', {
      body: {
        bundle: snpDoc,
        'vm-id': 'snp-secret',
        secrets: { type: 'luks-passphrase', passphrase: 'never stored' },
      },
    });
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('bundle-invalid');
    expect(r.json.message).toContain('resource path');
    expect(b.svc.profiles.get('snp-secret')).toBeUndefined();
  });
});
