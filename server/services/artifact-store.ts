/**
 * Content-addressed storage of imported artifacts (firmware images, kernels ...): `dir/<sha256>`.
 * Imports stream into `dir/tmp-<random>` while hashing, fsync, then rename: a file named by a digest
 * always holds exactly those bytes, and no import holds a whole file in memory.
 * A small index (`dir/index.json`, written through temp + fsync + rename) keeps names and import times.
 * With serve --database an ArtifactReplica (server/storage/pg/artifacts.ts) shares every artifact: an
 * import is in the database before it is acknowledged, and the directory becomes this replica's copy,
 * filled from the database (syncFromReplica, ensureLocal).
 */
import { DomainError } from '../../app/errors';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFileAtomicSync } from './store-util';

export interface ArtifactInfo {
  sha256: string;
  size: number;
  name?: string;
  /** What the importer said it is ('firmware', 'kernel', 'initrd'), when it said. */
  kind?: string;
  /** ISO time of the first import. */
  importedAt: string;
}

export interface ImportOptions {
  /** A display name (default for importFile: the file's base name). */
  name?: string;
  /** What the artifact is (kept in the index next to the name). */
  kind?: string;
  /**
   * Called with the bytes copied so far (and the total, when known): after the first chunk, then at most
   * every `progressIntervalMs`, and once at the end.
   */
  onProgress?: (copied: number, total?: number) => void;
  /** Least time between two progress calls (default 100 ms). */
  progressIntervalMs?: number;
  signal?: AbortSignal;
}

export class ArtifactError extends DomainError<
  'payload-too-large' | 'artifact-not-found' | 'artifact-aborted' | 'artifact-bad-digest' | 'artifact-io'
> {
  constructor(
    code:
      'payload-too-large' | 'artifact-not-found' | 'artifact-aborted' | 'artifact-bad-digest' | 'artifact-io',
    message: string,
  ) {
    super(code, message);
    this.name = 'ArtifactError';
  }
}

/** Where artifacts are shared with other replicas (serve --database). */
export interface ArtifactReplica {
  /** Stores the file's bytes and index entry unless they are there already. */
  put(info: ArtifactInfo, file: string): Promise<void>;
  /** Writes the bytes into `file` (new); the index entry and the SHA-256 of what was written. */
  get(sha256: string, file: string): Promise<{ info: ArtifactInfo; sha256: string } | undefined>;
  list(): Promise<string[]>;
  delete(sha256: string): Promise<void>;
  rename(sha256: string, name: string): Promise<void>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const INDEX_FILE = 'index.json';
/** Bytes gathered before one writev (large writes; the socket hands over 64 KiB chunks). */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;
/** Well below IOV_MAX (1024). */
const WRITE_BATCH_CHUNKS = 512;

interface IndexEntry {
  name?: string;
  kind?: string;
  importedAt: string;
}

function assertDigest(sha256: string): void {
  if (!SHA256_HEX.test(sha256)) {
    throw new ArtifactError('artifact-bad-digest', `"${sha256}" is not a SHA-256 in lower-case hex`);
  }
}

export class ArtifactStore {
  readonly dir: string;
  private indexQueue: Promise<void> = Promise.resolve();
  private readonly replica: ArtifactReplica | undefined;
  private readonly fetching = new Map<string, Promise<boolean>>();

  constructor(options: { dir: string; replica?: ArtifactReplica }) {
    this.dir = options.dir;
    this.replica = options.replica;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Copies a file into the store (streamed, hashed on the way). */
  async importFile(path: string, options: ImportOptions = {}): Promise<ArtifactInfo> {
    let total: number;
    try {
      total = (await fsp.stat(path)).size;
    } catch (e) {
      throw new ArtifactError('artifact-io', `cannot read ${path}: ${(e as Error).message}`);
    }
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    return this.ingest(stream, { ...options, name: options.name ?? basename(path), total });
  }

  async importBytes(
    bytes: Uint8Array,
    options: { name?: string; kind?: string } = {},
  ): Promise<ArtifactInfo> {
    const tmp = this.tmpPath();
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const fh = await fsp.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return this.commit(tmp, sha256, bytes.length, options.name, options.kind);
  }

  /**
   * Stores a stream (PUT /v1/artifacts, browser uploads); aborts with 'payload-too-large' past maxBytes.
   * The source must not reuse a chunk's memory after yielding it (Node streams never do).
   */
  async importStream(
    readable: Readable | AsyncIterable<Uint8Array>,
    options: ImportOptions & { maxBytes: number },
  ): Promise<ArtifactInfo> {
    return this.ingest(readable, options);
  }

  /**
   * True once the artifact is in this replica's directory: copied from the shared database when another
   * replica imported it (serve --database); false when nobody has it.
   */
  async ensureLocal(sha256: string): Promise<boolean> {
    if (this.has(sha256)) return true;
    if (!this.replica || !SHA256_HEX.test(sha256)) return false;
    let running = this.fetching.get(sha256);
    if (!running) {
      running = this.fetchFromReplica(sha256).finally(() => this.fetching.delete(sha256));
      this.fetching.set(sha256, running);
    }
    return running;
  }

  /** Copies every shared artifact this replica lacks; returns how many were copied. */
  async syncFromReplica(): Promise<number> {
    if (!this.replica) return 0;
    let copied = 0;
    for (const sha of await this.replica.list()) {
      if (!this.has(sha) && (await this.ensureLocal(sha))) copied++;
    }
    return copied;
  }

  /** Another replica deleted an artifact: this copy goes too (the index entry with it). */
  async forgetLocal(sha256: string): Promise<void> {
    assertDigest(sha256);
    await fsp.rm(join(this.dir, sha256), { force: true });
    await this.updateIndex((index) => {
      delete index[sha256];
    });
  }

  private async fetchFromReplica(sha256: string): Promise<boolean> {
    const tmp = this.tmpPath();
    let got;
    try {
      got = await this.replica!.get(sha256, tmp);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    if (!got) {
      await fsp.rm(tmp, { force: true });
      return false;
    }
    if (got.sha256 !== sha256) {
      await fsp.rm(tmp, { force: true });
      throw new ArtifactError(
        'artifact-io',
        `the shared copy of artifact ${sha256} does not hash to its name (it hashes to ${got.sha256})`,
      );
    }
    await this.commit(tmp, sha256, got.info.size, got.info.name, got.info.kind, got.info.importedAt);
    return true;
  }

  /** Where the artifact's bytes are (whether or not it exists). */
  path(sha256: string): string {
    assertDigest(sha256);
    return join(this.dir, sha256);
  }

  has(sha256: string): boolean {
    return SHA256_HEX.test(sha256) && fs.existsSync(join(this.dir, sha256));
  }

  info(sha256: string): ArtifactInfo | undefined {
    assertDigest(sha256);
    let st: fs.Stats;
    try {
      st = fs.statSync(join(this.dir, sha256));
    } catch {
      return undefined;
    }
    const entry = this.readIndex()[sha256];
    const out: ArtifactInfo = {
      sha256,
      size: st.size,
      importedAt: entry?.importedAt ?? st.mtime.toISOString(),
    };
    if (entry?.name !== undefined) out.name = entry.name;
    if (entry?.kind !== undefined) out.kind = entry.kind;
    return out;
  }

  /** All artifacts, oldest import first. */
  list(): ArtifactInfo[] {
    const names = fs.readdirSync(this.dir).filter((n) => SHA256_HEX.test(n));
    return names
      .map((n) => this.info(n))
      .filter((i): i is ArtifactInfo => i !== undefined)
      .sort((a, b) => a.importedAt.localeCompare(b.importedAt) || a.sha256.localeCompare(b.sha256));
  }

  async delete(sha256: string): Promise<boolean> {
    assertDigest(sha256);
    let existed = true;
    try {
      await fsp.unlink(join(this.dir, sha256));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      existed = false;
    }
    await this.updateIndex((index) => {
      delete index[sha256];
    });
    if (this.replica) await this.replica.delete(sha256);
    return existed;
  }

  /** Gives the artifact a new display name (its digest, and so its identity, stays). */
  async rename(sha256: string, name: string): Promise<ArtifactInfo> {
    assertDigest(sha256);
    if (!this.has(sha256)) throw new ArtifactError('artifact-not-found', `no artifact ${sha256}`);
    await this.updateIndex((index) => {
      const prev = index[sha256];
      index[sha256] = { ...(prev ?? { importedAt: new Date().toISOString() }), name };
    });
    if (this.replica) await this.replica.rename(sha256, name);
    return this.info(sha256)!;
  }

  /** Re-hashes the stored file: true when its bytes still match its name. */
  async verify(sha256: string): Promise<boolean> {
    const hash = createHash('sha256');
    try {
      for await (const chunk of createReadStream(this.path(sha256))) hash.update(chunk as Buffer);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    return hash.digest('hex') === sha256;
  }

  /** Removes temp files left by an interrupted import (older than `olderThanMs`); returns how many. */
  removeStaleTemp(olderThanMs = 10 * 60_000): number {
    let removed = 0;
    const limit = Date.now() - olderThanMs;
    for (const n of fs.readdirSync(this.dir)) {
      if (!n.startsWith('tmp-') && !n.startsWith(`${INDEX_FILE}.tmp-`)) continue;
      const p = join(this.dir, n);
      try {
        if (fs.statSync(p).mtimeMs <= limit) {
          fs.rmSync(p, { force: true });
          removed++;
        }
      } catch {
        // Gone already.
      }
    }
    return removed;
  }

  /** A fresh temp path inside the store, for a writer outside this class (the import worker). */
  newTempPath(): string {
    return this.tmpPath();
  }

  /**
   * Commits a temp file from newTempPath() whose SHA-256 and size the writer computed from the very bytes
   * it wrote (streamed once, e.g. in a worker thread); the caller must have fsynced it.
   */
  async commitTemp(
    tmp: string,
    sha256: string,
    size: number,
    name?: string,
    kind?: string,
  ): Promise<ArtifactInfo> {
    assertDigest(sha256);
    if (dirname(tmp) !== this.dir || !basename(tmp).startsWith('tmp-')) {
      throw new ArtifactError('artifact-io', `${tmp} is not a temp file of this artifact store`);
    }
    return this.commit(tmp, sha256, size, name, kind);
  }

  private tmpPath(): string {
    return join(this.dir, `tmp-${randomBytes(8).toString('hex')}`);
  }

  private async ingest(
    source: Readable | AsyncIterable<Uint8Array>,
    options: ImportOptions & { maxBytes?: number; total?: number },
  ): Promise<ArtifactInfo> {
    const tmp = this.tmpPath();
    const hash = createHash('sha256');
    let size = 0;
    const fh = await fsp.open(tmp, 'wx', 0o600);
    let ok = false;
    // Chunks are hashed as they arrive and written in batches (one writev of up to WRITE_BATCH_BYTES, no
    // copy) while the next batch is read and hashed: one write in flight, one fsync at the end.
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let written = 0;
    let writing: Promise<void> = Promise.resolve();
    const flush = async () => {
      await writing;
      const bufs = batch;
      const at = written;
      written += batchBytes;
      batch = [];
      batchBytes = 0;
      writing = writeAllAt(fh, bufs, at);
    };
    const progressEvery = options.progressIntervalMs ?? 100;
    let lastProgress = -Infinity;
    try {
      options.signal?.throwIfAborted();
      for await (const chunk of source) {
        if (options.signal?.aborted) throw new ArtifactError('artifact-aborted', 'the import was cancelled');
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
        if (bytes.length === 0) continue;
        size += bytes.length;
        if (options.maxBytes !== undefined && size > options.maxBytes) {
          throw new ArtifactError(
            'payload-too-large',
            `the artifact is larger than the limit of ${options.maxBytes} bytes`,
          );
        }
        hash.update(bytes);
        batch.push(bytes);
        batchBytes += bytes.length;
        if (batchBytes >= WRITE_BATCH_BYTES || batch.length >= WRITE_BATCH_CHUNKS) await flush();
        if (options.onProgress) {
          const now = performance.now();
          if (now - lastProgress >= progressEvery) {
            lastProgress = now;
            options.onProgress(size, options.total);
          }
        }
      }
      if (batchBytes > 0) await flush();
      await writing;
      await fh.sync();
      options.onProgress?.(size, options.total);
      ok = true;
    } catch (e) {
      // A failed write must not surface later as an unhandled rejection.
      await writing.catch(() => undefined);
      if (options.signal?.aborted || isAbort(e))
        throw new ArtifactError('artifact-aborted', 'the import was cancelled');
      throw e;
    } finally {
      await fh.close();
      if (!ok) {
        await fsp.rm(tmp, { force: true });
        if ('destroy' in source && typeof source.destroy === 'function') source.destroy();
      }
    }
    return this.commit(tmp, hash.digest('hex'), size, options.name, options.kind);
  }

  private async commit(
    tmp: string,
    sha256: string,
    size: number,
    name: string | undefined,
    kind?: string,
    /** Set when the bytes came from the shared database (not shared again; its import time kept). */
    sharedImportedAt?: string,
  ): Promise<ArtifactInfo> {
    const target = join(this.dir, sha256);
    // Same digest, same bytes: an existing file is kept (its import time too).
    if (fs.existsSync(target)) await fsp.rm(tmp, { force: true });
    else {
      await fsp.rename(tmp, target);
      fsyncDir(this.dir);
    }
    const time = sharedImportedAt ?? new Date().toISOString();
    await this.updateIndex((index) => {
      const prev = index[sha256];
      index[sha256] = {
        importedAt: prev?.importedAt ?? time,
        ...(name !== undefined ? { name } : prev?.name !== undefined ? { name: prev.name } : {}),
        ...(kind !== undefined ? { kind } : prev?.kind !== undefined ? { kind: prev.kind } : {}),
      };
    });
    const info = this.info(sha256);
    if (!info || info.size !== size)
      throw new ArtifactError('artifact-io', `artifact ${sha256} vanished while importing`);
    // Shared before the import is acknowledged: a profile built from it validates on every replica.
    if (this.replica && sharedImportedAt === undefined) await this.replica.put(info, target);
    return info;
  }

  private readIndex(): Record<string, IndexEntry> {
    try {
      const parsed: unknown = JSON.parse(readFileSync(join(this.dir, INDEX_FILE), 'utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
      const out: Record<string, IndexEntry> = {};
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        if (!SHA256_HEX.test(k) || typeof v !== 'object' || v === null) continue;
        const e = v as Record<string, unknown>;
        if (typeof e.importedAt !== 'string') continue;
        out[k] = {
          importedAt: e.importedAt,
          ...(typeof e.name === 'string' ? { name: e.name } : {}),
          ...(typeof e.kind === 'string' ? { kind: e.kind } : {}),
        };
      }
      return out;
    } catch {
      // No index (or an unreadable one): names are a convenience, the digests are the truth.
      return {};
    }
  }

  /** Index updates are serialized: two imports never lose each other's entry. */
  private updateIndex(mutate: (index: Record<string, IndexEntry>) => void): Promise<void> {
    const run = this.indexQueue.then(() => {
      const index = this.readIndex();
      mutate(index);
      writeFileAtomicSync(join(this.dir, INDEX_FILE), `${JSON.stringify(index, null, 1)}\n`);
    });
    this.indexQueue = run.catch(() => undefined);
    return run;
  }
}

/** Writes every buffer at `position` onwards, continuing after a short write. */
async function writeAllAt(fh: FileHandle, bufs: Uint8Array[], position: number): Promise<void> {
  let pending = bufs;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, at);
    if (bytesWritten === 0) throw new ArtifactError('artifact-io', 'the disk accepted no more bytes');
    at += bytesWritten;
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of pending) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    pending = rest;
  }
}

function isAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AbortError' || (e as NodeJS.ErrnoException).code === 'ABORT_ERR');
}
