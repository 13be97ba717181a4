/**
 * AMD Key Distribution Server client for the ASK-signed CEK (docs/protocol.md §3):
 * GET `${baseUrl}/cek/id/<chip id hex>`, with bounded retries, Retry-After, timeouts, and an
 * optional on-disk cache (a chip's signed CEK never changes).
 */
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isEmptySlot, parseSevCert, SEV_CERT_SIZE, Usage } from './cert';
import { toHex } from './bytes';
import { SevError } from './errors';

export const KDS_DEFAULT_BASE_URL = 'https://kdsintf.amd.com';
/** GET_ID / cpu0-id size for one socket: secp256k1 x||y, big-endian. */
export const CHIP_ID_SIZE = 64;

/** Casing of the chip id in the KDS path: virtee prints the id as upper-case hex (docs/protocol.md §3). */
export const KDS_CHIP_ID_HEX_CASE: 'upper' | 'lower' = 'upper';

/** The chip id as it appears in the KDS path (hex in KDS_CHIP_ID_HEX_CASE). */
export function chipIdHex(chipId: Uint8Array): string {
  if (chipId.length !== CHIP_ID_SIZE) {
    throw new SevError(
      'bad-length',
      `chip id: expected ${CHIP_ID_SIZE} bytes (cpu0-id), got ${chipId.length}`,
    );
  }
  const hex = toHex(chipId);
  return KDS_CHIP_ID_HEX_CASE === 'upper' ? hex.toUpperCase() : hex;
}

/** Where signed CEKs are kept between runs, by chip id hex. */
export interface CekCache {
  get(chipIdHex: string): Promise<Uint8Array | undefined>;
  put(chipIdHex: string, cek: Uint8Array): Promise<void>;
}

export type FetchLike = (
  url: string,
  init: { signal: AbortSignal; headers?: Record<string, string> },
) => Promise<{
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}>;

export interface KdsClientOptions {
  baseUrl?: string;
  fetch?: FetchLike;
  cache?: CekCache | undefined;
  /** Total attempts including the first (default 4). */
  maxAttempts?: number;
  /** Per attempt, covering the whole answer (default 15 s). */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** First backoff delay after a failure without Retry-After (default 1 s, doubling). */
  backoffMs?: number;
  /** Upper bound for any wait, including Retry-After (default 60 s). */
  maxDelayMs?: number;
  /** Clock for HTTP-date Retry-After values. */
  now?: () => number;
}

/** Checks that bytes are a CEK certificate carrying an ASK signature; throws a SevError otherwise. */
export function checkSignedCek(bytes: Uint8Array, what: string): void {
  if (bytes.length !== SEV_CERT_SIZE) {
    throw new SevError(
      'kds-unavailable',
      `${what}: expected a ${SEV_CERT_SIZE}-byte CEK certificate, got ${bytes.length} bytes`,
    );
  }
  let cek;
  try {
    cek = parseSevCert(bytes, what);
  } catch (e) {
    throw new SevError('kds-unavailable', `${what}: not a valid SEV certificate (${(e as Error).message})`);
  }
  if (cek.usage !== Usage.CEK) {
    throw new SevError('kds-unavailable', `${what}: the certificate is not a CEK`);
  }
  if (!cek.sigs.some((s) => !isEmptySlot(s) && s.usage === Usage.ASK)) {
    throw new SevError('kds-unavailable', `${what}: the CEK carries no ASK signature`);
  }
}

/**
 * Parses a Retry-After header value (delta seconds or an HTTP date) to milliseconds, or undefined
 * when absent or unreadable.
 */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** fetch() hides the reason (ECONNREFUSED, ENOTFOUND, "bad port"…) in `cause`; name it. */
function causeCode(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  const why = typeof cause?.code === 'string' ? cause.code : cause?.message;
  return typeof why === 'string' && why ? ` (${why})` : '';
}

class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfter: number | undefined,
  ) {
    super(message);
  }
}

/** The answer of KdsHttp.get: the body of a 200, or "no such object" (404). */
export type KdsGetResult = { status: 200; body: Uint8Array } | { status: 404 };

/**
 * GET against an AMD key server with bounded retries: network errors, timeouts, 429 and 5xx are retried
 * (Retry-After honoured, else exponential backoff); 404 is returned as such; any other status, or a 200
 * body that `validate` rejects, is a SevError('kds-unavailable') at once. Shared by the SEV CEK client
 * below and the SNP VCEK/chain/CRL client (app/snp/kds.ts).
 */
export class KdsHttp {
  readonly baseUrl: string;
  private readonly fetchFn: FetchLike;
  private readonly maxAttempts: number;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly backoffMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;

  constructor(opts: Omit<KdsClientOptions, 'cache'> = {}) {
    this.baseUrl = (opts.baseUrl ?? KDS_DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.fetchFn = opts.fetch ?? (globalThis.fetch as unknown as FetchLike);
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 4);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.backoffMs = opts.backoffMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Fetches `url`. `what` names the object in the give-up message ("the signed CEK"); `validate` throws
   * (a SevError, not retried) when a 200 body is not what was asked for.
   */
  async get(
    url: string,
    req: { accept: string; what: string; validate?: (body: Uint8Array) => void },
  ): Promise<KdsGetResult> {
    let last = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      try {
        return await this.attempt(url, req);
      } catch (e) {
        if (!(e instanceof RetryableError)) throw e;
        last = e.message;
        if (attempt === this.maxAttempts) break;
        const backoff = this.backoffMs * 2 ** (attempt - 1);
        await this.sleep(Math.min(e.retryAfter ?? backoff, this.maxDelayMs));
      }
    }
    throw new SevError(
      'kds-unavailable',
      `AMD KDS (${url}) did not deliver ${req.what} after ${this.maxAttempts} attempt(s): ${last}`,
    );
  }

  private async attempt(
    url: string,
    req: { accept: string; validate?: (body: Uint8Array) => void },
  ): Promise<KdsGetResult> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.timeoutMs);
    let status: number;
    let body: Uint8Array;
    let retryAfter: string | null;
    try {
      const res = await this.fetchFn(url, { signal: ctl.signal, headers: { accept: req.accept } });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      body = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      const msg = ctl.signal.aborted
        ? `no answer within ${this.timeoutMs} ms`
        : `network error: ${(e as Error).message}${causeCode(e)}`;
      throw new RetryableError(msg, undefined);
    } finally {
      clearTimeout(timer);
    }
    if (status === 429 || status >= 500) {
      throw new RetryableError(`HTTP ${status}`, retryAfterMs(retryAfter, this.now()));
    }
    if (status === 404) return { status: 404 };
    if (status !== 200) {
      throw new SevError('kds-unavailable', `AMD KDS (${url}) answered HTTP ${status}`);
    }
    req.validate?.(body);
    return { status: 200, body };
  }
}

/** Downloads ASK-signed CEKs from AMD KDS (or a stand-in at baseUrl). */
export class KdsClient {
  private readonly http: KdsHttp;
  private readonly cache: CekCache | undefined;

  constructor(opts: KdsClientOptions = {}) {
    this.http = new KdsHttp(opts);
    this.cache = opts.cache;
  }

  /** The URL the CEK of this chip is fetched from. */
  cekUrl(chipId: Uint8Array): string {
    return `${this.http.baseUrl}/cek/id/${chipIdHex(chipId)}`;
  }

  /**
   * The ASK-signed CEK (2084 bytes) of the chip with this 64-byte id: from the cache if present,
   * else from the KDS (then cached). Throws SevError('kds-unavailable') with the reason.
   */
  async getCek(chipId: Uint8Array): Promise<Uint8Array> {
    const hex = chipIdHex(chipId);
    if (this.cache) {
      const hit = await this.cache.get(hex).catch(() => undefined);
      if (hit) {
        try {
          checkSignedCek(hit, 'cached CEK');
          return hit;
        } catch {
          // A damaged cache entry is simply fetched again (and overwritten).
        }
      }
    }
    const url = this.cekUrl(chipId);
    const r = await this.http.get(url, {
      accept: 'application/octet-stream',
      what: 'the signed CEK',
      validate: (body) => checkSignedCek(body, `AMD KDS answer from ${url}`),
    });
    if (r.status === 404) {
      // Not an outage: AMD does not know this chip (a made-up or non-AMD chip id).
      throw new SevError('cek-unknown-chip', `AMD KDS (${url}) has no CEK for this chip id (HTTP 404)`);
    }
    if (this.cache) await this.cache.put(hex, r.body).catch(() => undefined);
    return r.body;
  }
}

/** A CekCache of files `<dir>/<CHIP ID HEX>.cek`, written atomically (temp file + rename). */
export class DiskCekCache implements CekCache {
  constructor(readonly dir: string) {}

  private file(hex: string): string {
    if (!/^[0-9A-Fa-f]{128}$/.test(hex))
      throw new SevError('bad-format', 'chip id hex must be 128 hex digits');
    return path.join(this.dir, `${hex.toUpperCase()}.cek`);
  }

  async get(hex: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.file(hex)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async put(hex: string, cek: Uint8Array): Promise<void> {
    const target = this.file(hex);
    await mkdir(this.dir, { recursive: true });
    const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, cek, { mode: 0o644 });
      await rename(tmp, target);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
  }
}
