/**
 * SEV-SNP host setup over the owner REST routes and the IPC channels of one real service: the rows come
 * from the profile's OVMF (the same measurements a bundle carries), POST snp-keys creates the VM's ID key
 * (memory store here; the keychain path is server/services/snp-id-keys.keychain.test.ts), and the ID block
 * in the fragment verifies against the digest the profile now trusts. Hostile queries and bodies answer 400,
 * an unknown VM 404, no owner token 401.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  invokeArgSchemas,
  type InvokeChannel,
  type InvokeHandlers,
  type InvokeResult,
} from '../../app/contract/ipc';
import type { HostSetup, SnpKeysResult } from '../../app/host-setup';
import { fromBase64, fromHex, toHex } from '../../app/sev/bytes';
import { verifyIdBlock } from '../../app/snp/id-block';
import { ownerHandlers } from '../helpers/ipc';
import { FIRMWARE_PATH, request, startHarness, type Harness } from '../helpers/listener-harness';

let h: Harness;
let handlers: InvokeHandlers;
let measurements: string[] = [];

async function call<K extends InvokeChannel>(channel: K, ...args: unknown[]): Promise<InvokeResult<K>> {
  const parsed = invokeArgSchemas[channel].parse(args) as Parameters<InvokeHandlers[K]>;
  return (handlers[channel] as (...a: unknown[]) => Promise<InvokeResult<K>>)(...parsed);
}

beforeAll(async () => {
  h = await startHarness({ trustSim: false });
  handlers = ownerHandlers(h.svc, { mode: 'browser' });
  const fw = await h.svc.artifacts.importFile(FIRMWARE_PATH);
  h.svc.profiles.put({
    id: 'snp',
    name: 'SNP',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1, 2],
    cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size, name: 'OVMF.amdsev.fd' },
    approval: 'manual',
    secrets: [],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      hostData: '01'.repeat(32),
      vmpl: 0,
      minimumReportVersion: 3,
    },
  });
  h.svc.profiles.put({
    id: 'sev',
    name: 'SEV',
    scheme: 'amd-sev',
    policy: 1,
    cpuCounts: [1],
    cpuSignatures: [],
    vmsaVariants: ['kvm-init2'],
    firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    approval: 'manual',
    secrets: [],
  });
  measurements = (await h.svc.bundles.previewProfile('snp')).rows.map((r) => r.digest);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('SNP host setup over REST', () => {
  it('before a key: the rows of the firmware, no ID block and why', async () => {
    const r = await request(h.svc.url, 'GET', '/v1/vm/snp/host-setup');
    expect(r.status, r.text).toBe(200);
    const s = r.json as HostSetup;
    expect(s.snp!.rows.map((x) => [x.index, x.cpus, x.measurement])).toEqual([
      [0, 1, measurements[0]],
      [1, 2, measurements[1]],
    ]);
    expect(s.snp!.idBlock).toBeUndefined();
    expect(s.snp!.idBlockMissing).toMatch(/no ID key yet/);
    expect(s.domainXml).toContain("<launchSecurity type='sev-snp'>");
    expect(s.domainXml).toContain(
      `<hostData>${Buffer.from('01'.repeat(32), 'hex').toString('base64')}</hostData>`,
    );
  });

  it('POST snp-keys creates the ID key once; the row 1 ID block verifies against the trusted digest', async () => {
    const created = await request(h.svc.url, 'POST', '/v1/vm/snp/snp-keys', { body: {} });
    expect(created.status, created.text).toBe(200);
    const keys = created.json as SnpKeysResult;
    expect(keys.idKeyCreated).toBe(true);
    expect(h.svc.profiles.get('snp')!.snp!.trustedIdKeyDigests).toEqual([keys.idKeyDigest]);
    const again = await request(h.svc.url, 'POST', '/v1/vm/snp/snp-keys', { body: {} });
    expect((again.json as SnpKeysResult).idKeyCreated).toBe(false);

    const r = await request(
      h.svc.url,
      'GET',
      `/v1/vm/snp/host-setup?row=1&image-id=${'ee'.repeat(16)}&guest-svn=3`,
    );
    expect(r.status, r.text).toBe(200);
    const s = r.json as HostSetup;
    const b = s.snp!.idBlock!;
    const v = verifyIdBlock(fromBase64(b.idBlockBase64), fromBase64(b.idAuthBase64), {
      idKeyDigest: fromHex(keys.idKeyDigest),
    });
    expect(toHex(v.block.launchDigest)).toBe(measurements[1]);
    expect(v.block.policy).toBe(0x30000n);
    expect(toHex(v.block.imageId)).toBe('ee'.repeat(16));
    expect(v.block.guestSvn).toBe(3);
    expect(s.domainXml).toContain(`<idBlock>${b.idBlockBase64}</idBlock>`);
    expect(s.domainXml).toContain("<vcpu placement='static'>2</vcpu>");
  });

  it('the same over IPC: hostSetup:snpKeys then hostSetup:get with a row', async () => {
    const keys = await call('hostSetup:snpKeys', 'snp', { authorKey: true });
    expect(keys.authorKeyCreated).toBe(true);
    const s = await call('hostSetup:get', 'snp', { row: 0, authorKey: true });
    expect(s.domainXml).toContain("authorKey='yes'");
    const b = s.snp!.idBlock!;
    const v = verifyIdBlock(fromBase64(b.idBlockBase64), fromBase64(b.idAuthBase64), {
      idKeyDigest: fromHex(keys.idKeyDigest),
      authorKeyDigest: fromHex(keys.authorKeyDigest!),
    });
    expect(toHex(v.block.launchDigest)).toBe(measurements[0]);
    expect(h.svc.profiles.get('snp')!.snp!.trustedAuthorKeyDigests).toEqual([keys.authorKeyDigest]);
    expect(() => invokeArgSchemas['hostSetup:get'].parse(['snp', { row: -1 }])).toThrow();
    expect(() => invokeArgSchemas['hostSetup:get'].parse(['snp', { familyId: 'zz' }])).toThrow();
    expect(() => invokeArgSchemas['hostSetup:snpKeys'].parse(['snp', { extra: true }])).toThrow();
  });

  it('hostile input: bad query values, an unknown row, an SEV profile, an unknown VM, no token', async () => {
    for (const q of [
      'row=-1',
      'row=abc',
      'family-id=zz',
      'image-id=' + 'A'.repeat(32),
      'author-key=maybe',
      'other=1',
    ]) {
      const r = await request(h.svc.url, 'GET', `/v1/vm/snp/host-setup?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.error, q).toBe('bad-request');
    }
    const row = await request(h.svc.url, 'GET', '/v1/vm/snp/host-setup?row=7');
    expect(row.status).toBe(400);
    expect(row.json.message).toContain('row 7 is not one of');
    const sev = await request(h.svc.url, 'POST', '/v1/vm/sev/snp-keys', { body: {} });
    expect(sev.status).toBe(400);
    expect(sev.json.message).toContain('ID blocks are for SEV-SNP');
    const badBody = await request(h.svc.url, 'POST', '/v1/vm/snp/snp-keys', {
      body: { 'author-key': 'yes' },
    });
    expect(badBody.status).toBe(400);
    const missing = await request(h.svc.url, 'GET', '/v1/vm/nope/host-setup');
    expect(missing.status).toBe(404);
    expect(missing.json.error).toBe('unknown-vm');
    const anon = await request(h.svc.url, 'GET', '/v1/vm/snp/host-setup', { token: null });
    expect(anon.status).toBe(401);
    // The SEV profile's host setup is unchanged by all this.
    const sevSetup = await request(h.svc.url, 'GET', '/v1/vm/sev/host-setup');
    expect((sevSetup.json as HostSetup).domainXml).toContain("<launchSecurity type='sev'>");
    expect((sevSetup.json as HostSetup).snp).toBeUndefined();
  });
});
