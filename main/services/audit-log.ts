/**
 * The audit trail: one JSON event per line, appended with a single write + fdatasync per event, so a
 * kill -9 loses at most the event being written (a torn last line, repaired on the next open).
 * Bounded: past maxEntries the newest maxEntries/2 are rewritten to a temp file and renamed over the log.
 * One process writes a log file at a time (the app or `sev-attest serve`).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import {
  AuditEventInputSchema,
  AuditEventSchema,
  auditEventMatches,
  type AuditEvent,
  type AuditEventInput,
  type AuditFilter,
} from '../../app/audit';
import { writeFileAtomicSync, zodIssues } from './store-util';

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

export class AuditInputError extends Error {
  readonly code = 'audit-invalid';
  constructor(message: string) {
    super(message);
    this.name = 'AuditInputError';
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
  private readonly subscribers = new Set<(e: AuditEvent) => void>();

  constructor(options: AuditLogOptions) {
    this.file = options.file;
    this.maxEntries = Math.max(2, Math.floor(options.maxEntries ?? 10_000));
    this.now = options.now ?? (() => new Date());
    this.newId = options.idGenerator ?? randomUUID;
    fs.mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    this.openReport = this.load();
    this.fd = fs.openSync(this.file, 'a', 0o600);
  }

  /** Opens (creating if needed) the log, repairing a torn last line; see openReport. */
  static open(options: AuditLogOptions): AuditLog {
    return new AuditLog(options);
  }

  /** The highest seq written so far (0 for an empty log). */
  get seq(): number {
    return this.lastSeq;
  }

  /** Appends one event (durable when this returns) and tells the subscribers. */
  append(input: Omit<AuditEvent, 'id' | 'seq' | 'time'>): AuditEvent {
    if (this.fd === undefined) throw new AuditInputError(`the audit log ${this.file} is closed`);
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
    const line = Buffer.from(`${JSON.stringify(event)}\n`, 'utf8');
    // One write call per event (O_APPEND); a regular file takes it whole.
    let off = 0;
    while (off < line.length) off += fs.writeSync(this.fd, line, off, line.length - off);
    fs.fdatasyncSync(this.fd);
    this.lastSeq = event.seq;
    this.events.push(event);
    if (this.events.length > this.maxEntries) this.compact();
    for (const cb of [...this.subscribers]) {
      try {
        cb(event);
      } catch {
        // A broken subscriber (a closed SSE stream) must not fail the append.
      }
    }
    return event;
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

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    this.subscribers.clear();
  }

  /** Keeps the newest maxEntries/2 events: temp file + fsync + rename, then reopens for append. */
  private compact(): void {
    const keep = this.events.slice(-Math.floor(this.maxEntries / 2));
    writeFileAtomicSync(this.file, keep.map((e) => `${JSON.stringify(e)}\n`).join(''));
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a', 0o600);
    this.events = keep;
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

function parseEvent(line: string): AuditEvent | undefined {
  try {
    const parsed = AuditEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
