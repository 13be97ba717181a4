/**
 * The audit trail: one JSON event per line, appended with group commit: `append` assigns id, seq and
 * time at once and tells the subscribers, and the events appended while a write is in flight go out
 * together in the next single write + fdatasync, off the event loop. `flushed()` / `appendDurable()`
 * resolve once the fdatasync covering an event is done: whatever must be on disk before a reply (a
 * secret release) awaits it. A kill -9 loses at most the events not yet written (a torn last line,
 * repaired on the next open); events already acknowledged as durable are never lost.
 * Bounded: past maxEntries the newest maxEntries/2 are rewritten to a temp file and renamed over the log,
 * in the same writer as the appends, so a batch never lands in the replaced file.
 * One process writes a log file at a time (the app or `sev-attest serve`; serve holds DIR/serve.lock).
 *
 * What a flood cannot evict: releases, owner decisions and profile/secret changes (RETAINED_TYPES) also go
 * to a retained stream (DIR/audit-retained/: current.log, rotated into segment-<first>-<last>.log files),
 * written right after the main log's write + fdatasync of the same batch (never an event the main log does
 * not have yet), and are never dropped by the compaction. At open the next seq is above every seq in the
 * main log and the stream; list() merges the two by seq. The stream has a
 * disk budget; once it is reached the log says so (warn, retainedStatus().full) and refuses new releases
 * (audit-full) rather than drop a retained event; owner events are still written (the owner frees room by
 * moving segment files away). What a flood produces instead is aggregated: the first refused launch (or
 * validate of an unknown, used or expired connection) of a client (address, port ignored) and reason in
 * a window is logged in full, the others are counted into one "launch refused ×N" event when the window
 * ends. Validates refused on their evidence (a mismatch) are always logged in full. SEV-SNP guests'
 * refusals (type snp-attest: capped /auth, attest, resource) and the sessions they open (result info,
 * reason session-opened) are aggregated the same way, whatever the reason, because a fresh KBS session
 * costs only an /auth.
 */
import { DomainError } from '../../app/errors';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
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

/** Event types kept in the retained stream, never dropped to make room. */
export const RETAINED_TYPES: ReadonlySet<string> = new Set([
  'secret-release',
  'decision',
  'secret',
  'profile',
]);

export interface RetainedStreamOptions {
  /** Default: DIR/audit-retained next to the log file. */
  dir?: string;
  /** A segment is rotated past this size (default 4 MiB). */
  segmentBytes?: number;
  /** The stream's disk budget (default 256 MiB); reaching it refuses new releases (audit-full). */
  budgetBytes?: number;
}

export interface RetainedStatus {
  dir: string;
  bytes: number;
  budgetBytes: number;
  /** The budget is reached: new releases are refused until segments are moved away. */
  full: boolean;
}

export interface AuditLogOptions {
  file: string;
  /** Default 10000. */
  maxEntries?: number;
  /** The retained stream (default on); false keeps the main log only. */
  retained?: RetainedStreamOptions | false;
  /** Window for aggregating refused launches/validates per client and reason (ms; default off, serve: 10 s). */
  aggregateWindowMs?: number;
  /** Operational warnings (the retained budget reached). */
  warn?: (line: string) => void;
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

/** The retained stream's disk budget is reached: a release is refused rather than a retained event dropped. */
export class AuditFullError extends DomainError<'audit-full'> {
  constructor() {
    super('audit-full', "the owner's audit log is full: no secret is released until the owner makes room");
    this.name = 'AuditFullError';
  }
}

/** The client's address without its port ("[::1]:5" -> "::1", "1.2.3.4:5" -> "1.2.3.4"). */
function clientAddress(label: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(label);
  if (v6) return v6[1]!;
  const v4 = /^([^:]+):\d+$/.exec(label);
  return v4 ? v4[1]! : label;
}

/**
 * Refusals a flood can produce: every refused launch, and validates of connections that do not exist,
 * were used or expired. A validate refused on its evidence (measurement mismatch, policy, firmware) is
 * always logged in full: it needs a fresh connection from a successful launch, so it cannot flood.
 */
const FLOODABLE_VALIDATE_REASONS = new Set([
  'unknown-connection',
  'connection-used',
  'connection-expired',
  'bad-request',
  'rate-limited',
]);
function aggregatable(input: Omit<AuditEvent, 'id' | 'seq' | 'time'> | undefined): boolean {
  // A KBS session opened (/kbs/v0/auth) costs a caller nothing but the request: counted like a refusal.
  if (input?.type === 'snp-attest' && input.result === 'info' && input.reason === 'session-opened')
    return true;
  if (input?.result !== 'refused') return false;
  // An SEV-SNP guest's /kbs/v0 refusals: a new session costs a caller one /auth, so any of them can flood.
  if (input.type === 'launch' || input.type === 'snp-attest') return true;
  return input.type === 'validate' && FLOODABLE_VALIDATE_REASONS.has(input.reason ?? '');
}

interface Aggregate {
  start: number;
  count: number;
  first: AuditEvent;
  input: AuditEventInput;
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
/**
 * An event as it is kept: checked against the schema (AuditInputError), an overlong message cut rather than
 * refused (losing an audit event is worse than a long line), secret-looking details redacted, oversized
 * details replaced by a note. The file log and the shared PostgreSQL chain keep the same body.
 */
export function normalizeAuditInput(input: AuditEventInput): AuditEventInput {
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
  return body;
}

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
  // The retained stream.
  private readonly retainedDir: string | undefined;
  private readonly segmentBytes: number;
  private readonly budgetBytes: number;
  private retainedFd: number | undefined;
  private retainedCurrentBytes = 0;
  private retainedOtherBytes = 0;
  private retainedFirstSeq = 0;
  private retainedLastSeq = 0;
  private pendingRetained: Array<{ seq: number; line: string }> = [];
  /** Retained events that left the main window (newest maxEntries), for list(). */
  private retainedEvents: AuditEvent[] = [];
  private warnedFull = false;
  private readonly warn: (line: string) => void;
  // Aggregation of refused host requests.
  private readonly aggregateWindowMs: number;
  private readonly aggregates = new Map<string, Aggregate>();
  private aggregateTimer: NodeJS.Timeout | undefined;

  constructor(options: AuditLogOptions) {
    this.file = options.file;
    this.maxEntries = Math.max(2, Math.floor(options.maxEntries ?? 10_000));
    this.now = options.now ?? (() => new Date());
    this.newId = options.idGenerator ?? randomUUID;
    this.warn = options.warn ?? (() => {});
    this.aggregateWindowMs = options.aggregateWindowMs ?? 0;
    const r = options.retained === false ? undefined : (options.retained ?? {});
    this.retainedDir = r ? (r.dir ?? join(dirname(this.file), 'audit-retained')) : undefined;
    this.segmentBytes = Math.max(1024, r?.segmentBytes ?? 4 * 1024 * 1024);
    this.budgetBytes = Math.max(1, r?.budgetBytes ?? 256 * 1024 * 1024);
    fs.mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    this.openReport = this.load();
    this.fd = fs.openSync(this.file, 'a', 0o600);
    if (this.retainedDir) this.openRetained();
    this.syncedSeq = this.lastSeq;
  }

  /** The retained stream's size against its budget (undefined when it is off). */
  retainedStatus(): RetainedStatus | undefined {
    if (!this.retainedDir) return undefined;
    const bytes = this.retainedCurrentBytes + this.retainedOtherBytes;
    return { dir: this.retainedDir, bytes, budgetBytes: this.budgetBytes, full: bytes >= this.budgetBytes };
  }

  /**
   * Reads the retained stream at open: repairs a torn line, adds what the main log has and it lacks, and
   * raises the next seq above every seq the stream holds (segments and current.log), so a seq on disk is
   * never given to another event.
   */
  private openRetained(): void {
    const dir = this.retainedDir!;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const current = join(dir, 'current.log');
    let segmentLast = 0;
    for (const name of fs.readdirSync(dir)) {
      const m = /^segment-(\d+)-(\d+)\.log$/.exec(name);
      if (!m) continue;
      this.retainedOtherBytes += fs.statSync(join(dir, name)).size;
      segmentLast = Math.max(segmentLast, Number(m[2]));
    }
    let text = '';
    try {
      text = fs.readFileSync(current, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const lines = text.split('\n');
    const tail = lines.pop() ?? '';
    if (tail !== '') {
      fs.truncateSync(current, Buffer.byteLength(text, 'utf8') - Buffer.byteLength(tail, 'utf8'));
      this.openReport.warnings.push(`${current}: dropped an incomplete last line (an event cut by a crash)`);
    }
    // By seq: current.log need not be in seq order (a repair appends older events after newer ones).
    const bySeq = new Map<number, AuditEvent>();
    for (const line of lines) {
      const e = line.trim() === '' ? undefined : parseEvent(line);
      if (e) bySeq.set(e.seq, e);
    }
    let currentFirst = 0;
    let currentLast = 0;
    for (const seq of bySeq.keys()) {
      if (currentFirst === 0 || seq < currentFirst) currentFirst = seq;
      if (seq > currentLast) currentLast = seq;
    }
    // Never below a seq the stream holds: the main log may have lost events the stream kept.
    const streamLast = Math.max(segmentLast, currentLast);
    if (streamLast > this.lastSeq) {
      this.openReport.warnings.push(
        `${dir}: holds events up to seq ${streamLast}, past the main log's last (${this.lastSeq}); ` +
          `the next event gets seq ${streamLast + 1}`,
      );
      this.lastSeq = streamLast;
    }
    this.retainedFd = fs.openSync(current, 'a', 0o600);
    this.retainedCurrentBytes = fs.fstatSync(this.retainedFd).size;
    // A crash between the main write and the retained one: the main log has events the stream lacks.
    // Those older than the stream's start are in segments (possibly moved away by the owner).
    const floor = segmentLast > 0 ? segmentLast : currentFirst > 0 ? currentFirst - 1 : 0;
    const missing = this.events.filter(
      (e) => RETAINED_TYPES.has(e.type) && e.seq > floor && !bySeq.has(e.seq),
    );
    if (missing.length > 0) {
      const add = missing.map((e) => `${JSON.stringify(e)}\n`).join('');
      fs.writeSync(this.retainedFd, add);
      fs.fdatasyncSync(this.retainedFd);
      this.retainedCurrentBytes += Buffer.byteLength(add);
      for (const e of missing) bySeq.set(e.seq, e);
    }
    const kept = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    this.retainedFirstSeq = kept[0]?.seq ?? 0;
    this.retainedLastSeq = kept.at(-1)?.seq ?? 0;
    this.retainedEvents = kept.slice(-this.maxEntries);
    if (this.retainedStatus()!.full) this.noteFull();
  }

  private rescanRetained(): void {
    let other = 0;
    for (const name of fs.readdirSync(this.retainedDir!)) {
      if (/^segment-\d+-\d+\.log$/.test(name)) other += fs.statSync(join(this.retainedDir!, name)).size;
    }
    this.retainedOtherBytes = other;
    if (!this.retainedStatus()!.full) this.warnedFull = false;
  }

  private noteFull(): void {
    if (this.warnedFull) return;
    this.warnedFull = true;
    const st = this.retainedStatus()!;
    this.warn(
      `the retained audit stream in ${st.dir} reached its budget (${st.bytes} of ${st.budgetBytes} bytes): ` +
        'new secret releases are refused (audit-full) until archived segment-*.log files are moved away ' +
        'or the budget is raised; no audit event is dropped',
    );
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
    if (this.aggregateWindowMs > 0 && aggregatable(input)) {
      const address = clientAddress(input.client ?? 'unknown');
      let key = `${input.type}\n${address}\n${input.reason ?? ''}`;
      if (!this.aggregates.has(key) && this.aggregates.size >= 10_000)
        key = `${input.type}\n*\n${input.reason ?? ''}`;
      const agg = this.aggregates.get(key);
      if (agg) {
        agg.count++;
        return agg.first;
      }
      const first = this.appendNow(input);
      this.aggregates.set(key, {
        start: this.now().getTime(),
        count: 0,
        first,
        input: {
          type: input.type,
          result: input.result,
          client: key.split('\n')[1]!,
          ...(input.reason !== undefined ? { reason: input.reason } : {}),
        },
      });
      this.aggregateTimer ??= setInterval(
        () => this.flushAggregates(false),
        Math.max(50, this.aggregateWindowMs / 4),
      );
      this.aggregateTimer.unref();
      return first;
    }
    return this.appendNow(input);
  }

  /** Writes the summary of every aggregation window that ended (all of them when `all`). */
  private flushAggregates(all: boolean): void {
    const now = this.now().getTime();
    for (const [key, agg] of this.aggregates) {
      if (!all && now - agg.start < this.aggregateWindowMs) continue;
      this.aggregates.delete(key);
      if (agg.count === 0 || this.failure) continue;
      const seconds = Math.max(1, Math.round((now - agg.start) / 1000));
      this.appendNow({
        ...agg.input,
        message: `${agg.input.type} ${agg.input.result === 'refused' ? 'refused' : 'events'} ×${agg.count} more (${agg.input.reason ?? 'refused'}) from ${agg.input.client} in ${seconds} s`,
        details: {
          aggregated: agg.count,
          firstEvent: agg.first.seq,
          from: new Date(agg.start).toISOString(),
          to: new Date(now).toISOString(),
        },
      });
    }
    if (this.aggregates.size === 0 && this.aggregateTimer) {
      clearInterval(this.aggregateTimer);
      this.aggregateTimer = undefined;
    }
  }

  private appendNow(input: Omit<AuditEvent, 'id' | 'seq' | 'time'>): AuditEvent {
    if (input?.type === 'secret-release' && this.retainedDir && this.retainedStatus()!.full) {
      // The owner may have moved segments away since: look again before refusing.
      this.rescanRetained();
      if (this.retainedStatus()!.full) {
        this.noteFull();
        throw new AuditFullError();
      }
    }
    const body = normalizeAuditInput(input);
    const event: AuditEvent = {
      id: this.newId(),
      seq: this.lastSeq + 1,
      time: this.now().toISOString(),
      ...body,
    };
    const line = `${JSON.stringify(event)}\n`;
    this.pending.push(line);
    if (this.retainedDir && RETAINED_TYPES.has(event.type))
      this.pendingRetained.push({ seq: event.seq, line });
    this.lastSeq = event.seq;
    this.events.push(event);
    if (this.events.length > this.maxEntries) {
      const cut = this.events.length - Math.floor(this.maxEntries / 2);
      if (this.retainedDir) {
        const left = this.events.slice(0, cut).filter((e) => RETAINED_TYPES.has(e.type));
        // Merged by seq: the ones read at open may already hold some of them.
        this.retainedEvents = mergeBySeq(this.retainedEvents, left).slice(-this.maxEntries);
      }
      this.events = this.events.slice(cut);
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

  /**
   * Matching events in seq order (newest last), each seq once: the retained events that left the window
   * merged with the window; `limit` keeps the newest ones. There are gaps where non-retained events left
   * the window.
   */
  list(filter?: AuditFilter): AuditEvent[] {
    const matched = mergeBySeq(this.retainedEvents, this.events).filter((e) => auditEventMatches(e, filter));
    const limited = filter?.limit !== undefined ? matched.slice(-filter.limit) : matched;
    return limited.map((e) => structuredClone(e));
  }

  /** The main log's window alone (its newest events, consecutive seqs), oldest first. */
  listWindow(): AuditEvent[] {
    return this.events.map((e) => structuredClone(e));
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
    if (!this.closed) this.flushAggregates(true);
    this.closed = true;
    this.subscribers.clear();
    while (this.writer) await this.writer;
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) await closeAsync(fd).catch(() => {});
    const rfd = this.retainedFd;
    this.retainedFd = undefined;
    if (rfd !== undefined) await closeAsync(rfd).catch(() => {});
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
      while (this.pending.length > 0 || this.compactDue || this.pendingRetained.length > 0) {
        const upTo = this.lastSeq;
        // The retained events of this batch only: one appended while the main write is in flight is
        // not in the main log yet, and must not reach the stream before it (a kill -9 in between would
        // leave the stream with a seq the main log never got, given to another event at the next open).
        const retained = this.pendingRetained;
        this.pendingRetained = [];
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
        // After the main log: a crash in between is repaired at the next open (openRetained).
        if (retained.length > 0) await this.writeRetained(retained);
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

  /** Appends the pending retained events to current.log (write + fdatasync), rotating it when too big. */
  private async writeRetained(items: Array<{ seq: number; line: string }>): Promise<void> {
    const batch = Buffer.from(items.map((i) => i.line).join(''), 'utf8');
    let off = 0;
    while (off < batch.length) {
      off += (await writeAsync(this.retainedFd!, batch, off, batch.length - off)).bytesWritten;
    }
    await fdatasyncAsync(this.retainedFd!);
    for (const { seq } of items) {
      if (this.retainedFirstSeq === 0 || seq < this.retainedFirstSeq) this.retainedFirstSeq = seq;
      if (seq > this.retainedLastSeq) this.retainedLastSeq = seq;
    }
    this.retainedCurrentBytes += batch.length;
    if (this.retainedCurrentBytes >= this.segmentBytes) {
      const dir = this.retainedDir!;
      const seg = join(
        dir,
        `segment-${String(this.retainedFirstSeq).padStart(10, '0')}-${String(this.retainedLastSeq).padStart(10, '0')}.log`,
      );
      await fs.promises.rename(join(dir, 'current.log'), seg);
      const old = this.retainedFd;
      this.retainedFd = await openAsync(join(dir, 'current.log'), 'a', 0o600);
      await fsyncDirAsync(dir);
      if (old !== undefined) await closeAsync(old);
      this.retainedOtherBytes += this.retainedCurrentBytes;
      this.retainedCurrentBytes = 0;
      this.retainedFirstSeq = 0;
      this.retainedLastSeq = 0;
    }
    if (this.retainedStatus()!.full) this.noteFull();
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

/** Two lists in seq order, each without repeats, merged into one the same way; `b` wins a seq in both. */
function mergeBySeq(a: readonly AuditEvent[], b: readonly AuditEvent[]): AuditEvent[] {
  const out: AuditEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && x.seq < y.seq)) {
      out.push(x!);
      i++;
    } else {
      out.push(y);
      j++;
      if (x !== undefined && x.seq === y.seq) i++;
    }
  }
  return out;
}

function parseEvent(line: string): AuditEvent | undefined {
  try {
    const parsed = AuditEventSchema.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
