import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Progress and cancellation hooks shared by every streaming hash in the digest code. */
export interface StreamOptions {
  /** Called after each chunk with the bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Aborting rejects with the signal's reason (an AbortError unless the caller gave one). */
  signal?: AbortSignal;
  /** Read size (DEFAULT_CHUNK_SIZE, or BLOCKING_CHUNK_SIZE with `blocking`, unless given). */
  chunkSize?: number;
  /**
   * Read with blocking readSync calls into one reused buffer: no thread pool, no round trip per chunk.
   * For a one-shot process (the CLI's `digest`), never for the service, whose event loop must keep
   * answering while a large file is hashed. Progress and abort are still checked per chunk.
   */
  blocking?: boolean;
}

/**
 * The service's reads: 4 MiB, two buffers, the next read runs in the thread pool while this chunk is
 * hashed (1 MiB measured the same within noise: npm run bench digest, in-process figures).
 */
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

/**
 * The CLI's blocking reads: 128 KiB. Measured with `npm run bench digest` (78 MiB from the page cache, 2
 * shared cores): the cost is memory traffic, not system calls; a buffer that stays in the CPU cache
 * between the kernel's copy and the hash is the cheapest (16 MiB costs about a quarter more CPU). As
 * whole `sev-attest digest` processes, blocking 128 KiB reads beat the thread-pool path by about 50 ms:
 * a fresh process pays for starting the pool and faulting in its buffers, and gains little from overlap.
 */
export const BLOCKING_CHUNK_SIZE = 128 * 1024;

/** The blocking path's buffer, allocated once per process (one synchronous caller at a time). */
let blockingBuffer: Buffer | undefined;

/** updateHashFromFile with blocking reads (StreamOptions.blocking). */
export function updateHashFromFileSync(hash: Hash, path: string, opts: StreamOptions = {}): number {
  opts.signal?.throwIfAborted();
  const fd = openSync(path, 'r');
  try {
    const total = fstatSync(fd).size;
    const size = Math.max(16 * 1024, opts.chunkSize ?? BLOCKING_CHUNK_SIZE);
    if (blockingBuffer?.length !== size) blockingBuffer = Buffer.allocUnsafe(size);
    const buf = blockingBuffer;
    let done = 0;
    while (true) {
      const n = readSync(fd, buf, 0, buf.length, done);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      done += n;
      opts.onProgress?.(done, Math.max(total, done));
      opts.signal?.throwIfAborted();
    }
    if (done === 0) opts.onProgress?.(0, 0);
    return done;
  } finally {
    closeSync(fd);
  }
}

/**
 * Feeds a whole file into `hash` without holding it in memory: two reusable buffers, the next read is
 * in flight (libuv thread pool) while the current chunk is hashed. Returns the number of bytes hashed.
 */
export async function updateHashFromFile(
  hash: Hash,
  path: string,
  opts: StreamOptions = {},
): Promise<number> {
  if (opts.blocking) return updateHashFromFileSync(hash, path, opts);
  opts.signal?.throwIfAborted();
  const chunkSize = Math.max(64 * 1024, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const fh = await open(path, 'r');
  try {
    const total = (await fh.stat()).size;
    const buffers = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
    let done = 0;
    let which = 0;
    let pending = fh.read(buffers[0]!, 0, chunkSize, 0);
    while (true) {
      const { bytesRead } = await pending;
      opts.signal?.throwIfAborted();
      if (bytesRead === 0) break;
      const current = buffers[which]!;
      which ^= 1;
      // Start the next read before hashing this chunk so I/O and hashing overlap.
      pending = fh.read(buffers[which]!, 0, chunkSize, done + bytesRead);
      hash.update(current.subarray(0, bytesRead));
      done += bytesRead;
      opts.onProgress?.(done, Math.max(total, done));
    }
    if (done === 0) opts.onProgress?.(0, 0);
    return done;
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string, opts: StreamOptions = {}): Promise<Uint8Array> {
  const hash = createHash('sha256');
  await updateHashFromFile(hash, path, opts);
  return new Uint8Array(hash.digest());
}
