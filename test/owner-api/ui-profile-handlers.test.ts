/**
 * The UI's profile channels over a real service: profiles:save goes through OwnerService (firmware checks,
 * the no-secret-area warning, an audit event), profiles:duplicate copies secret refs and values.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InvokeChannel, VmProfileInput } from '../../app/contract/ipc';
import type { VmProfile } from '../../app/profile';
import type { SecretStore } from '../../server/services/secret-store';
import { InMemorySecretStore, SecretStoreUnavailableError } from '../../server/services/secret-store';
import { FIRMWARE, MILAN, startHarness, type Harness } from '../helpers/listener-harness';
import { ipcClient, ownerHandlers } from '../helpers/ipc';

/** An in-memory store whose reads of chosen accounts fail like a locked keychain. */
class FlakySecretStore extends InMemorySecretStore implements SecretStore {
  readonly failing = new Set<string>();
  override async get(account: string): Promise<Uint8Array | undefined> {
    if (this.failing.has(account)) {
      throw new SecretStoreUnavailableError('the keychain is locked');
    }
    return super.get(account);
  }
}

const secrets = new FlakySecretStore();
let h: Harness;
let call: (channel: InvokeChannel, ...args: unknown[]) => Promise<{ ok: boolean; [k: string]: unknown }>;
let amdSev: string;
let plainOvmf: string;

beforeAll(async () => {
  h = await startHarness({ secretStore: secrets });
  const handlers = ownerHandlers(h.svc, { mode: 'desktop' });
  call = async (channel, ...args) =>
    (await ipcClient(handlers).raw(channel, ...args)) as { ok: boolean; [k: string]: unknown };
  amdSev = (await h.svc.artifacts.importBytes(FIRMWARE, { name: 'amdsev.fd' })).sha256;
  // Debian's OVMF.fd: a firmware with no SEV secret area.
  const ovmf = new Uint8Array(fs.readFileSync('/usr/share/ovmf/OVMF.fd'));
  plainOvmf = (await h.svc.artifacts.importBytes(ovmf, { name: 'OVMF.fd' })).sha256;
});
afterAll(async () => h?.close());

function profile(id: string, sha: string, extra: Partial<VmProfileInput> = {}): VmProfileInput {
  return {
    id,
    name: `VM ${id}`,
    scheme: 'amd-sev',
    policy: 0x1,
    cpuCounts: [1],
    firmware: { kind: 'artifact', sha256: sha, size: 1 },
    ...extra,
  };
}

describe('profiles:save through OwnerService', () => {
  it('saves, fixes the artifact size from the store, and writes an audit event', async () => {
    const r = await call('profiles:save', profile('plain', amdSev));
    expect(r.ok).toBe(true);
    const v = r.value as { profile: VmProfile; warnings: string[] };
    expect(v.warnings).toEqual([]);
    expect(v.profile.firmware).toEqual({ kind: 'artifact', sha256: amdSev, size: FIRMWARE.length });
    expect(h.svc.audit.list({ vmId: 'plain' }).at(-1)?.message).toBe('VM plain registered');
  });

  it('warns when a profile with secrets uses a firmware without a secret area', async () => {
    expect((await call('profiles:save', profile('nosecretarea', plainOvmf))).value).toMatchObject({
      warnings: [],
    });
    const set = await call('secrets:set', 'nosecretarea', { kind: 'luks-passphrase', passphrase: 'pw' });
    expect(set.ok).toBe(true);
    // Adding the secret is where the UI first learns it: the same warning comes back from secrets:set.
    expect((set.value as { warnings: string[] }).warnings.join(' ')).toMatch(/secret area/);
    const fine = await call('secrets:set', 'plain', { kind: 'luks-passphrase', passphrase: 'pw' });
    expect(fine.value).toMatchObject({ warnings: [] });
    const again = await call('profiles:save', profile('nosecretarea', plainOvmf, { name: 'renamed' }));
    expect(again.ok).toBe(true);
    const v = again.value as { profile: VmProfile; warnings: string[] };
    expect(v.warnings.join(' ')).toMatch(/secret area.*QEMU could not inject them/);
    // The stored secret refs are kept: the UI's copy of them is not trusted.
    expect(v.profile.secrets.map((s) => s.kind)).toEqual(['luks-passphrase']);
    expect(v.profile.name).toBe('renamed');
  });

  it('refuses what the firmware cannot do, and an artifact that was never imported', async () => {
    const es = await call(
      'profiles:save',
      profile('es-no-sig', amdSev, { scheme: 'amd-sev-es', policy: 0x5, cpuSignatures: [] }),
    );
    expect(es).toMatchObject({ ok: false, error: 'bad-request' });
    expect(String(es.message)).toMatch(/cpu-signature/);
    const esOk = await call(
      'profiles:save',
      profile('es', amdSev, { scheme: 'amd-sev-es', policy: 0x5, cpuCounts: [2], cpuSignatures: [MILAN] }),
    );
    expect(esOk.ok).toBe(true);
    const missing = await call('profiles:save', profile('ghost', 'e'.repeat(64)));
    expect(missing).toMatchObject({ ok: false, error: 'unknown-artifact' });
    expect(h.svc.profiles.get('ghost')).toBeUndefined();
  });
});

describe('profiles:duplicate', () => {
  it('copies the secret refs and the values under the new id', async () => {
    await call('profiles:save', profile('src', amdSev));
    await call('secrets:set', 'src', { kind: 'luks-passphrase', passphrase: 'correct horse', label: 'root' });
    const guid = '0b2f4a1c-1111-4e2d-9c3b-5a6d7e8f9012';
    await call('secrets:set', 'src', { kind: 'raw', guid, dataBase64: 'AQIDBA==' });
    const r = await call('profiles:duplicate', 'src', 'src-copy');
    expect(r.ok).toBe(true);
    const v = r.value as { profile: VmProfile; warnings: string[] };
    expect(v.warnings).toEqual([]);
    expect(v.profile.id).toBe('src-copy');
    expect(v.profile.secrets).toEqual(h.svc.profiles.get('src')!.secrets);
    const pass = await call('secrets:reveal', 'src-copy', v.profile.secrets[0]!.guid);
    expect(pass.value).toMatchObject({ kind: 'luks-passphrase', text: 'correct horse' });
    expect((await call('secrets:reveal', 'src-copy', guid)).value).toMatchObject({ base64: 'AQIDBA==' });
    // Independent values: deleting the copy's secret leaves the source's.
    await call('secrets:delete', 'src-copy', guid);
    expect((await call('secrets:reveal', 'src', guid)).value).toMatchObject({ base64: 'AQIDBA==' });
  });

  it('says which secrets could not be copied, and copies the rest', async () => {
    await call('profiles:save', profile('locked', amdSev));
    await call('secrets:set', 'locked', { kind: 'luks-passphrase', passphrase: 'pw', label: 'disk' });
    const guid = '0b2f4a1c-2222-4e2d-9c3b-5a6d7e8f9012';
    await call('secrets:set', 'locked', { kind: 'raw', guid, dataBase64: 'BQY=', label: 'api key' });
    const lukGuid = h.svc.profiles.get('locked')!.secrets.find((s) => s.kind === 'luks-passphrase')!.guid;
    secrets.failing.add(`vm/locked/${lukGuid}`);
    try {
      const r = await call('profiles:duplicate', 'locked', 'locked-copy');
      expect(r.ok).toBe(true);
      const v = r.value as { profile: VmProfile; warnings: string[] };
      expect(v.warnings).toHaveLength(1);
      expect(v.warnings[0]).toMatch(
        /^secret disk was not copied: the OS keychain is locked .*\(the keychain is locked\)$/,
      );
      expect(v.profile.secrets.map((s) => s.guid)).toEqual([guid]);
      expect(await secrets.get(`vm/locked-copy/${lukGuid}`)).toBeUndefined();
    } finally {
      secrets.failing.clear();
    }
  });

  it('refuses an existing target id and an unknown source', async () => {
    await call('profiles:save', profile('taken', amdSev));
    expect(await call('profiles:duplicate', 'plain', 'taken')).toMatchObject({
      ok: false,
      error: 'vm-exists',
    });
    expect(await call('profiles:duplicate', 'nope', 'x')).toMatchObject({ ok: false, error: 'unknown-vm' });
  });
});
