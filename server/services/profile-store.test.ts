import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { VmProfileSchema, type VmProfile } from '../../app/profile';
import { createConfBackend, createMemoryBackend, StoreCorruptError } from './kv-backend';
import { ProfileStore, ProfileValidationError, type ProfileChange } from './profile-store';

const HASH = 'ab'.repeat(32);

function sampleProfile(id = 'vm-1'): Record<string, unknown> {
  return {
    id,
    name: `VM ${id}`,
    scheme: 'amd-sev-es',
    policy: 0x5,
    cpuCounts: [4],
    firmware: { kind: 'digests', launchDigests: [HASH] },
    secrets: [{ guid: '736869e5-84f0-4973-92ec-06879ce3da0b', kind: 'luks-passphrase' }],
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'profiles-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function confStore(now?: () => Date) {
  const backend = createConfBackend<{ profiles: Record<string, VmProfile> }>({
    cwd: dir,
    configName: 'profiles',
    defaults: { profiles: {} },
  });
  return { backend, store: new ProfileStore({ backend, now }) };
}

describe('ProfileStore', () => {
  it('puts, lists, gets and deletes profiles on a conf file, with schema defaults applied', () => {
    const { store, backend } = confStore();
    const p = store.put(sampleProfile('b-vm'));
    store.put(sampleProfile('a-vm'));
    expect(p.approval).toBe('manual');
    expect(p.vmsaVariants).toEqual(['kvm-init2']);
    expect(store.list().map((x) => x.id)).toEqual(['a-vm', 'b-vm']);
    expect(store.get('b-vm')?.name).toBe('VM b-vm');
    expect(store.get('nope')).toBeUndefined();
    // A second store on the same file sees the data: it is on disk, not in memory.
    const again = confStore().store;
    expect(again.get('a-vm')?.policy).toBe(5);
    expect(JSON.parse(readFileSync(backend.path, 'utf8')).profiles['b-vm'].id).toBe('b-vm');
    expect(store.delete('b-vm')).toBe(true);
    expect(store.delete('b-vm')).toBe(false);
    expect(again.list().map((x) => x.id)).toEqual(['a-vm']);
  });

  it('sets createdAt once and updatedAt on every put, ignoring the caller-supplied times', () => {
    let t = Date.parse('2026-01-01T00:00:00Z');
    const store = new ProfileStore({
      backend: createMemoryBackend({ profiles: {} }),
      now: () => new Date(t),
    });
    const first = store.put({ ...sampleProfile(), createdAt: '1999-01-01T00:00:00Z' });
    expect(first.createdAt).toBe('2026-01-01T00:00:00.000Z');
    t += 60_000;
    const second = store.put({ ...sampleProfile(), name: 'renamed' });
    expect(second.createdAt).toBe('2026-01-01T00:00:00.000Z');
    expect(second.updatedAt).toBe('2026-01-01T00:01:00.000Z');
    expect(store.get('vm-1')?.name).toBe('renamed');
  });

  it('rejects an invalid profile with a readable list of paths and writes nothing', () => {
    const { store, backend } = confStore();
    const before = readFileSync(backend.path, 'utf8');
    const bad = {
      ...sampleProfile(),
      id: 'bad id!',
      cpuCounts: [0],
      firmware: { kind: 'digests', launchDigests: ['zz'] },
    };
    let err: unknown;
    try {
      store.put(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProfileValidationError);
    const e = err as ProfileValidationError;
    expect(e.code).toBe('profile-invalid');
    const paths = e.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['id', 'cpuCounts[0]', 'firmware.launchDigests[0]']));
    expect(e.message).toMatch(/^invalid profile: .*cpuCounts\[0\]: /);
    expect(readFileSync(backend.path, 'utf8')).toBe(before);
    expect(() => store.put('not an object')).toThrow(ProfileValidationError);
  });

  it('skips and reports a hand-edited corrupt entry, and never rewrites it', () => {
    const { store, backend } = confStore();
    store.put(sampleProfile('good'));
    const onDisk = JSON.parse(readFileSync(backend.path, 'utf8'));
    onDisk.profiles.broken = { ...sampleProfile('broken'), policy: 'five' };
    onDisk.profiles.renamed = sampleProfile('other-id');
    writeFileSync(backend.path, JSON.stringify(onDisk));
    expect(store.list().map((p) => p.id)).toEqual(['good']);
    const problems = store.problems();
    expect(problems.map((p) => p.id).sort()).toEqual(['broken', 'renamed']);
    expect(problems.find((p) => p.id === 'broken')?.message).toMatch(/policy/);
    expect(problems.find((p) => p.id === 'renamed')?.message).toMatch(/its id is "other-id"/);
    expect(store.get('broken')).toBeUndefined();
    // Writing another profile keeps the broken entries exactly as they were.
    store.put(sampleProfile('new'));
    const after = JSON.parse(readFileSync(backend.path, 'utf8'));
    expect(after.profiles.broken).toEqual(onDisk.profiles.broken);
    expect(after.profiles.renamed).toEqual(onDisk.profiles.renamed);
    // A corrupt entry can still be deleted.
    expect(store.delete('broken')).toBe(true);
  });

  it('accepts profile ids with dots (conf dot-notation is off)', () => {
    const { store, backend } = confStore();
    store.put(sampleProfile('web.prod-1'));
    expect(store.get('web.prod-1')?.id).toBe('web.prod-1');
    expect(Object.keys(JSON.parse(readFileSync(backend.path, 'utf8')).profiles)).toEqual(['web.prod-1']);
  });

  it('a file that is not JSON is reported, not overwritten, not fatal to reads', () => {
    const { store, backend } = confStore();
    store.put(sampleProfile('good'));
    writeFileSync(backend.path, '{"profiles": {"good": ');
    expect(store.list()).toEqual([]);
    expect(store.problems()[0]?.message).toMatch(/not valid JSON/);
    expect(() => store.put(sampleProfile('x'))).toThrow(StoreCorruptError);
    expect(readFileSync(backend.path, 'utf8')).toBe('{"profiles": {"good": ');
    expect(() => confStore()).toThrow(StoreCorruptError);
  });

  it('tells listeners about puts and deletes; unsubscribe stops them; a throwing listener is harmless', () => {
    const store = new ProfileStore({ backend: createMemoryBackend({ profiles: {} }) });
    const seen: ProfileChange[] = [];
    const off = store.onChange((c) => seen.push(c));
    store.onChange(() => {
      throw new Error('listener bug');
    });
    store.put(sampleProfile());
    store.delete('vm-1');
    off();
    store.put(sampleProfile());
    expect(seen.map((c) => `${c.type}:${c.id}`)).toEqual(['put:vm-1', 'delete:vm-1']);
  });

  it('re-validates an entry hand-edited after a cached read, and only the entries that changed', () => {
    const { store, backend } = confStore();
    store.put(sampleProfile('a-vm'));
    store.put(sampleProfile('b-vm'));
    const parse = vi.spyOn(VmProfileSchema, 'safeParse');
    try {
      expect(store.get('a-vm')?.policy).toBe(5);
      expect(parse).toHaveBeenCalledTimes(2); // first read: both entries
      parse.mockClear();
      expect(store.get('b-vm')?.policy).toBe(5);
      expect(store.list().map((p) => p.id)).toEqual(['a-vm', 'b-vm']);
      expect(parse).not.toHaveBeenCalled(); // unchanged on disk: cached
      const onDisk = JSON.parse(readFileSync(backend.path, 'utf8'));
      onDisk.profiles['a-vm'].policy = 'five';
      writeFileSync(backend.path, JSON.stringify(onDisk));
      expect(store.get('a-vm')).toBeUndefined();
      expect(store.problems().map((p) => p.id)).toEqual(['a-vm']);
      expect(parse).toHaveBeenCalledTimes(1); // only the edited entry
      onDisk.profiles['a-vm'].policy = 7;
      writeFileSync(backend.path, JSON.stringify(onDisk));
      expect(store.get('a-vm')?.policy).toBe(7);
      expect(store.problems()).toEqual([]);
      // Another store on the same file validates from scratch.
      parse.mockClear();
      expect(confStore().store.get('a-vm')?.policy).toBe(7);
      expect(parse).toHaveBeenCalledTimes(2);
    } finally {
      parse.mockRestore();
    }
  });

  it('hands out copies: editing a returned profile changes neither the cache nor the next read', () => {
    const store = new ProfileStore({ backend: createMemoryBackend({ profiles: {} }) });
    store.put(sampleProfile());
    const got = store.get('vm-1')!;
    got.policy = 0;
    got.cpuCounts.push(8);
    store.list()[0]!.name = 'changed';
    expect(store.get('vm-1')).toMatchObject({ policy: 5, cpuCounts: [4], name: 'VM vm-1' });
  });
});
