/**
 * `artifacts:import` / `cancelImport` / `inspect` / `list`: imports a file into the ArtifactStore with
 * the reading, SHA-256 and copying done in a worker thread, so the main process's event loop (Electron's
 * main process, or `serve --ui`) never blocks on a large initrd. The worker streams the file once: each
 * chunk is hashed and written to a temp file inside the store; main then commits that file under its
 * digest (ArtifactStore.commitTemp). Progress is pushed as `artifacts:progress`; a cancel sets a shared
 * flag the worker checks per chunk (and terminates it if it does not stop).
 *
 * The worker is a string evaluated with `new Worker(code, { eval: true })` using node built-ins only, so
 * it needs no separate file in any bundle (vitest, esbuild's dist/ CLI, electron-vite).
 */
import { DomainError, type ErrorCode } from '../../app/errors';
import { promises as fsp } from 'node:fs';
import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  ARTIFACT_KINDS,
  type ArtifactImportRequest,
  type ArtifactInspection,
  type ArtifactKind,
  type ArtifactProgress,
  type ArtifactSummary,
  type FirmwareCapabilities,
} from '../../app/artifacts';
import {
  hasSecretArea,
  hasSevEsResetAddress,
  readFirmwareFooter,
  supportsMeasuredDirectBoot,
  type OvmfFooterInfo,
} from '../../app/digest/ovmf';
import { isSevError } from '../../app/sev/errors';
import { ArtifactError, type ArtifactInfo, type ArtifactStore } from './artifact-store';
import { describeBytes } from './owner-service';

/** A coded error for the UI ('cancelled', 'import-in-progress', 'bad-format' ...). */
export class ImportError extends DomainError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ImportError';
  }
}

/**
 * The worker: read `src` in chunks, hash each, write it to `dst` (created exclusively, 0600), fsync.
 * Posts {type:'progress', bytes, total} at most every 50 ms, then {type:'done', sha256, size} or
 * {type:'error', code, message}. Stops with 'cancelled' when flag[0] becomes 1.
 */
export const IMPORT_WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fsp = require('node:fs/promises');
const { src, dst, chunkSize, flag } = workerData;
const cancelled = new Int32Array(flag);
(async () => {
  let inH, outH;
  try {
    inH = await fsp.open(src, 'r');
    const total = (await inH.stat()).size;
    outH = await fsp.open(dst, 'wx', 0o600);
    const hash = createHash('sha256');
    // Three buffers: the next read and the previous write run on the thread pool while this chunk is hashed.
    const bufs = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
    const writeAll = async (buf, n, at) => {
      let off = 0;
      while (off < n) off += (await outH.write(buf, off, n - off, at + off)).bytesWritten;
    };
    let size = 0, last = 0, i = 0;
    let reading = inH.read(bufs[0], 0, chunkSize, 0);
    let writing = Promise.resolve();
    parentPort.postMessage({ type: 'progress', bytes: 0, total });
    for (;;) {
      const n = (await reading).bytesRead;
      if (Atomics.load(cancelled, 0) === 1) throw Object.assign(new Error('the import was cancelled'), { code: 'cancelled' });
      if (n === 0) break;
      const cur = bufs[i % 3];
      reading = inH.read(bufs[(i + 1) % 3], 0, chunkSize, size + n);
      hash.update(cur.subarray(0, n));
      await writing;
      writing = writeAll(cur, n, size);
      size += n;
      i++;
      const now = Date.now();
      if (now - last >= 50) { last = now; parentPort.postMessage({ type: 'progress', bytes: size, total: Math.max(total, size) }); }
    }
    await writing;
    await outH.sync();
    parentPort.postMessage({ type: 'done', sha256: hash.digest('hex'), size });
  } catch (e) {
    parentPort.postMessage({ type: 'error', code: (e && e.code) || 'io', message: String((e && e.message) || e) });
  } finally {
    if (inH) await inH.close().catch(() => {});
    if (outH) await outH.close().catch(() => {});
  }
})();
`;

type WorkerMessage =
  | { type: 'progress'; bytes: number; total: number }
  | { type: 'done'; sha256: string; size: number }
  | { type: 'error'; code: string; message: string };

interface Job {
  flag: Int32Array;
  worker?: Worker;
  /** Stops an upload being stored (browser mode). */
  abort?: AbortController;
  cancelled: boolean;
}

/** A browser upload to store (server/web/ui-server.ts PUT /ui/upload). */
export interface UploadRequest {
  importId: string;
  kind: ArtifactKind;
  /** The browser file's name, already checked (uploadName). */
  name: string;
  /** The declared length, when the browser sent one. */
  size?: number;
  maxBytes: number;
}

function isArtifactKind(k: string | undefined): k is ArtifactKind {
  return k !== undefined && (ARTIFACT_KINDS as readonly string[]).includes(k);
}

export interface ArtifactImportOptions {
  store: ArtifactStore;
  /** Read size in the worker (default 4 MiB). */
  chunkSize?: number;
}

type ProgressListener = (p: ArtifactProgress) => void;

/** What an OVMF footer says the firmware supports, as the UI shows it. */
export function firmwareCapabilities(footer: OvmfFooterInfo): FirmwareCapabilities {
  const es = hasSevEsResetAddress(footer);
  const secret = hasSecretArea(footer);
  return {
    sevEsResetAddress: {
      ...es,
      ...(footer.resetAddress !== undefined ? { address: footer.resetAddress } : {}),
    },
    measuredDirectBoot: supportsMeasuredDirectBoot(footer),
    secretArea: {
      ...secret,
      ...(secret.ok && footer.secretArea
        ? { base: footer.secretArea.base, size: footer.secretArea.size }
        : {}),
    },
  };
}

/** Imports, cancels, lists and inspects artifacts for the UI. */
export class ArtifactImportService {
  private readonly jobs = new Map<string, Job>();
  private readonly listeners = new Set<ProgressListener>();
  /** Kinds chosen at import (this session; firmware is also recognised by its footer). */
  private readonly kinds = new Map<string, ArtifactKind>();
  /** Footer per artifact (null: not a firmware); artifacts are immutable, so this never goes stale. */
  private readonly footers = new Map<string, OvmfFooterInfo | null>();
  private readonly chunkSize: number;

  constructor(private readonly opts: ArtifactImportOptions) {
    this.chunkSize = Math.max(64 * 1024, opts.chunkSize ?? 4 * 1024 * 1024);
  }

  /** Live progress of every import. Returns the unsubscribe function. */
  subscribe(fn: ProgressListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Imports `path`: hashed and copied in a worker; resolves with the stored artifact's inspection. */
  async import(req: ArtifactImportRequest): Promise<ArtifactInspection> {
    const { importId, path, kind } = req;
    if (this.jobs.has(importId)) {
      throw new ImportError('import-in-progress', `an import with id ${importId} is running already`);
    }
    const job: Job = { flag: new Int32Array(new SharedArrayBuffer(4)), cancelled: false };
    this.jobs.set(importId, job);
    let total = 0;
    try {
      let st;
      try {
        st = await fsp.stat(path);
      } catch (e) {
        throw new ArtifactError('artifact-io', `cannot read ${path}: ${(e as Error).message}`);
      }
      if (!st.isFile()) throw new ArtifactError('artifact-io', `${path} is not a regular file`);
      total = st.size;
      let footer: OvmfFooterInfo | undefined;
      if (kind === 'firmware') {
        // A file that is not OVMF fails before it is read in full.
        try {
          footer = (await readFirmwareFooter(path)).footer;
        } catch (e) {
          throw new ImportError(
            'bad-format',
            `not a usable firmware image: ${isSevError(e) ? e.message : String(e)}`,
          );
        }
      }
      if (job.cancelled) throw new ImportError('cancelled', 'the import was cancelled');
      const stored = await this.hashAndCopy(importId, job, path, kind);
      this.kinds.set(stored.sha256, kind);
      if (footer) this.footers.set(stored.sha256, footer);
      this.emit({ importId, phase: 'done', bytes: stored.size, total: stored.size });
      return await this.inspect(stored.sha256);
    } catch (e) {
      const cancelled = job.cancelled || (e instanceof ImportError && e.code === 'cancelled');
      this.emit({
        importId,
        phase: cancelled ? 'cancelled' : 'error',
        bytes: 0,
        total,
        message: cancelled ? 'cancelled' : e instanceof Error ? e.message : String(e),
      });
      if (cancelled) throw new ImportError('cancelled', 'the import was cancelled');
      throw e;
    } finally {
      this.jobs.delete(importId);
    }
  }

  /**
   * Stores an upload (browser mode): hashed and written as it streams in (ArtifactStore.importStream),
   * with 'hashing' progress at most every 100 ms; cancel(importId) stops it. Resolves with the inspection.
   */
  async importUpload(body: AsyncIterable<Uint8Array>, req: UploadRequest): Promise<ArtifactInspection> {
    const { importId, kind, name, maxBytes } = req;
    if (this.jobs.has(importId)) {
      throw new ImportError('import-in-progress', `an import with id ${importId} is running already`);
    }
    const abort = new AbortController();
    const job: Job = { flag: new Int32Array(new SharedArrayBuffer(4)), abort, cancelled: false };
    this.jobs.set(importId, job);
    const declared = req.size ?? 0;
    try {
      const stored = await this.opts.store.importStream(body, {
        maxBytes,
        name,
        kind,
        signal: abort.signal,
        onProgress: (bytes) =>
          this.emit({ importId, phase: 'hashing', bytes, total: Math.max(declared, bytes) }),
      });
      this.kinds.set(stored.sha256, kind);
      this.emit({ importId, phase: 'done', bytes: stored.size, total: stored.size });
      return await this.inspect(stored.sha256);
    } catch (e) {
      const cancelled = job.cancelled || (e instanceof ArtifactError && e.code === 'artifact-aborted');
      const tooLarge = e instanceof ArtifactError && e.code === 'payload-too-large';
      const err = cancelled
        ? new ImportError('cancelled', 'the import was cancelled')
        : tooLarge
          ? new ImportError('payload-too-large', `artifacts are limited to ${describeBytes(maxBytes)}`)
          : e;
      this.emit({
        importId,
        phase: cancelled ? 'cancelled' : 'error',
        bytes: 0,
        total: declared,
        message: cancelled ? 'cancelled' : err instanceof Error ? err.message : String(err),
      });
      throw err;
    } finally {
      this.jobs.delete(importId);
    }
  }

  /** Cancels a running import (no-op when it finished or never existed). */
  cancel(importId: string): void {
    const job = this.jobs.get(importId);
    if (!job) return;
    job.cancelled = true;
    Atomics.store(job.flag, 0, 1);
    job.abort?.abort();
    // A worker stuck in one slow read is stopped anyway after a grace period.
    const w = job.worker;
    if (w) setTimeout(() => void w.terminate(), 2000).unref();
  }

  /** How many imports are running. */
  get running(): number {
    return this.jobs.size;
  }

  /** The artifact and, for a firmware image, what it supports (reads only the image's tail). */
  async inspect(sha256: string): Promise<ArtifactInspection> {
    const info = this.opts.store.info(sha256);
    if (!info) throw new ArtifactError('artifact-not-found', `no artifact ${sha256}`);
    const summary = await this.summary(info);
    const footer = this.footers.get(sha256);
    return footer ? { ...summary, firmware: firmwareCapabilities(footer) } : summary;
  }

  /** Every artifact, oldest import first. */
  async list(): Promise<ArtifactSummary[]> {
    return Promise.all(this.opts.store.list().map((i) => this.summary(i)));
  }

  private async summary(info: ArtifactInfo): Promise<ArtifactSummary> {
    let footer = this.footers.get(info.sha256);
    if (footer === undefined) {
      footer = await readFirmwareFooter(this.opts.store.path(info.sha256)).then(
        (r) => r.footer,
        () => null,
      );
      this.footers.set(info.sha256, footer);
    }
    const stored = isArtifactKind(info.kind) ? info.kind : undefined;
    const kind = this.kinds.get(info.sha256) ?? stored ?? (footer ? 'firmware' : undefined);
    return {
      sha256: info.sha256,
      size: info.size,
      name: info.name ?? info.sha256.slice(0, 12),
      ...(kind ? { kind } : {}),
      importedAt: info.importedAt,
    };
  }

  private async hashAndCopy(
    importId: string,
    job: Job,
    path: string,
    kind: ArtifactKind,
  ): Promise<ArtifactInfo> {
    const store = this.opts.store;
    const tmp = store.newTempPath();
    let result: { sha256: string; size: number };
    try {
      result = await new Promise((resolve, reject) => {
        const worker = new Worker(IMPORT_WORKER_SOURCE, {
          eval: true,
          workerData: { src: path, dst: tmp, chunkSize: this.chunkSize, flag: job.flag.buffer },
        });
        job.worker = worker;
        let settled = false;
        const settle = (f: () => void) => {
          if (settled) return;
          settled = true;
          f();
          void worker.terminate();
        };
        worker.on('message', (m: WorkerMessage) => {
          if (m.type === 'progress') {
            this.emit({ importId, phase: 'hashing', bytes: m.bytes, total: m.total });
          } else if (m.type === 'done') {
            settle(() => resolve({ sha256: m.sha256, size: m.size }));
          } else {
            settle(() =>
              reject(
                m.code === 'cancelled'
                  ? new ImportError('cancelled', m.message)
                  : new ArtifactError('artifact-io', `importing ${basename(path)}: ${m.message}`),
              ),
            );
          }
        });
        worker.on('error', (e) => settle(() => reject(new ArtifactError('artifact-io', e.message))));
        worker.on('exit', () =>
          settle(() =>
            reject(
              job.cancelled
                ? new ImportError('cancelled', 'the import was cancelled')
                : new ArtifactError('artifact-io', 'the import worker stopped unexpectedly'),
            ),
          ),
        );
      });
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    if (job.cancelled) {
      await fsp.rm(tmp, { force: true });
      throw new ImportError('cancelled', 'the import was cancelled');
    }
    return store.commitTemp(tmp, result.sha256, result.size, basename(path), kind);
  }

  private emit(p: ArtifactProgress): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(p);
      } catch {
        // A UI listener's failure must not break the import.
      }
    }
  }
}
