import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** Progress and cancellation hooks shared by every streaming hash in the digest code. */
export interface StreamOptions {
  /** Called after each chunk with the bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Aborting rejects with the signal's reason (an AbortError unless the caller gave one). */
  signal?: AbortSignal;
  /** Read size; 4 MiB keeps syscalls few while memory stays bounded (two buffers). */
  chunkSize?: number;
}

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

/**
 * Feeds a whole file into `hash` without holding it in memory: two reusable buffers, the next read is
 * in flight (libuv thread pool) while the current chunk is hashed. Returns the number of bytes hashed.
 */
export async function updateHashFromFile(
  hash: Hash,
  path: string,
  opts: StreamOptions = {},
): Promise<number> {
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
