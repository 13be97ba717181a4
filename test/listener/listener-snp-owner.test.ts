/**
 * SEV-SNP VMs through the REST owner API over real HTTP: registration with SNP settings, an OVMF artifact or
 * 96-hex measurements and secrets with resource paths; what GET returns; the refusals in plain words
 * (debug policy, SHA-256 digests, a secret without or with a repeated resource path, SEV bits mixed in);
 * and an SNP attestation's approval body (kind, snp facts).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretAccount } from '../../app/profile';
import { request, startHarness, type Harness } from '../helpers/listener-harness';

const SNP_OVMF = new Uint8Array(
  fs.readFileSync(join(process.cwd(), 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin')),
);
const MILAN = { family: 25, model: 1, stepping: 1 };
const RAW_GUID = '0a0b0c0d-0000-4000-8000-000000000001';

let h: Harness;
let ovmf: string;
beforeAll(async () => {
  h = await startHarness();
  const up = await request(h.svc.url, 'PUT', '/v1/artifacts', {
    body: Buffer.from(SNP_OVMF),
    headers: { 'content-type': 'application/octet-stream' },
  });
  expect(up.status).toBe(200);
  ovmf = up.json.sha256;
});
afterAll(async () => h.close());

function snpBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'SNP web',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    'cpu-counts': [1, 2],
    'cpu-signature': MILAN,
    'firmware-artifact': ovmf,
    approval: 'manual',
    snp: {
      'vmm-type': 'qemu',
      'minimum-tcb': { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      'host-data': 'ab'.repeat(32),
      'minimum-report-version': 3,
    },
    secrets: [
      { type: 'luks-passphrase', passphrase: 'disk key', resource: 'default/luks/snp-web' },
      { guid: RAW_GUID, data: Buffer.from('api token').toString('base64'), resource: 'default/token/api' },
    ],
    ...extra,
  };
}

const put = (id: string, body: Record<string, unknown>) =>
  request(h.svc.url, 'PUT', `/v1/vm/${id}`, { body });

describe('PUT /v1/vm for an SEV-SNP VM', () => {
  it('stores the SNP settings and resource paths; GET returns them, never the values', async () => {
    const r = await put('snp-web', snpBody());
    expect(r.status, r.text).toBe(200);
    const vm = r.json.vm;
    expect(vm.scheme).toBe('amd-sev-snp');
    expect(vm.snp).toEqual({
      'vmm-type': 'qemu',
      'guest-features': 1,
      'trusted-id-key-digests': [],
      'trusted-author-key-digests': [],
      'minimum-tcb': { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      'host-data': 'ab'.repeat(32),
      vmpl: 0,
      'minimum-report-version': 3,
    });
    expect(vm.secrets.map((s: { resource: string }) => s.resource).sort()).toEqual([
      'default/luks/snp-web',
      'default/token/api',
    ]);
    const got = await request(h.svc.url, 'GET', '/v1/vm/snp-web');
    expect(got.json).toEqual(vm);
    expect(got.text).not.toContain('disk key');
    expect(got.text).not.toContain(Buffer.from('api token').toString('base64'));
    // The service's measurements for it are the matrix over 2 counts x 1 signature.
    const profile = h.svc.profiles.get('snp-web')!;
    expect(await h.svc.snpMeasurements.measurementsFor(profile)).toHaveLength(2);
    expect(Buffer.from((await h.svc.secretStore.get(secretAccount('snp-web', RAW_GUID)))!).toString()).toBe(
      'api token',
    );
  });

  it('accepts precomputed 96-hex measurements, and none at all when an ID key digest vouches', async () => {
    const m = 'C0'.repeat(48);
    const r = await put('snp-digests', snpBody({ 'firmware-artifact': undefined, 'launch-digests': [m] }));
    expect(r.status, r.text).toBe(200);
    expect(r.json.vm['launch-digests']).toEqual(['c0'.repeat(48)]);
    const idKey = await put(
      'snp-idkey',
      snpBody({
        'firmware-artifact': undefined,
        'launch-digests': [],
        snp: { 'trusted-id-key-digests': ['11'.repeat(48)] },
      }),
    );
    expect(idKey.status, idKey.text).toBe(200);
    expect(idKey.json.vm.snp['trusted-id-key-digests']).toEqual(['11'.repeat(48)]);
  });

  const refusals: Array<[string, Record<string, unknown>, RegExp]> = [
    ['the debug policy bit', { policy: 0x30000 | (1 << 19) }, /bit 19 \(debug\).*never releases/],
    ['a policy without reserved bit 17', { policy: 0x10000 }, /reserved bit 17 must be 1/],
    [
      'a SHA-256 digest',
      { 'firmware-artifact': undefined, 'launch-digests': ['ab'.repeat(32)] },
      /SHA-384 \(96 hex characters\), not a SHA-256/,
    ],
    [
      'a secret without a resource path',
      { secrets: [{ type: 'luks-passphrase', passphrase: 'x' }] },
      /needs its resource path/,
    ],
    [
      'a resource path named twice',
      {
        secrets: [
          { type: 'luks-passphrase', passphrase: 'x', resource: 'default/luks/a' },
          { guid: RAW_GUID, data: 'eA==', resource: 'default/luks/a' },
        ],
      },
      /resource default\/luks\/a is named twice/,
    ],
    [
      'a resource path that is not repository/type/tag',
      { secrets: [{ type: 'luks-passphrase', passphrase: 'x', resource: 'luks/../key' }] },
      /repository\/type\/tag/,
    ],
    ['an SEV-ES VMSA variant', { 'vmsa-variant': 'kvm-init2' }, /vmsa-variant is for SEV-ES/],
    [
      'no measurement and no trusted key',
      { 'firmware-artifact': undefined, 'launch-digests': [] },
      /expected measurement or a trusted ID or author key/,
    ],
    ['an unknown SNP setting', { snp: { 'vmm-kind': 'qemu' } }, /vmm-kind/],
    ['a report version below 2', { snp: { 'minimum-report-version': 1 } }, /minimum-report-version/],
  ];
  it.each(refusals)('refuses %s with a plain 400, storing nothing', async (_what, extra, message) => {
    const r = await put('snp-refused', snpBody(extra));
    expect(r.status, r.text).toBe(400);
    expect(r.json.error).toBe('bad-request');
    expect(r.json.message).toMatch(message);
    expect(r.text).not.toMatch(/at .*\.ts:\d+/);
    expect(h.svc.profiles.get('snp-refused')).toBeUndefined();
    expect(await h.svc.secretStore.list('vm/snp-refused/')).toEqual([]);
  });

  it('the SEV rules stay: resource paths and snp settings are refused on SEV VMs', async () => {
    const sev = {
      name: 'SEV',
      scheme: 'amd-sev',
      policy: 1,
      'firmware-artifact': ovmf,
    };
    const withResource = await put('sev-res', {
      ...sev,
      secrets: [{ type: 'luks-passphrase', passphrase: 'x', resource: 'default/luks/x' }],
    });
    expect(withResource.status).toBe(400);
    expect(withResource.json.message).toMatch(/resource paths are for amd-sev-snp/);
    const withSnp = await put('sev-snp', { ...sev, snp: {} });
    expect(withSnp.json.message).toMatch(/snp settings are for scheme amd-sev-snp/);
    // The ES-bit rule still holds for SEV and SEV-ES, and only there.
    const es = await put('sev-es', { ...sev, policy: 0x5 });
    expect(es.status).toBe(400);
    expect(es.json.message).toBe("scheme: scheme amd-sev disagrees with the policy's ES bit (set)");
  });

  it('an OVMF without SNP metadata is refused for an SNP VM (the SEV demo firmware)', async () => {
    const demo = fs.readFileSync(join(process.cwd(), 'assets/demo/OVMF.amdsev-trimmed.fd'));
    const up = await request(h.svc.url, 'PUT', '/v1/artifacts', {
      body: demo,
      headers: { 'content-type': 'application/octet-stream' },
    });
    const r = await put('snp-old-fw', snpBody({ 'firmware-artifact': up.json.sha256 }));
    expect(r.status).toBe(400);
    expect(r.json.message).toMatch(/^firmware: .*no SEV metadata/);
  });
});

describe('GET /v1/approvals for an SNP attestation', () => {
  it('carries kind snp-attest and the facts the owner decides on', async () => {
    const { approval } = h.svc.approvals.request('snp-fingerprint', {
      kind: 'snp-attest',
      vmId: 'snp-web',
      client: '192.0.2.7',
      chipId: 'cd'.repeat(64),
      anchor: 'Milan',
      policy: 0x30000,
      snp: {
        product: 'Milan',
        measurement: 'ef'.repeat(48),
        reportedTcb: 'bl 3 tee 0 snp 8 ucode 115',
        policy: '0x30000',
        vmpl: 0,
        signer: 'vcek',
        vouchedBy: 'measurement',
        resources: ['default/luks/snp-web', 'default/token/api'],
        revocation: 'CRL checked',
      },
    });
    const list = await request(h.svc.url, 'GET', '/v1/approvals');
    const body = list.json.approvals.find((a: { id: string }) => a.id === approval.id);
    expect(body.kind).toBe('snp-attest');
    expect(body.snp).toEqual({
      product: 'Milan',
      measurement: 'ef'.repeat(48),
      'reported-tcb': 'bl 3 tee 0 snp 8 ucode 115',
      policy: '0x30000',
      vmpl: 0,
      signer: 'vcek',
      'vouched-by': 'measurement',
      resources: ['default/luks/snp-web', 'default/token/api'],
      revocation: 'CRL checked',
    });
    const d = await request(h.svc.url, 'POST', `/v1/approvals/${approval.id}`, {
      body: { decision: 'deny' },
    });
    expect(d.json.kind).toBe('snp-attest');
  });
});
