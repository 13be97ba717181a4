/**
 * One secret service for every transport: set, reveal, delete and duplicate through Electron's dispatch,
 * through the browser bridge over real HTTP, and the REST owner routes each write a `secret` audit event
 * naming the transport, the VM and the GUID, and never the value; the values reach the store and their
 * buffers are wiped.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../app/audit';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { SecretService } from '../../server/services/secret-service';
import { InMemorySecretStore } from '../../server/services/secret-store';
import { request } from '../helpers/http';
import { bridgeClient, ipcClient, ownerHandlers, type OwnerApiClient } from '../helpers/ipc';
import { registerVm, startHarness, type Harness } from '../helpers/listener-harness';

const RAW_GUID = '9ff1c36a-7a65-4c0d-8b36-2d1a5f0d3f11';
let h: Harness;
let ipc: OwnerApiClient;
let bridge: OwnerApiClient & { close(): Promise<void> };

beforeAll(async () => {
  h = await startHarness();
  ipc = ipcClient(ownerHandlers(h.svc, { mode: 'desktop' }));
  bridge = await bridgeClient(h.svc);
});
afterAll(async () => {
  await bridge?.close();
  await h?.close();
});

function secretEvents(vmId: string): AuditEvent[] {
  return h.svc.owner.events({ types: ['secret'], vmId });
}

/** Every value a test stored must be absent from the audit log file on disk. */
function expectNotInAuditFile(...values: string[]): void {
  const text = fs.readFileSync(join(h.dataDir, 'audit.log'), 'utf8');
  for (const v of values) expect(text).not.toContain(v);
}

describe.each([
  ['ipc', () => ipc],
  ['browser', () => bridge],
] as const)('over %s', (via, client) => {
  const vmId = `secrets-${via}`;
  const passphrase = `correct horse ${via} staple`;

  beforeAll(async () => {
    expect((await registerVm(h, { id: vmId, passphrase: 'first value' })).status).toBe(200);
  });

  it('set, reveal and delete each write one audit event without the value', async () => {
    const before = secretEvents(vmId).length;
    await client().call('secrets:set', vmId, { kind: 'luks-passphrase', passphrase });
    const shown = await client().call('secrets:reveal', vmId, LUKS_PASSPHRASE_GUID);
    expect(shown.text).toBe(passphrase);
    await client().call('secrets:set', vmId, {
      kind: 'raw',
      guid: RAW_GUID,
      dataBase64: Buffer.from('raw bytes').toString('base64'),
    });
    await client().call('secrets:delete', vmId, RAW_GUID);

    const events = secretEvents(vmId).slice(before);
    expect(events.map((e) => e.details?.action)).toEqual(['replaced', 'revealed', 'stored', 'deleted']);
    for (const e of events) {
      expect(e.details?.via).toBe(via);
      expect(e.vmId).toBe(vmId);
      expect(JSON.stringify(e)).not.toContain(passphrase);
    }
    expect(events[1]!.details?.guid).toBe(LUKS_PASSPHRASE_GUID);
    expect(events[3]!.details?.guid).toBe(RAW_GUID);
    expectNotInAuditFile(passphrase, Buffer.from('raw bytes').toString('base64'));
  });

  it('duplicate copies each value under the new id and audits each copy', async () => {
    const copy = `${vmId}-copy`;
    const r = await client().call('profiles:duplicate', vmId, copy);
    expect(r.profile.secrets.map((s) => s.guid)).toEqual([LUKS_PASSPHRASE_GUID]);
    expect((await client().call('secrets:reveal', copy, LUKS_PASSPHRASE_GUID)).text).toBe(passphrase);
    const copied = secretEvents(copy).filter((e) => String(e.details?.action).startsWith('copied'));
    expect(copied).toHaveLength(1);
    expect(copied[0]!.details?.via).toBe(via);
  });

  it('refuses a secret of another VM and an unknown GUID with their own codes', async () => {
    expect(await client().raw('secrets:reveal', 'no-such-vm', LUKS_PASSPHRASE_GUID)).toMatchObject({
      ok: false,
      error: 'unknown-vm',
    });
    expect(await client().raw('secrets:delete', vmId, RAW_GUID)).toMatchObject({
      ok: false,
      error: 'unknown-secret',
    });
  });
});

describe('over REST', () => {
  it('refuses raw bytes under the disk passphrase GUID (400) and stores nothing, as IPC does', async () => {
    expect((await registerVm(h, { id: 'secrets-rest-raw', passphrase: 'kept passphrase' })).status).toBe(200);
    const before = await h.svc.secretStore.get(`vm/secrets-rest-raw/${LUKS_PASSPHRASE_GUID}`);
    const r = await registerVm(h, {
      id: 'secrets-rest-raw',
      extra: {
        secrets: [
          { type: 'raw', guid: RAW_GUID, data: Buffer.from('other').toString('base64') },
          {
            type: 'raw',
            guid: LUKS_PASSPHRASE_GUID.toUpperCase(),
            data: Buffer.from('raw').toString('base64'),
          },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: 'bad-request' });
    expect(r.json.message).toMatch(/set it as a LUKS passphrase/);
    expect(await h.svc.secretStore.get(`vm/secrets-rest-raw/${LUKS_PASSPHRASE_GUID}`)).toEqual(before);
    expect(await h.svc.secretStore.get(`vm/secrets-rest-raw/${RAW_GUID}`)).toBeUndefined();
    expect(h.svc.profiles.get('secrets-rest-raw')!.secrets).toEqual([
      { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' },
    ]);
  });

  it('PUT /v1/vm stores each value with an audit event; DELETE /v1/vm deletes them with one each', async () => {
    const passphrase = 'rest passphrase value';
    expect((await registerVm(h, { id: 'secrets-rest', passphrase })).status).toBe(200);
    const stored = secretEvents('secrets-rest');
    expect(stored.map((e) => [e.details?.action, e.details?.via])).toEqual([['stored', 'rest']]);
    expect((await request(h.svc.url, 'DELETE', '/v1/vm/secrets-rest')).status).toBe(204);
    const after = secretEvents('secrets-rest');
    expect(after.map((e) => e.details?.action)).toEqual(['stored', 'deleted']);
    expect(await h.svc.secretStore.list('vm/secrets-rest/')).toEqual([]);
    expectNotInAuditFile(passphrase);
  });
});

describe('SecretService', () => {
  it('wipes the value buffer it was given once stored', async () => {
    const store = new InMemorySecretStore();
    const vm = (await h.svc.profiles.list())[0]!;
    const service = new SecretService({
      store,
      profiles: h.svc.profiles,
      audit: { appendDurable: async () => undefined },
    });
    const value = new TextEncoder().encode('wipe me');
    await service.set(vm.id, { guid: RAW_GUID, kind: 'raw', value }, { via: 'ipc' });
    expect([...value].every((b) => b === 0)).toBe(true);
    const stored = await store.get(`vm/${vm.id}/${RAW_GUID}`);
    expect(new TextDecoder().decode(stored)).toBe('wipe me');
  });

  it('does not reveal a value when its audit event cannot be written', async () => {
    const store = new InMemorySecretStore();
    const vm = (await h.svc.profiles.list())[0]!;
    await store.set(`vm/${vm.id}/${LUKS_PASSPHRASE_GUID}`, new TextEncoder().encode('kept'));
    const service = new SecretService({
      store,
      profiles: h.svc.profiles,
      audit: {
        appendDurable: async () => {
          throw new Error('disk full');
        },
      },
    });
    await expect(service.reveal(vm.id, LUKS_PASSPHRASE_GUID, { via: 'ipc' })).rejects.toThrow('disk full');
  });
});
