import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArtifactProgress } from '../../app/contract/ipc';
import { ArtifactImportService } from './artifact-import';
import { ArtifactStore } from './artifact-store';

const AMDSEV = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_OvmfX64_suffix.bin');
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';

let dir: string;
let store: ArtifactStore;
let imports: ArtifactImportService;
let big: string;
const progress: ArtifactProgress[] = [];

const sha256Of = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

beforeAll(() => {
  dir = fs.mkdtempSync(join(os.tmpdir(), 'artifact-import-'));
  store = new ArtifactStore({ dir: join(dir, 'store') });
  imports = new ArtifactImportService({ store, chunkSize: 256 * 1024 });
  imports.subscribe((p) => progress.push(p));
  big = join(dir, 'initrd.img');
  // 48 MiB of random bytes, written in pieces.
  const fd = fs.openSync(big, 'w');
  for (let i = 0; i < 48; i++) fs.writeSync(fd, randomBytes(1024 * 1024));
  fs.closeSync(fd);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const tempsLeft = () => fs.readdirSync(store.dir).filter((n) => n.startsWith('tmp-'));

describe('artifacts:import / inspect / list / cancelImport', () => {
  it('imports the AmdSev firmware: SHA-256 of the file, size, capabilities; progress ends with done', async () => {
    const r = await imports.import({ importId: 'fw1', path: AMDSEV, kind: 'firmware' });
    expect(r.sha256).toBe(sha256Of(AMDSEV));
    expect(r.size).toBe(fs.statSync(AMDSEV).size);
    expect(r.kind).toBe('firmware');
    expect(r.name).toBe('ovmf_AmdSev_suffix.bin');
    expect(r.firmware?.sevEsResetAddress.ok).toBe(true);
    expect(r.firmware?.sevEsResetAddress.address).toBeGreaterThan(0);
    expect(r.firmware?.measuredDirectBoot.ok).toBe(true);
    expect(r.firmware?.secretArea).toMatchObject({ ok: true, size: expect.any(Number) });
    expect(fs.readFileSync(store.path(r.sha256))).toEqual(fs.readFileSync(AMDSEV));
    const mine = progress.filter((p) => p.importId === 'fw1');
    expect(mine.at(-1)).toMatchObject({ phase: 'done', bytes: r.size });
    expect(tempsLeft()).toEqual([]);
  });

  it('a generic OVMF (and Debian OVMF.fd when installed) gets the plain no-secret-area warning', async () => {
    const r = await imports.import({ importId: 'fw2', path: OVMFX64, kind: 'firmware' });
    expect(r.firmware?.secretArea.ok).toBe(false);
    expect(r.firmware?.secretArea.reason).toContain('cannot inject');
    expect(r.firmware?.measuredDirectBoot.ok).toBe(false);
    if (fs.existsSync(DEBIAN_OVMF)) {
      const d = await imports.import({ importId: 'debian', path: DEBIAN_OVMF, kind: 'firmware' });
      expect(d.firmware?.secretArea.ok).toBe(false);
      expect(d.firmware?.secretArea.reason).toContain("Debian's OVMF.fd");
    }
  });

  it('a file that is not OVMF is refused as firmware before it is read; a missing path is artifact-io', async () => {
    await expect(imports.import({ importId: 'bad', path: big, kind: 'firmware' })).rejects.toMatchObject({
      code: 'bad-format',
    });
    await expect(
      imports.import({ importId: 'gone', path: join(dir, 'nope'), kind: 'kernel' }),
    ).rejects.toMatchObject({ code: 'artifact-io' });
    expect(progress.filter((p) => p.importId === 'bad').at(-1)?.phase).toBe('error');
  });

  it('a large import hashes in the worker: same digest, the main event loop stays responsive', async () => {
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const r = await imports.import({ importId: 'big', path: big, kind: 'initrd' });
    h.disable();
    expect(r.sha256).toBe(sha256Of(big));
    expect(r.kind).toBe('initrd');
    expect(r.firmware).toBeUndefined();
    // Generous bound for a shared 2-core machine; the benchmark reports the real figure.
    expect(h.max / 1e6).toBeLessThan(250);
    const hashing = progress.filter((p) => p.importId === 'big' && p.phase === 'hashing');
    expect(hashing.length).toBeGreaterThan(1);
    expect(hashing.every((p, i) => i === 0 || p.bytes >= hashing[i - 1]!.bytes)).toBe(true);
  });

  it('cancel stops the worker: rejects with cancelled, no artifact and no temp file stay', async () => {
    const copy = join(dir, 'initrd-2.img');
    fs.copyFileSync(big, copy);
    fs.appendFileSync(copy, 'different');
    const before = store.list().length;
    const started = imports.import({ importId: 'c1', path: copy, kind: 'initrd' });
    await new Promise<void>((resolve) => {
      const off = imports.subscribe((p) => {
        if (p.importId === 'c1' && p.phase === 'hashing') {
          off();
          resolve();
        }
      });
    });
    await expect(imports.import({ importId: 'c1', path: copy, kind: 'initrd' })).rejects.toMatchObject({
      code: 'import-in-progress',
    });
    imports.cancel('c1');
    await expect(started).rejects.toMatchObject({ code: 'cancelled' });
    expect(progress.filter((p) => p.importId === 'c1').at(-1)?.phase).toBe('cancelled');
    expect(store.list().length).toBe(before);
    expect(tempsLeft()).toEqual([]);
    expect(imports.running).toBe(0);
    imports.cancel('c1'); // finished: a no-op
  });

  it('list and inspect: kinds and firmware recognised; an unknown digest is artifact-not-found', async () => {
    const list = await imports.list();
    const byName = new Map(list.map((a) => [a.name, a]));
    expect(byName.get('ovmf_AmdSev_suffix.bin')?.kind).toBe('firmware');
    expect(byName.get('initrd.img')?.kind).toBe('initrd');
    // A fresh service (another session) still recognises firmware by its footer.
    const fresh = new ArtifactImportService({ store });
    const again = await fresh.inspect(sha256Of(AMDSEV));
    expect(again.kind).toBe('firmware');
    expect(again.firmware?.secretArea.ok).toBe(true);
    // The kind chosen at import is kept in the store's index, so another session knows it too.
    expect((await fresh.inspect(sha256Of(big))).kind).toBe('initrd');
    expect(store.info(sha256Of(big))).toMatchObject({ name: 'initrd.img', kind: 'initrd' });
    await expect(imports.inspect('0'.repeat(64))).rejects.toMatchObject({ code: 'artifact-not-found' });
    await expect(store.commitTemp(big, sha256Of(big), 1)).rejects.toMatchObject({ code: 'artifact-io' });
  });
});

describe('importUpload (browser mode)', () => {
  it('stores the stream under its name and kind; firmware gets its capabilities; progress is throttled', async () => {
    const bytes = fs.readFileSync(AMDSEV);
    // 4 KiB pieces: hundreds of chunks, yet only a few progress reports.
    const pieces = Array.from({ length: Math.ceil(bytes.length / 4096) }, (_, i) =>
      bytes.subarray(i * 4096, (i + 1) * 4096),
    );
    const r = await imports.importUpload(
      (async function* () {
        yield* pieces;
      })(),
      { importId: 'up1', kind: 'firmware', name: 'OVMF.amdsev.fd', size: bytes.length, maxBytes: 1 << 30 },
    );
    expect(r).toMatchObject({ sha256: sha256Of(AMDSEV), name: 'OVMF.amdsev.fd', kind: 'firmware' });
    expect(r.firmware?.secretArea.ok).toBe(true);
    const mine = progress.filter((p) => p.importId === 'up1');
    expect(mine.at(-1)).toMatchObject({ phase: 'done', bytes: bytes.length, total: bytes.length });
    expect(mine.filter((p) => p.phase === 'hashing').length).toBeLessThan(10);
    expect((await imports.list()).find((a) => a.sha256 === r.sha256)?.name).toBe('OVMF.amdsev.fd');
  });

  it('past maxBytes: payload-too-large with the limit in words, nothing stored', async () => {
    const before = store.list().length;
    const err = await imports
      .importUpload(
        (async function* () {
          for (let i = 0; i < 5; i++) yield Buffer.alloc(1024 * 1024, i);
        })(),
        { importId: 'up2', kind: 'initrd', name: 'big.img', maxBytes: 4 * 1024 * 1024 },
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'payload-too-large',
      message: 'artifacts are limited to 4 MiB (4194304 bytes)',
    });
    expect(progress.filter((p) => p.importId === 'up2').at(-1)?.phase).toBe('error');
    expect(store.list().length).toBe(before);
    expect(tempsLeft()).toEqual([]);
  });

  it('cancel(importId) stops an upload being stored', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const started = imports.importUpload(
      (async function* () {
        yield Buffer.alloc(1024, 1);
        await gate;
        yield Buffer.alloc(1024, 2);
      })(),
      { importId: 'up3', kind: 'initrd', name: 'slow.img', maxBytes: 1 << 20 },
    );
    await new Promise((r) => setTimeout(r, 20));
    imports.cancel('up3');
    release();
    await expect(started).rejects.toMatchObject({ code: 'cancelled' });
    expect(progress.filter((p) => p.importId === 'up3').at(-1)?.phase).toBe('cancelled');
    expect(tempsLeft()).toEqual([]);
    expect(imports.running).toBe(0);
  });
});

describe('what an artifact is checked to be', () => {
  const PNG = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    randomBytes(2048),
  ]);
  const upload = (bytes: Buffer, kind: 'firmware' | 'kernel' | 'initrd', importId: string) =>
    imports
      .importUpload(
        (async function* () {
          if (bytes.length > 0) yield bytes;
        })(),
        { importId, kind, name: `${importId}.bin`, size: bytes.length, maxBytes: 1 << 30 },
      )
      .catch((e: unknown) => e);

  it('an upload of a PNG, an empty file or random bytes is not a firmware, and is not kept', async () => {
    const before = store.list().length;
    expect(await upload(PNG, 'firmware', 'png')).toMatchObject({
      code: 'bad-format',
      message: expect.stringMatching(/^not a usable firmware image \(it is a PNG image\)/),
    });
    expect(await upload(Buffer.alloc(0), 'firmware', 'empty')).toMatchObject({
      code: 'bad-format',
      message: 'the file is empty',
    });
    expect(await upload(randomBytes(64 * 1024), 'firmware', 'random')).toMatchObject({ code: 'bad-format' });
    expect(store.list().length).toBe(before);
  });

  it('a file import checks kernels and initrds too', async () => {
    const png = join(dir, 'picture.png');
    fs.writeFileSync(png, PNG);
    await expect(imports.import({ importId: 'k1', path: png, kind: 'kernel' })).rejects.toMatchObject({
      code: 'bad-format',
      message: expect.stringMatching(/^not a Linux kernel image \(it is a PNG image\)/),
    });
    await expect(imports.import({ importId: 'i1', path: png, kind: 'initrd' })).rejects.toMatchObject({
      code: 'bad-format',
      message: 'not an initrd (it is a PNG image)',
    });
    const empty = join(dir, 'empty.img');
    fs.writeFileSync(empty, '');
    await expect(imports.import({ importId: 'i2', path: empty, kind: 'initrd' })).rejects.toMatchObject({
      message: 'the file is empty',
    });
    const bz = Buffer.alloc(4096);
    bz.write('HdrS', 0x202, 'latin1');
    const kernel = join(dir, 'vmlinuz');
    fs.writeFileSync(kernel, bz);
    await expect(imports.import({ importId: 'k2', path: kernel, kind: 'kernel' })).resolves.toMatchObject({
      kind: 'kernel',
    });
  });
});
