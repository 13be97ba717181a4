import { createHash, type Hash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/** Progress and cancellation hooks shared by every streaming hash in the digest code. */
export interface StreamOptions {
  /** Called after each chunk with the bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Aborting rejects with the signal's reason (an AbortError unless the caller gave one). */
  signal?: AbortSignal;
  /** Read size; 4 MiB keeps syscalls few while memory stays bounded (two buffers). */
  chunkSize?: number;
  /**
   * Read with blocking readSync calls of BLOCKING_CHUNK_SIZE into one reused buffer: no thread-pool round
   * trip per chunk. For a one-shot process (the CLI's `digest`), never for the service, whose event loop
   * must keep answering while a large file is hashed. Progress and abort are still checked per chunk.
   */
  blocking?: boolean;
}

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
/** Blocking reads: 16 MiB, so a 64 MiB initrd is four reads and four large hash updates. */
export const BLOCKING_CHUNK_SIZE = 16 * 1024 * 1024;

/** The blocking path's buffer, allocated once per process (a single thread uses it at a time). */
let blockingBuffer: Buffer | undefined;

/** updateHashFromFile with blocking reads (opts.blocking). */
export function updateHashFromFileSync(hash: Hash, path: string, opts: StreamOptions = {}): number {
  opts.signal?.throwIfAborted();
  const fd = openSync(path, 'r');
  try {
    const total = fstatSync(fd).size;
    const want = Math.max(64 * 1024, opts.chunkSize ?? BLOCKING_CHUNK_SIZE);
    if (!blockingBuffer || blockingBuffer.length < Math.min(want, Math.max(total, 1))) {
      // Never larger than needed for a small file, never larger than the chunk size.
      blockingBuffer = Buffer.allocUnsafe(Math.min(want, Math.max(total, 64 * 1024)));
    }
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
