import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretAccount, type VmProfile } from '../../app/profile';
import { bundleChild } from '../../test/helpers/bundle-child';
import { AuditLog } from './audit-log';
import { createConfBackend } from './kv-backend';
import { ProfileStore } from './profile-store';
import {
  createSecretStore,
  InMemorySecretStore,
  KeytarSecretStore,
  SecretFormatError,
  SecretStoreUnavailableError,
  type KeytarLike,
} from './secret-store';

const run = promisify(execFile);
const HAVE_KEYRING = process.env.SEV_ATTEST_TEST_KEYRING === '1';
const KEYRING_REASON =
  'needs a real Secret Service: run under `bash scripts/with-keyring.sh npx vitest run ...`';
const HAVE_DBUS_TOOLS = ['/usr/bin/dbus-run-session', '/usr/bin/gnome-keyring-daemon'].every((p) => {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
});

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Files under dir that contain the secret raw, as hex, or as base64. */
function filesContaining(dir: string, secret: Uint8Array): string[] {
  const needles = [
    Buffer.from(secret),
    Buffer.from(Buffer.from(secret).toString('hex')),
    Buffer.from(Buffer.from(secret).toString('base64')),
  ];
  return filesUnder(dir).filter((f) => {
    const content = readFileSync(f);
    return needles.some((n) => content.includes(n));
  });
}

/** A keytar double that behaves like the real one on a locked gnome-keyring (observed, see toUnavailable). */
function lockedKeytar(): KeytarLike & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    getPassword: async () => (calls.push('get'), null),
    setPassword: async () => {
      calls.push('set');
      throw new Error('Cannot create an item in a locked collection');
    },
    deletePassword: async () => (calls.push('delete'), false),
    findCredentials: async () => (calls.push('find'), []),
  };
}

/** An in-memory keytar double that works. */
function workingKeytar(): KeytarLike & { items: Map<string, string> } {
  const items = new Map<string, string>();
  const key = (s: string, a: string) => `${s}\u0000${a}`;
  return {
    items,
    getPassword: async (s, a) => items.get(key(s, a)) ?? null,
    setPassword: async (s, a, p) => void items.set(key(s, a), p),
    deletePassword: async (s, a) => items.delete(key(s, a)),
    findCredentials: async (s) =>
      [...items.entries()]
        .filter(([k]) => k.startsWith(`${s}\u0000`))
        .map(([k, password]) => ({ account: k.slice(s.length + 1), password })),
  };
}

describe('InMemorySecretStore', () => {
  it('round-trips bytes, lists by prefix, deletes, and says it keeps nothing', async () => {
    const s = createSecretStore('memory');
    expect(s).toBeInstanceOf(InMemorySecretStore);
    expect(s.kind).toBe('memory');
    expect(s.description).toMatch(/lost when the process exits/);
    const v = new Uint8Array([0, 255, 1]);
    await s.set('vm/a/1', v);
    v[0] = 7; // the store keeps its own copy
    await s.set('vm/b/1', new Uint8Array([2]));
    await s.set('token/host', new Uint8Array([3]));
    expect(await s.get('vm/a/1')).toEqual(new Uint8Array([0, 255, 1]));
    expect(await s.list('vm/')).toEqual(['vm/a/1', 'vm/b/1']);
    expect(await s.delete('vm/a/1')).toBe(true);
    expect(await s.delete('vm/a/1')).toBe(false);
    expect(await s.get('vm/a/1')).toBeUndefined();
    await expect(s.set('', new Uint8Array([1]))).rejects.toThrow(/1\.\.512/);
    await expect(s.set('vm/a/1', new Uint8Array(0))).rejects.toThrow(/non-empty/);
  });

  it('Buffers in and out are copies: wiping what get() returned leaves the stored value', async () => {
    const s = new InMemorySecretStore();
    const given = Buffer.from('disk key');
    await s.set('vm/a/1', given);
    given.fill(0);
    const got = await s.get('vm/a/1');
    got!.fill(0); // what a release does with the value once it is encrypted
    expect(Buffer.from((await s.get('vm/a/1'))!).toString()).toBe('disk key');
  });
});

describe('KeytarSecretStore with an injected keytar', () => {
  it('stores values base64 and filters the probe account out of list()', async () => {
    const k = workingKeytar();
    const s = new KeytarSecretStore({ keytar: k, service: 'svc' });
    await s.set('vm/x/g', new Uint8Array([0xde, 0xad]));
    expect(k.items.get('svc\u0000vm/x/g')).toBe('3q0=');
    expect(await s.get('missing')).toBeUndefined(); // miss → probe write succeeds
    expect(await s.list()).toEqual(['vm/x/g']);
    expect(createSecretStore('keychain').kind).toBe('keychain');
  });

  it('a locked keychain (reads answer "nothing") gives SecretStoreUnavailableError, not a silent miss', async () => {
    const k = lockedKeytar();
    const s = new KeytarSecretStore({ keytar: k });
    for (const op of [
      () => s.get('vm/a/b'),
      () => s.list(),
      () => s.delete('vm/a/b'),
      () => s.set('vm/a/b', new Uint8Array([1])),
    ]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SecretStoreUnavailableError);
      expect((err as SecretStoreUnavailableError).code).toBe('secret-store-unavailable');
      expect((err as Error).message).toMatch(
        /locked or not running .*--secret-store memory.*locked collection/,
      );
    }
  });

  it('maps D-Bus failures and a keychain that never answers to SecretStoreUnavailableError', async () => {
    const failing: KeytarLike = {
      getPassword: async () => {
        throw new Error('Could not connect: No such file or directory');
      },
      setPassword: async () => {
        throw new Error('Cannot autolaunch D-Bus without X11 $DISPLAY');
      },
      deletePassword: () => new Promise<boolean>(() => undefined),
      findCredentials: async () => [],
    };
    const s = new KeytarSecretStore({ keytar: failing, timeoutMs: 50 });
    await expect(s.get('a')).rejects.toThrow(/Could not connect/);
    await expect(s.set('a', new Uint8Array([1]))).rejects.toThrow(SecretStoreUnavailableError);
    await expect(s.delete('a')).rejects.toThrow(/did not answer a delete within 50 ms/);
  });

  it('reports an item not written by this store instead of guessing its encoding', async () => {
    const k = workingKeytar();
    k.items.set('sev-attest\u0000vm/a/b', 'not base64!');
    await expect(new KeytarSecretStore({ keytar: k }).get('vm/a/b')).rejects.toThrow(SecretFormatError);
  });
});

describe('KeytarSecretStore in a child process without a usable keychain', () => {
  let child: string;
  let dataDir: string;
  beforeAll(async () => {
    child = await bundleChild('test/helpers/secret-child.ts', 'secret-child');
    dataDir = mkdtempSync(join(tmpdir(), 'secret-nodbus-'));
  });
  afterAll(() => {
    rmSync(child, { force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
    delete env.DISPLAY;
    return env;
  }

  it('no D-Bus at the session address: every call fails with SecretStoreUnavailableError, nothing on disk', async () => {
    const secret = randomBytes(24);
    mkdirSync(join(dataDir, 'xdg-data'), { recursive: true });
    const { stdout } = await run(process.execPath, [child], {
      cwd: dataDir,
      env: childEnv({
        DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dataDir, 'no-such-bus')}`,
        XDG_DATA_HOME: join(dataDir, 'xdg-data'),
        XDG_CONFIG_HOME: join(dataDir, 'xdg-config'),
        HOME: dataDir,
        SECRET_HEX: secret.toString('hex'),
      }),
      timeout: 30_000,
    });
    const results = JSON.parse(stdout) as Array<Record<string, unknown>>;
    expect(results.map((r) => [r.what, r.ok, r.unavailable, r.code])).toEqual([
      ['set', false, true, 'secret-store-unavailable'],
      ['get', false, true, 'secret-store-unavailable'],
      ['list', false, true, 'secret-store-unavailable'],
      ['delete', false, true, 'secret-store-unavailable'],
    ]);
    expect(String(results[0]?.message)).toMatch(/Could not connect/);
    expect(filesContaining(dataDir, secret)).toEqual([]);
  });

  it.skipIf(!HAVE_DBUS_TOOLS)(
    'a Secret Service with no unlocked keyring (no prompter): reads do not pass for misses, nothing on disk',
    async () => {
      const secret = randomBytes(24);
      const xdgData = join(dataDir, 'locked-data');
      const xdgRun = join(dataDir, 'locked-run');
      mkdirSync(xdgData, { recursive: true });
      mkdirSync(xdgRun, { recursive: true, mode: 0o700 });
      const { stdout } = await run(
        '/usr/bin/dbus-run-session',
        [
          '--',
          'bash',
          '-c',
          'gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1; exec "$0" "$1"',
          process.execPath,
          child,
        ],
        {
          cwd: dataDir,
          env: childEnv({
            XDG_DATA_HOME: xdgData,
            XDG_RUNTIME_DIR: xdgRun,
            HOME: dataDir,
            SECRET_HEX: secret.toString('hex'),
          }),
          timeout: 60_000,
        },
      );
      const results = JSON.parse(stdout.trim().split('\n').at(-1) ?? '[]') as Array<Record<string, unknown>>;
      expect(results.map((r) => [r.what, r.unavailable])).toEqual([
        ['set', true],
        ['get', true],
        ['list', true],
        ['delete', true],
      ]);
      expect(filesContaining(dataDir, secret)).toEqual([]);
    },
  );
});

describe.skipIf(!HAVE_KEYRING)(`KeytarSecretStore on a real Secret Service (${KEYRING_REASON})`, () => {
  const service = `sev-attest-test-${process.pid}`;
  const store = new KeytarSecretStore({ service });
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'secret-real-'));
  });
  afterAll(async () => {
    for (const a of await store.list()) await store.delete(a);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('round-trips set / get / list / delete', async () => {
    expect(store.description).toMatch(/OS keychain/);
    await store.set('vm/a/1', new TextEncoder().encode('hunter2'));
    await store.set('vm/b/1', new Uint8Array([1]));
    await store.set('token/host', new Uint8Array([2]));
    expect(new TextDecoder().decode(await store.get('vm/a/1'))).toBe('hunter2');
    expect(await store.list('vm/')).toEqual(['vm/a/1', 'vm/b/1']);
    expect(await store.list()).toEqual(['token/host', 'vm/a/1', 'vm/b/1']);
    await store.set('vm/a/1', new Uint8Array([9]));
    expect(await store.get('vm/a/1')).toEqual(new Uint8Array([9]));
    expect(await store.delete('vm/a/1')).toBe(true);
    expect(await store.delete('vm/a/1')).toBe(false);
    expect(await store.get('vm/a/1')).toBeUndefined();
    // A second store instance (same service) sees the same items: they are in the keychain.
    expect(await new KeytarSecretStore({ service }).list()).toEqual(['token/host', 'vm/b/1']);
  });

  it('keeps binary values exactly: all 256 byte values and 4 KiB; refuses empty values', async () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const big = randomBytes(4096);
    await store.set('bin/all', all);
    await expect(store.set('bin/empty', new Uint8Array(0))).rejects.toThrow(/non-empty/);
    await store.set('bin/big', big);
    expect(await store.get('bin/all')).toEqual(all);
    expect(await store.get('bin/empty')).toBeUndefined();
    expect(Buffer.from((await store.get('bin/big')) ?? []).equals(big)).toBe(true);
  });

  it('after a full put (profile, secret, audit), the secret is in no file of the data dir or of XDG_DATA_HOME', async () => {
    const secret = randomBytes(32);
    const guid = '736869e5-84f0-4973-92ec-06879ce3da0b';
    const profiles = new ProfileStore({
      backend: createConfBackend<{ profiles: Record<string, VmProfile> }>({
        cwd: dataDir,
        configName: 'profiles',
        defaults: { profiles: {} },
      }),
    });
    profiles.put({
      id: 'vm-secret',
      name: 'secret test',
      scheme: 'amd-sev',
      policy: 1,
      cpuCounts: [1],
      firmware: { kind: 'digests', launchDigests: ['00'.repeat(32)] },
      secrets: [{ guid, kind: 'luks-passphrase' }],
    });
    await store.set(secretAccount('vm-secret', guid), secret);
    const audit = AuditLog.open({ file: join(dataDir, 'audit.jsonl') });
    audit.append({
      type: 'secret-release',
      result: 'ok',
      vmId: 'vm-secret',
      details: { guid, passphrase: secret.toString('base64'), data: Buffer.from(secret).toString('hex') },
    });
    audit.close();
    expect(await store.get(secretAccount('vm-secret', guid))).toEqual(new Uint8Array(secret));
    expect(filesUnder(dataDir).length).toBeGreaterThanOrEqual(2);
    expect(filesContaining(dataDir, secret)).toEqual([]);
    // The keyring file itself is encrypted: the value is not there in clear either.
    const xdg = process.env.XDG_DATA_HOME;
    if (xdg) expect(filesContaining(xdg, secret)).toEqual([]);
  });
});
