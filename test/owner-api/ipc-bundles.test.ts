/**
 * The `bundles:*` channels through dispatch (the contract's schemas, then createInvokeHandlers) over two
 * running services: A has the firmware and signs, B has none, checks the bundle (each refusal as a result,
 * not a rejection), trusts A's key and imports it as a VM with precomputed digests, which then validates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  BundleBodyView,
  BundleExportFile,
  BundleImportResult,
  BundleSigningKey,
  BundleVerification,
  InvokeHandlers,
  IpcResponse,
  TrustedBundleKey,
} from '../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { hostFlow, registerVm, startHarness, type Harness } from '../helpers/listener-harness';
import { ipcClient, ownerHandlers } from '../helpers/ipc';

let a: Harness;
let b: Harness;
let onA: InvokeHandlers;
let onB: InvokeHandlers;

function handlersFor(h: Harness): InvokeHandlers {
  return ownerHandlers(h.svc, { mode: 'browser' });
}

/** Calls a channel as the renderer would; returns the value or throws `code: message`. */
async function call<T>(handlers: InvokeHandlers, channel: string, ...args: unknown[]): Promise<T> {
  const r = (await ipcClient(handlers).raw(channel, ...args)) as IpcResponse<T>;
  if (!r.ok) throw new Error(`${r.error}: ${r.message}`);
  return r.value;
}

beforeAll(async () => {
  a = await startHarness();
  b = await startHarness();
  onA = handlersFor(a);
  onB = handlersFor(b);
  expect((await registerVm(a, { id: 'es', sevEs: true, cpuCounts: [1, 2] })).status).toBe(200);
  expect((await registerVm(a, { id: 'plain' })).status).toBe(200);
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
});

const SELECTION = { cpuCounts: [1, 2], vmsaVariants: ['legacy', 'kvm-init2'] };

describe('bundles:* channels', () => {
  let key: BundleSigningKey;
  let exported: BundleExportFile;

  it('preview needs no key; SEV without ES collapses to one row; export refuses without a key', async () => {
    const preview = await call<BundleBodyView>(onA, 'bundles:preview', 'es', SELECTION);
    expect(preview.rows.map((r) => `${r.cpus}/${r['vmsa-variant']}`)).toEqual([
      '1/legacy',
      '1/kvm-init2',
      '2/legacy',
      '2/kvm-init2',
    ]);
    expect(preview.matrix.collapsed).toBe(false);
    const plain = await call<BundleBodyView>(onA, 'bundles:preview', 'plain', { cpuCounts: [1, 2, 3] });
    expect(plain.rows).toHaveLength(1);
    expect(plain.matrix.collapsed).toBe(true);
    await expect(call(onA, 'bundles:export', 'es', SELECTION, 'native')).rejects.toThrow(
      /^bundle-no-signing-key: /,
    );
    await expect(call(onA, 'bundles:preview', 'nope', {})).rejects.toThrow(/^unknown-vm: /);
    await expect(call(onA, 'bundles:export', 'es', SELECTION, 'pdf')).rejects.toThrow(/^bad-arguments: /);
  });

  it('keygen creates and trusts the key once; export signs with it in every format', async () => {
    expect(await call(onA, 'bundles:key')).toBeNull();
    const created = await call<BundleSigningKey & { created: boolean }>(onA, 'bundles:keygen');
    expect(created.created).toBe(true);
    const again = await call<BundleSigningKey & { created: boolean }>(onA, 'bundles:keygen', {});
    expect(again).toEqual({ ...created, created: false });
    key = (await call<BundleSigningKey>(onA, 'bundles:key'))!;
    expect(key).toEqual({ fingerprint: created.fingerprint, publicKey: created.publicKey });
    const trusted = await call<TrustedBundleKey[]>(onA, 'bundles:trusted');
    expect(trusted.map((k) => k.fingerprint)).toEqual([key.fingerprint]);

    exported = await call<BundleExportFile>(onA, 'bundles:export', 'es', SELECTION, 'native');
    expect(exported.fileName).toBe('es.bundle.json');
    expect(exported.contentType).toBe('application/json');
    expect(exported.fingerprint).toBe(key.fingerprint);
    expect(JSON.parse(exported.text).body.rows).toHaveLength(4);
    const csv = await call<BundleExportFile>(onA, 'bundles:export', 'es', SELECTION, 'csv');
    expect(csv.fileName).toBe('es.csv');
    expect(csv.text.trimEnd().split('\r\n')).toHaveLength(5);
    const vqsv = await call<BundleExportFile>(onA, 'bundles:export', 'es', {}, 'vqsv');
    expect(vqsv.text.startsWith('#!')).toBe(true);
  });

  it('verify resolves with each refusal: not a bundle, untrusted key, modified', async () => {
    const junk = await call<BundleVerification>(onB, 'bundles:verify', 'not json');
    expect(junk).toMatchObject({ ok: false, code: 'bundle-invalid', summary: null });

    const untrusted = await call<BundleVerification>(onB, 'bundles:verify', exported.text);
    expect(untrusted).toMatchObject({
      ok: false,
      code: 'bundle-key-untrusted',
      signer: { fingerprint: key.fingerprint, publicKey: key.publicKey },
      summary: { vmId: 'es', rows: 4, scheme: 'amd-sev-es', statedSigner: key.fingerprint },
    });
    expect(untrusted.message).toContain(key.fingerprint);

    const doc = JSON.parse(exported.text);
    doc.body.rows[2].digest = 'f'.repeat(64);
    const modified = await call<BundleVerification>(onB, 'bundles:verify', JSON.stringify(doc));
    expect(modified).toMatchObject({ ok: false, code: 'bundle-signature-invalid', summary: { rows: 4 } });
    expect(modified.signer).toBeUndefined();
    await expect(call(onB, 'bundles:import', JSON.stringify(doc))).rejects.toThrow(
      /^bundle-signature-invalid: /,
    );
  });

  it('trust, verify ok with the label, import (no firmware on B) and launch; untrust refuses again', async () => {
    await expect(call(onB, 'bundles:trust', 'not a key')).rejects.toThrow(/^bad-key: /);
    const entry = await call<TrustedBundleKey>(onB, 'bundles:trust', `public-key ${key.publicKey}`, 'laptop');
    expect(entry).toMatchObject({ fingerprint: key.fingerprint, publicKey: key.publicKey, label: 'laptop' });
    const ok = await call<BundleVerification>(onB, 'bundles:verify', exported.text);
    expect(ok).toMatchObject({ ok: true, signer: { fingerprint: key.fingerprint, label: 'laptop' } });
    expect(ok.code).toBeUndefined();

    const imported = await call<BundleImportResult>(onB, 'bundles:import', exported.text, {
      vmId: 'from-a',
      name: 'Imported ES',
      approval: 'auto',
    });
    expect(imported.rows).toBe(4);
    expect(imported.signer).toEqual({ fingerprint: key.fingerprint, label: 'laptop' });
    expect(imported.vm).toMatchObject({ id: 'from-a', name: 'Imported ES', approval: 'auto' });
    expect(imported.vm.firmware.kind).toBe('digests');
    await call(onB, 'secrets:set', 'from-a', { kind: 'luks-passphrase', passphrase: 'on B' });
    const flow = await hostFlow(b, { vmId: 'from-a', sevEs: true, cpus: 2, vmsaVariant: 'legacy' });
    expect(flow.validate?.status, flow.validate?.text).toBe(200);
    expect(flow.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('on B');

    expect(await call(onB, 'bundles:untrust', key.fingerprint)).toBe(true);
    expect(await call(onB, 'bundles:untrust', key.fingerprint)).toBe(false);
    expect(await call<TrustedBundleKey[]>(onB, 'bundles:trusted')).toEqual([]);
    expect((await call<BundleVerification>(onB, 'bundles:verify', exported.text)).code).toBe(
      'bundle-key-untrusted',
    );
    await expect(call(onB, 'bundles:untrust', 'ed25519:short')).rejects.toThrow(/^bad-arguments: /);
  });
});
