/**
 * The kernel hashes table QEMU writes into OVMF for measured direct boot (docs/protocol.md §6.2):
 * 176 bytes = table GUID, u16 length 168, three 50-byte entries (cmdline, initrd, kernel), 8 zero bytes.
 */
import { createHash } from 'node:crypto';
import { fromHex, guidBytesLe, toHex, writeU16le } from '../sev/bytes';
import { SevError } from '../sev/errors';
import { sha256File, type StreamOptions } from './stream-hash';

export const HASHES_TABLE_GUID = '9438d606-4f22-4cc9-b479-a793d411fd21';
export const CMDLINE_ENTRY_GUID = '97d02dd8-bd20-4c94-aa78-e7714d36ab2a';
export const INITRD_ENTRY_GUID = '44baf731-3a2f-4bd7-9af1-41e29169781d';
export const KERNEL_ENTRY_GUID = '4de79437-abd2-427f-b835-d5b172d2045b';

const ENTRY_SIZE = 16 + 2 + 32;
const TABLE_LENGTH = 16 + 2 + 3 * ENTRY_SIZE; // 168, the value stored (padding excluded)
export const PADDED_HASHES_TABLE_SIZE = 176;

/** A measured file: a path (streamed) or a SHA-256 the owner already has. */
export type HashInput = string | { sha256hex: string };

/** The three hashes that go into the table. */
export interface KernelHashes {
  kernel: Uint8Array;
  initrd: Uint8Array;
  cmdline: Uint8Array;
}

/** SHA-256 of the command line as QEMU hashes it: the UTF-8 bytes plus a trailing NUL. */
export function hashCmdline(cmdline: string | undefined): Uint8Array {
  return new Uint8Array(
    createHash('sha256')
      .update(Buffer.from(cmdline ?? '', 'utf8'))
      .update(Buffer.of(0))
      .digest(),
  );
}

/** SHA-256 of the empty string: the initrd hash when no initrd is given. */
export const EMPTY_SHA256 = new Uint8Array(createHash('sha256').digest());

/** Parses a 64-hex-digit SHA-256 given by the owner; `what` names it in the error. */
export function parseSha256Hex(hex: string, what: string): Uint8Array {
  const clean = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(clean)) {
    throw new SevError('bad-format', `${what} must be a SHA-256 in hex (64 hex digits), got '${hex}'`);
  }
  return fromHex(clean);
}

/** Builds the padded 176-byte table from the three hashes. */
export function buildHashesTable(h: KernelHashes): Uint8Array {
  for (const [k, v] of Object.entries(h)) {
    if (v.length !== 32) throw new SevError('bad-length', `${k} hash must be 32 bytes, got ${v.length}`);
  }
  const t = new Uint8Array(PADDED_HASHES_TABLE_SIZE);
  t.set(guidBytesLe(HASHES_TABLE_GUID), 0);
  writeU16le(t, 16, TABLE_LENGTH);
  let off = 18;
  for (const [guid, hash] of [
    [CMDLINE_ENTRY_GUID, h.cmdline],
    [INITRD_ENTRY_GUID, h.initrd],
    [KERNEL_ENTRY_GUID, h.kernel],
  ] as const) {
    t.set(guidBytesLe(guid), off);
    writeU16le(t, off + 16, ENTRY_SIZE);
    t.set(hash, off + 18);
    off += ENTRY_SIZE;
  }
  return t;
}

/** Inputs for the table: files or precomputed hashes for kernel and initrd, a string or a hash for the cmdline. */
export interface KernelInputs {
  kernel: HashInput;
  initrd?: HashInput;
  cmdline?: string;
  cmdlineHash?: string;
}

/** Progress callbacks per file; the caller decides how to aggregate. */
export interface KernelHashOptions {
  signal?: AbortSignal;
  onProgress?: (which: 'kernel' | 'initrd', bytesDone: number, bytesTotal: number) => void;
  chunkSize?: number;
  /** See StreamOptions.blocking. */
  blocking?: boolean;
}

async function resolveHash(
  input: HashInput,
  which: 'kernel' | 'initrd',
  opts: KernelHashOptions,
): Promise<Uint8Array> {
  if (typeof input === 'string') {
    const so: StreamOptions = { signal: opts.signal, chunkSize: opts.chunkSize, blocking: opts.blocking };
    if (opts.onProgress) so.onProgress = (d, t) => opts.onProgress!(which, d, t);
    return sha256File(input, so);
  }
  return parseSha256Hex(input.sha256hex, `${which}-hash`);
}

/** Resolves files/hashes into the three table hashes (kernel then initrd, streamed). */
export async function resolveKernelHashes(
  inputs: KernelInputs,
  opts: KernelHashOptions = {},
): Promise<KernelHashes> {
  if (inputs.cmdline !== undefined && inputs.cmdlineHash !== undefined) {
    throw new SevError('bad-format', 'give either a command line or its hash, not both');
  }
  const kernel = await resolveHash(inputs.kernel, 'kernel', opts);
  const initrd =
    inputs.initrd === undefined ? EMPTY_SHA256 : await resolveHash(inputs.initrd, 'initrd', opts);
  const cmdline =
    inputs.cmdlineHash !== undefined
      ? parseSha256Hex(inputs.cmdlineHash, 'cmdline-hash')
      : hashCmdline(inputs.cmdline);
  return { kernel, initrd, cmdline };
}

/** The three hashes in hex, for explanations. */
export function kernelHashesHex(h: KernelHashes): { kernel: string; initrd: string; cmdline: string } {
  return { kernel: toHex(h.kernel), initrd: toHex(h.initrd), cmdline: toHex(h.cmdline) };
}
