/**
 * Bundles end to end: service A (which has the firmware) exports a signed bundle; service B (a fresh data
 * directory, no firmware artifact at all) imports it, and a simulated host then launches and validates
 * through B's listener over real HTTP and decrypts the released secret. The bundle routes run inside real
 * Listeners (ListenerOptions.extraRoutes) over each harness's services, behind the owner token check. The serialized bundle
 * never holds the profile's secret value.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  keyFingerprint,
  publicKeyOf,
  signBundle,
  type BundleDocument,
} from '../../app/bundle/bundle';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { toBase64, toHex } from '../../app/sev/bytes';
import { ArtifactStore } from '../../server/services/artifact-store';
import { BundleService } from '../../server/services/bundle-service';
import { createMemoryBackend } from '../../server/services/kv-backend';
import { TrustedKeyStore, type StoredTrustedKey } from '../../server/services/trusted-keys';
import { bundleRoutes } from '../../server/listener/bundle-routes';
import { Listener } from '../../server/listener/server';
import {
  hostFlow,
  OWNER_TOKEN,
  registerVm,
  request,
  startHarness,
  type Harness,
} from '../helpers/listener-harness';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const KERNEL = {
  kernelHash: sha('kernel'),
  initrdHash: sha('initrd'),
  cmdline: 'console=ttyS0 root=/dev/vda1',
};
const ES_SECRET = 'es passphrase: do not leak 7f3a';
const MDB_SECRET = 'direct boot passphrase 19c2';

function trustedStore(keys: StoredTrustedKey[] = []): TrustedKeyStore {
  return new TrustedKeyStore(createMemoryBackend({ keys }));
}

/** A second listener over a harness's services, with the bundle routes as extraRoutes. */
async function listenerWithBundles(
  h: Harness,
  service: BundleService,
): Promise<{ url: string; close(): Promise<void> }> {
  const listener = new Listener({
    host: '127.0.0.1',
    port: 0,
    ownerToken: OWNER_TOKEN,
    attestation: h.svc.attestation,
    owner: h.svc.owner,
    rateLimit: false,
    extraRoutes: bundleRoutes(service),
  });
  const { url } = await listener.start();
  return { url, close: () => listener.close() };
}

let a: Harness;
let b: Harness;
let exporter: BundleService;
let importer: BundleService;
let frontA: { url: string; close(): Promise<void> };
let frontB: { url: string; close(): Promise<void> };
let esBundleText = '';

beforeAll(async () => {
  a = await startHarness();
  b = await startHarness();
  expect(
    (
      await registerVm(a, {
        id: 'es',
        sevEs: true,
        cpuCounts: [1, 2],
        vmsaVariants: ['legacy', 'kvm-init2'],
        passphrase: ES_SECRET,
      })
    ).status,
  ).toBe(200);
  expect((await registerVm(a, { id: 'mdb', kernel: KERNEL, passphrase: MDB_SECRET })).status).toBe(200);
  exporter = new BundleService({
    profiles: a.svc.profiles,
    secrets: a.svc.secretStore,
    trustedKeys: trustedStore(),
    artifacts: new ArtifactStore({ dir: join(a.dataDir, 'artifacts') }),
    owner: a.svc.owner,
  });
  const key = await exporter.generateSigningKey();
  importer = new BundleService({
    profiles: b.svc.profiles,
    secrets: b.svc.secretStore,
    trustedKeys: trustedStore([
      {
        fingerprint: key.fingerprint,
        publicKey: key.publicKey,
        label: 'laptop',
        addedAt: new Date().toISOString(),
      },
    ]),
    owner: b.svc.owner,
  });
  frontA = await listenerWithBundles(a, exporter);
  frontB = await listenerWithBundles(b, importer);
  const r = await exporter.exportProfile('es', {
    selection: { cpuCounts: [1, 2, 3, 4], vmsaVariants: ['legacy', 'kvm-init2'] },
  });
  esBundleText = r.file.text;
}, 60_000);

afterAll(async () => {
  await frontA?.close();
  await frontB?.close();
  await a?.close();
  await b?.close();
});

describe('export on A, import on B (no firmware on B), launch and validate through B', () => {
  it('preview (the UI table) needs no signing key and has the rows of the selection', async () => {
    const preview = await exporter.previewProfile('es', {
      selection: { cpuCounts: [1, 2, 3], vmsaVariants: ['kvm-init2'] },
    });
    expect(preview.rows.map((r) => `${r.cpus}/${r['vmsa-variant']}`)).toEqual([
      '1/kvm-init2',
      '2/kvm-init2',
      '3/kvm-init2',
    ]);
  });

  it('the exported bundle never contains the secret value (text, base64 or hex) nor TEK/TIK fields', () => {
    expect(a.svc.profiles.get('es')!.secrets).toHaveLength(1);
    for (const form of [ES_SECRET, toBase64(Buffer.from(ES_SECRET)), toHex(Buffer.from(ES_SECRET))]) {
      expect(esBundleText).not.toContain(form);
    }
    expect(esBundleText.toLowerCase()).not.toMatch(/"(tek|tik|secret|secrets|passphrase)"/);
  });

  it('import registers digests only; SEV-ES 1..4 vCPUs x both VMSA variants validate and release the secret', async () => {
    const imported = await importer.importBundle(esBundleText, {
      approval: 'auto',
      secrets: [
        {
          guid: LUKS_PASSPHRASE_GUID,
          kind: 'luks-passphrase',
          value: new TextEncoder().encode('released on B'),
        },
      ],
    });
    expect(imported.signer).toMatchObject({ label: 'laptop' });
    expect(imported.profile.firmware).toMatchObject({ kind: 'digests' });
    expect(
      imported.profile.firmware.kind === 'digests' && imported.profile.firmware.launchDigests,
    ).toHaveLength(8);
    expect(fs.readdirSync(join(b.dataDir, 'artifacts')).filter((n) => /^[0-9a-f]{64}$/.test(n))).toEqual([]);
    for (const cpus of [1, 3, 4]) {
      for (const vmsaVariant of ['legacy', 'kvm-init2'] as const) {
        const r = await hostFlow(b, { vmId: 'es', sevEs: true, cpus, vmsaVariant });
        expect(r.validate?.status, `${cpus}/${vmsaVariant}: ${r.validate?.text}`).toBe(200);
        expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('released on B');
      }
    }
    // A vCPU count outside the bundle's matrix is a mismatch.
    const five = await hostFlow(b, { vmId: 'es', sevEs: true, cpus: 5 });
    expect(five.validate?.status).toBe(403);
    expect(five.validate?.json.error).toBe('measurement-mismatch');
  });

  it('over HTTP: GET /v1/vm/mdb/bundle on A, POST /v1/bundles on B, then SEV with measured direct boot validates', async () => {
    const got = await request(
      frontA.url,
      'GET',
      '/v1/vm/mdb/bundle?cpus=1-8&cpu-signature=milan,genoa&vmsa-variant=both',
    );
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toMatch(/^application\/json/);
    const doc = got.json as BundleDocument;
    expect(doc.body.rows).toHaveLength(1);
    expect(doc.body.matrix.collapsed).toBe(true);
    expect(got.text).not.toContain(MDB_SECRET);
    const csv = await request(frontA.url, 'GET', '/v1/vm/mdb/bundle?format=csv');
    expect(csv.status).toBe(200);
    expect(csv.text.split('\r\n')[1]).toContain(doc.body.rows[0]!.digest);
    const posted = await request(frontB.url, 'POST', '/v1/bundles', {
      body: { bundle: doc, approval: 'auto', secrets: { type: 'luks-passphrase', passphrase: 'mdb on B' } },
    });
    expect(posted.status, posted.text).toBe(200);
    expect(posted.json.vm.id).toBe('mdb');
    const r = await hostFlow(b, { vmId: 'mdb', kernel: KERNEL, base: frontB.url });
    expect(r.launch.status, r.launch.text).toBe(200);
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('mdb on B');
    const wrongCmdline = await hostFlow(b, { vmId: 'mdb', kernel: { ...KERNEL, cmdline: 'init=/bin/sh' } });
    expect(wrongCmdline.validate?.status).toBe(403);
  });

  it('over HTTP: a modified bundle is 422 bundle-signature-invalid, a stranger 403 bundle-key-untrusted; nothing registered', async () => {
    const doc = JSON.parse(esBundleText) as BundleDocument;
    doc.body.policy = 0x07;
    const modified = await request(frontB.url, 'POST', '/v1/bundles', {
      body: { bundle: doc, 'vm-id': 'tampered' },
    });
    expect(modified.status).toBe(422);
    expect(modified.json.error).toBe('bundle-signature-invalid');
    const strangerKey = generateSigningKey();
    const stranger = signBundle((JSON.parse(esBundleText) as BundleDocument).body, strangerKey);
    const untrusted = await request(frontB.url, 'POST', '/v1/bundles', { body: { ...stranger } });
    expect(untrusted.status).toBe(403);
    expect(untrusted.json.error).toBe('bundle-key-untrusted');
    expect(untrusted.json.message).toContain(keyFingerprint(publicKeyOf(strangerKey)));
    expect(b.svc.profiles.get('tampered')).toBeUndefined();
    const badSel = await request(frontA.url, 'GET', '/v1/vm/es/bundle?cpus=0-3');
    expect(badSel.status).toBe(400);
    expect(badSel.json.error).toBe('bundle-bad-selection');
    const api = await request(frontA.url, 'GET', '/v1/openapi.json', { token: null });
    expect(api.json.paths['/v1/vm/{vmid}/bundle'].get).toBeDefined();
    expect(api.json.paths['/v1/bundles'].post.requestBody).toBeDefined();
    expect(api.json.components.schemas.BundleImportRequest).toBeDefined();
    const noToken = await request(frontA.url, 'GET', '/v1/vm/es/bundle', {
      token: 'not-the-owner-token-123',
    });
    expect(noToken.status).toBe(401);
    const unknown = await request(frontA.url, 'GET', '/v1/vm/nope/bundle');
    expect(unknown.status).toBe(404);
  });
});
