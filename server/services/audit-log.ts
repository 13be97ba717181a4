/**
 * The audit trail: one JSON event per line, appended with group commit: `append` assigns id, seq and
 * time at once and tells the subscribers, and the events appended while a write is in flight go out
 * together in the next single write + fdatasync, off the event loop. `flushed()` / `appendDurable()`
 * resolve once the fdatasync covering an event is done: whatever must be on disk before a reply (a
 * secret release) awaits it. A kill -9 loses at most the events not yet written (a torn last line,
 * repaired on the next open); events already acknowledged as durable are never lost.
 * Bounded: past maxEntries the newest maxEntries/2 are rewritten to a temp file and renamed over the log,
 * in the same writer as the appends, so a batch never lands in the replaced file.
 * One process writes a log file at a time (the app or `sev-attest serve`).
 */
import { DomainError } from '../../app/errors';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import {
  AuditEventInputSchema,
  AuditEventSchema,
  auditEventMatches,
  type AuditEvent,
  type AuditEventInput,
  type AuditFilter,
} from '../../app/audit';
import { zodIssues } from './store-util';

const writeAsync = promisify(fs.write);
const fdatasyncAsync = promisify(fs.fdatasync);
const closeAsync = promisify(fs.close);
const openAsync = promisify(fs.open);
const fsyncAsync = promisify(fs.fsync);

export interface AuditLogOptions {
  file: string;
  /** Default 10000. */
  maxEntries?: number;
  now?: () => Date;
  idGenerator?: () => string;
}

/** What open() found in the file. */
export interface AuditOpenReport {
  /** Valid events read. */
  events: number;
  /** An incomplete last line (a write cut by a crash) was dropped from the file. */
  tornLine: boolean;
  /** Complete lines that were not valid events (skipped; they disappear at the next compaction). */
  invalidLines: number;
  warnings: string[];
}

export class AuditInputError extends DomainError<'audit-invalid'> {
  constructor(message: string) {
    super('audit-invalid', message);
    this.name = 'AuditInputError';
  }
}

/** A write or fdatasync of the log failed: the log takes no more events (fail closed). */
export class AuditWriteError extends DomainError<'audit-write-failed'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('audit-write-failed', message);
    if (options?.cause !== undefined) this.cause = options.cause;
    this.name = 'AuditWriteError';
  }
}

/**
 * `details` keys whose string / byte values are never logged (compared without case, '-' and '_'). Kept
 * narrow on purpose: lists of secret GUIDs ("secrets", "guids") and names ("key" of a map) stay readable.
 */
const SENSITIVE_KEYS = new Set([
  'passphrase',
  'password',
  'secret',
  'secretvalue',
  'secretdata',
  'tek',
  'tik',
  'tk',
  'kek',
  'data',
  'plaintext',
  'token',
  'hosttoken',
  'ownertoken',
  'privatekey',
]);

export const REDACTED = '[redacted]';
const MAX_MESSAGE = 4000;
/** One event stays a reasonable line: bigger details are replaced by a note. */
export const MAX_DETAILS_CHARS = 256 * 1024;

function isSensitiveKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_]/g, '');
  return SENSITIVE_KEYS.has(k) || k.includes('passphrase') || k.includes('password');
}

function isSecretLike(v: unknown): boolean {
  if (typeof v === 'string') return v.length > 0;
  if (v instanceof Uint8Array) return v.length > 0;
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' || typeof x === 'string');
}

/**
 * The redaction guard: a copy of `details` where every value under a sensitive key (at any depth) that
 * could carry secret material is replaced by "[redacted]", and the JSON paths that were redacted.
 * Byte arrays anywhere are turned into a length note: raw bytes never reach the log.
 */
export function redactDetails(details: Record<string, unknown>): {
  details: Record<string, unknown>;
  redacted: string[];
} {
  const redacted: string[] = [];
  const walk = (value: unknown, path: string, depth: number): unknown => {
    if (value instanceof Uint8Array) return `<${value.length} bytes>`;
    if (depth > 8) return '[too deep]';
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`, depth + 1));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const p = path === '' ? k : `${path}.${k}`;
        if (isSensitiveKey(k) && isSecretLike(v)) {
          out[k] = REDACTED;
          redacted.push(p);
        } else {
          out[k] = walk(v, p, depth + 1);
        }
      }
      return out;
    }
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  };
  return { details: walk(details, '', 0) as Record<string, unknown>, redacted };
}

export class AuditLog {
  readonly file: string;
  readonly maxEntries: number;
  readonly openReport: AuditOpenReport;
  private readonly now: () => Date;
  private readonly newId: () => string;
  private events: AuditEvent[] = [];
  private lastSeq = 0;
  private fd: number | undefined;
  private closed = false;
  private readonly subscribers = new Set<(e: AuditEvent) => void>();
  /** Lines appended but not yet handed to a write. */
  private pending: string[] = [];
  /** The in-memory list was cut: the next flush rewrites the file instead of appending. */
  private compactDue = false;
  /** Highest seq covered by a finished fdatasync (or compaction). */
  private syncedSeq = 0;
  /** The running writer, while there is one (close() waits for it). */
  private writer: Promise<void> | undefined;
  private writing = false;
  private failure: AuditWriteError | undefined;
  /** flushed() callers, in seq order. */
  private waiters: Array<{ seq: number; resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(options: AuditLogOptions) {
    this.file = options.file;
    this.maxEntries = Math.max(2, Math.floor(options.maxEntries ?? 10_000));
    this.now = options.now ?? (() => new Date());
    this.newId = options.idGenerator ?? randomUUID;
    fs.mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    this.openReport = this.load();
    this.syncedSeq = this.lastSeq;
    this.fd = fs.openSync(this.file, 'a', 0o600);
  }

  /** Opens (creating if needed) the log, repairing a torn last line; see openReport. */
  static open(options: AuditLogOptions): AuditLog {
    return new AuditLog(options);
  }

  /** The highest seq assigned so far (0 for an empty log). */
  get seq(): number {
    return this.lastSeq;
  }

  /** The highest seq known to be on disk (fdatasync done). */
  get durableSeq(): number {
    return this.syncedSeq;
  }

  /**
   * Appends one event and tells the subscribers; returns it at once (id, seq and time assigned). The
   * write happens in the background: await flushed() (or use appendDurable) before acting on durability.
   */
  append(input: Omit<AuditEvent, 'id' | 'seq' | 'time'>): AuditEvent {
    if (this.closed) throw new AuditInputError(`the audit log ${this.file} is closed`);
    if (this.failure) throw this.failure;
    // An overlong message is cut rather than refused: losing an audit event is worse than a long line.
    const cut =
      typeof input?.message === 'string' && input.message.length > MAX_MESSAGE
        ? { ...input, message: `${input.message.slice(0, MAX_MESSAGE - 1)}…` }
        : input;
    const parsed = AuditEventInputSchema.safeParse(cut);
    if (!parsed.success) {
      throw new AuditInputError(
        `invalid audit event: ${zodIssues(parsed.error)
          .map((i) => `${i.path}: ${i.message}`)
          .join('; ')}`,
      );
    }
    const body: AuditEventInput = { ...parsed.data };
    if (body.details) {
      const { details, redacted } = redactDetails(body.details);
      body.details = redacted.length > 0 ? { ...details, redacted } : details;
      const size = JSON.stringify(body.details).length;
      if (size > MAX_DETAILS_CHARS) {
        body.details = { truncated: `details were ${size} characters, over the ${MAX_DETAILS_CHARS} limit` };
      }
    }
    const event: AuditEvent = {
      id: this.newId(),
      seq: this.lastSeq + 1,
      time: this.now().toISOString(),
      ...body,
    };
    this.pending.push(`${JSON.stringify(event)}\n`);
    this.lastSeq = event.seq;
    this.events.push(event);
    if (this.events.length > this.maxEntries) {
      this.events = this.events.slice(-Math.floor(this.maxEntries / 2));
      this.compactDue = true;
    }
    this.kick();
    for (const cb of [...this.subscribers]) {
      try {
        cb(event);
      } catch {
        // A broken subscriber (a closed SSE stream) must not fail the append.
      }
    }
    return event;
  }

  /** Appends one event and resolves once it is on disk (rejects with AuditWriteError if it cannot be). */
  async appendDurable(input: Omit<AuditEvent, 'id' | 'seq' | 'time'>): Promise<AuditEvent> {
    const event = this.append(input);
    await this.flushed(event.seq);
    return event;
  }

  /**
   * Resolves once every event up to `seq` (default: all appended so far) is on disk, or was superseded
   * by a compaction that kept newer ones; rejects with AuditWriteError when the log failed first.
   */
  flushed(seq = this.lastSeq): Promise<void> {
    seq = Math.min(seq, this.lastSeq);
    if (seq <= this.syncedSeq) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.push({ seq, resolve, reject });
    });
  }

  /** Matching events, newest last; `limit` keeps the newest ones. */
  list(filter?: AuditFilter): AuditEvent[] {
    const matched = this.events.filter((e) => auditEventMatches(e, filter));
    const limited = filter?.limit !== undefined ? matched.slice(-filter.limit) : matched;
    return limited.map((e) => structuredClone(e));
  }

  /** Live events; returns the unsubscribe function. */
  subscribe(cb: (e: AuditEvent) => void): () => void {
    this.subscribers.add(cb);
    return () => {
      this.subscribers.delete(cb);
    };
  }

  /** Takes no more events, writes the pending ones, then closes the file. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    this.subscribers.clear();
    while (this.writer) await this.writer;
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeAsync(fd).catch(() => {});
  }

  /** Starts the writer unless one runs (it picks up whatever is pending when it loops). */
  private kick(): void {
    if (this.writing || this.failure) return;
    this.writing = true;
    const run = this.drain();
    if (this.writing) this.writer = run;
  }

  /** The only code that touches the file after open: batches, then compactions, one at a time. */
  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.compactDue) {
        const upTo = this.lastSeq;
        if (this.compactDue) {
          // The kept events already include every pending one still in the window.
          this.compactDue = false;
          this.pending = [];
          await this.compact(this.events.map((e) => `${JSON.stringify(e)}\n`).join(''));
        } else {
          const batch = Buffer.from(this.pending.join(''), 'utf8');
          this.pending = [];
          // One write call per batch (O_APPEND); a regular file takes it whole.
          let off = 0;
          while (off < batch.length) {
            off += (await writeAsync(this.fd!, batch, off, batch.length - off)).bytesWritten;
          }
          await fdatasyncAsync(this.fd!);
        }
        this.syncedSeq = upTo;
        this.settle();
      }
    } catch (e) {
      this.failure = new AuditWriteError(
        `the audit log ${this.file} could not be written: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
      this.pending = [];
      this.settle();
    } finally {
      // Cleared in the same step as the last "nothing pending" check: an append after it starts a new writer.
      this.writing = false;
      this.writer = undefined;
    }
  }

  private settle(): void {
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.seq <= this.syncedSeq) this.waiters[n++]!.resolve();
    const rest = this.waiters.slice(n);
    this.waiters = this.failure ? [] : rest;
    if (this.failure) for (const w of rest) w.reject(this.failure);
  }

  /** Keeps `text` (the newest events): temp file + fdatasync + rename + directory fsync, then reopens for append. */
  private async compact(text: string): Promise<void> {
    const tmp = `${this.file}.tmp-${randomBytes(6).toString('hex')}`;
    const handle = await fs.promises.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.datasync();
    } finally {
      await handle.close();
    }
    try {
      await fs.promises.rename(tmp, this.file);
    } catch (e) {
      await fs.promises.rm(tmp, { force: true });
      throw e;
    }
    await fsyncDirAsync(dirname(this.file));
    const old = this.fd;
    this.fd = await openAsync(this.file, 'a', 0o600);
    if (old !== undefined) await closeAsync(old);
  }

  private load(): AuditOpenReport {
    const report: AuditOpenReport = { events: 0, tornLine: false, invalidLines: 0, warnings: [] };
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return report;
      throw e;
    }
    const lines = text.split('\n');
    // The piece after the last newline is '' for a well-formed file.
    const tail = lines.pop() ?? '';
    if (tail !== '') {
      const tornEvent = parseEvent(tail);
      if (tornEvent) {
        // Complete event, only its newline was cut: keep it, finish the line.
        lines.push(tail);
        fs.appendFileSync(this.file, '\n');
      } else {
        report.tornLine = true;
        // Drop the fragment so the next event starts on a line of its own.
        fs.truncateSync(this.file, Buffer.byteLength(text, 'utf8') - Buffer.byteLength(tail, 'utf8'));
        report.warnings.push(
          `${this.file}: dropped an incomplete last line (${Buffer.byteLength(tail, 'utf8')} bytes; an event cut by a crash)`,
        );
      }
    }
    for (const line of lines) {
      if (line.trim() === '') continue;
      const event = parseEvent(line);
      if (!event) {
        report.invalidLines++;
        continue;
      }
      if (event.seq <= this.lastSeq) {
        report.invalidLines++;
        report.warnings.push(
          `${this.file}: event seq ${event.seq} is out of order (after ${this.lastSeq}); skipped`,
        );
        continue;
      }
      this.lastSeq = event.seq;
      this.events.push(event);
    }
    if (report.invalidLines > 0) {
      report.warnings.push(
        `${this.file}: skipped ${report.invalidLines} line(s) that are not valid audit events`,
      );
    }
    if (this.events.length > this.maxEntries) this.events = this.events.slice(-this.maxEntries);
    report.events = this.events.length;
    return report;
  }
}

/** fsync a directory so a rename in it is durable (not supported everywhere: the rename stays atomic). */
async function fsyncDirAsync(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = await openAsync(dir, 'r');
  } catch {
    return;
  }
  try {
    await fsyncAsync(fd);
  } catch {
    // Windows refuses fsync on a directory.
  } finally {
    await closeAsync(fd);
  }
}

function parseEvent(line: string): AuditEvent | undefined {
  try {
    const parsed = AuditEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
