import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArtifactError, ArtifactStore } from './artifact-store';

let dir: string;
let store: ArtifactStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'artifacts-'));
  store = new ArtifactStore({ dir: join(dir, 'store') });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tmpFiles = () => readdirSync(store.dir).filter((n) => n.includes('tmp-'));

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArtifactError);
  expect((err as ArtifactError).code).toBe(code);
}

describe('ArtifactStore', () => {
  it('imports a file by streaming: content-addressed, named, with progress', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const src = join(dir, 'OVMF.fd');
    writeFileSync(src, bytes);
    const progress: Array<[number, number | undefined]> = [];
    const info = await store.importFile(src, { onProgress: (c, t) => progress.push([c, t]) });
    expect(info).toMatchObject({ sha256: sha(bytes), size: bytes.length, name: 'OVMF.fd' });
    expect(readFileSync(store.path(info.sha256)).equals(bytes)).toBe(true);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([bytes.length, bytes.length]);
    expect(store.has(info.sha256)).toBe(true);
    expect(await store.verify(info.sha256)).toBe(true);
    expect(tmpFiles()).toEqual([]);
    // Another instance reads the same index.
    expect(new ArtifactStore({ dir: store.dir }).info(info.sha256)).toEqual(info);
  });

  it('imports bytes; a second import of the same content keeps the first import time', async () => {
    const bytes = new TextEncoder().encode('kernel');
    const a = await store.importBytes(bytes, { name: 'vmlinuz' });
    await new Promise((r) => setTimeout(r, 5));
    const b = await store.importBytes(bytes);
    expect(b).toEqual(a);
    expect(store.list()).toEqual([a]);
  });

  it('imports a stream and refuses one past maxBytes, leaving no temp file', async () => {
    const ok = await store.importStream(Readable.from([Buffer.from('abc'), Buffer.from('def')]), {
      maxBytes: 6,
    });
    expect(ok.sha256).toBe(sha(Buffer.from('abcdef')));
    const big = Readable.from(
      (function* () {
        for (let i = 0; i < 100; i++) yield Buffer.alloc(1024, i);
      })(),
    );
    const err = await store.importStream(big, { maxBytes: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArtifactError);
    expect((err as ArtifactError).code).toBe('payload-too-large');
    expect((err as Error).message).toMatch(/larger than the limit of 10000 bytes/);
    expect(tmpFiles()).toEqual([]);
    expect(store.list().map((i) => i.sha256)).toEqual([ok.sha256]);
  });

  it('cancels an import through its AbortSignal', async () => {
    const ac = new AbortController();
    const src = Readable.from(
      (async function* () {
        yield Buffer.alloc(1024);
        ac.abort();
        yield Buffer.alloc(1024);
      })(),
    );
    await expectCode(store.importStream(src, { maxBytes: 1 << 20, signal: ac.signal }), 'artifact-aborted');
    expect(tmpFiles()).toEqual([]);
  });

  it('deletes, lists and rejects bad digests clearly', async () => {
    const a = await store.importBytes(new Uint8Array([1]), { name: 'one' });
    const b = await store.importBytes(new Uint8Array([2]), { name: 'two' });
    expect(
      store
        .list()
        .map((i) => i.name)
        .sort(),
    ).toEqual(['one', 'two']);
    expect(await store.delete(a.sha256)).toBe(true);
    expect(await store.delete(a.sha256)).toBe(false);
    expect(store.has(a.sha256)).toBe(false);
    expect(store.info(a.sha256)).toBeUndefined();
    expect(store.list().map((i) => i.sha256)).toEqual([b.sha256]);
    expect(() => store.path('../etc/passwd')).toThrow(/not a SHA-256/);
    expect(store.has('../x')).toBe(false);
    await expectCode(store.importFile(join(dir, 'missing.fd')), 'artifact-io');
  });

  it('verify() notices a file whose bytes no longer match its name', async () => {
    const a = await store.importBytes(new Uint8Array([1, 2, 3]));
    writeFileSync(store.path(a.sha256), 'tampered');
    expect(await store.verify(a.sha256)).toBe(false);
  });

  it('parallel imports all land in the index', async () => {
    const infos = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.importBytes(new Uint8Array([i, i]), { name: `n${i}` })),
    );
    const fresh = new ArtifactStore({ dir: store.dir });
    expect(
      fresh
        .list()
        .map((i) => i.name)
        .sort(),
    ).toEqual(infos.map((i) => i.name).sort());
  });

  it('removes stale temp files from interrupted imports', () => {
    writeFileSync(join(store.dir, 'tmp-deadbeef'), 'partial');
    expect(store.removeStaleTemp(0)).toBe(1);
    expect(existsSync(join(store.dir, 'tmp-deadbeef'))).toBe(false);
  });

  it('stores a stream of many odd-sized chunks byte for byte (batched writes, one fsync)', async () => {
    // 0..70 KiB chunks, some empty, over 9 MiB: several write batches, a partial one at the end.
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = 0; total < 9 * 1024 * 1024 + 5; i++) {
      const b = randomBytes((i * 7919) % (70 * 1024));
      parts.push(b);
      total += b.length;
    }
    const all = Buffer.concat(parts);
    const calls: number[] = [];
    const info = await store.importStream(Readable.from(parts), {
      maxBytes: total,
      name: 'initrd.img',
      kind: 'initrd',
      onProgress: (c) => calls.push(c),
      progressIntervalMs: 60_000,
    });
    expect(info).toMatchObject({ sha256: sha(all), size: all.length, name: 'initrd.img', kind: 'initrd' });
    expect(readFileSync(store.path(info.sha256)).equals(all)).toBe(true);
    // Throttled: the first chunk and the end, nothing in between within a minute.
    expect(calls).toEqual([parts.find((p) => p.length > 0)!.length, all.length]);
    expect(tmpFiles()).toEqual([]);
  });

  it('keeps the kind and name in the index across instances; a re-import without them keeps both', async () => {
    const a = await store.importBytes(new Uint8Array([9, 9, 9]), { name: 'vmlinuz', kind: 'kernel' });
    await store.importStream(Readable.from([Buffer.from([9, 9, 9])]), { maxBytes: 10 });
    expect(new ArtifactStore({ dir: store.dir }).info(a.sha256)).toMatchObject({
      name: 'vmlinuz',
      kind: 'kernel',
    });
  });

  it('a failing source leaves no temp file and no artifact', async () => {
    const src = Readable.from(
      (async function* () {
        yield Buffer.alloc(5 * 1024 * 1024, 1); // one full write batch in flight
        throw Object.assign(new Error('the browser went away'), { code: 'ECONNRESET' });
      })(),
    );
    await expect(store.importStream(src, { maxBytes: 1 << 30 })).rejects.toThrow('the browser went away');
    expect(tmpFiles()).toEqual([]);
    expect(store.list()).toEqual([]);
  });
});
