/**
 * The owner's audit list and live event stream with serve --database: read from the shared chain
 * (audit_log), so every replica's UI and /v1/events show every replica's events. A window of the newest
 * events is kept in memory (loaded at start), and each new chain row is fetched on its NOTIFY (after a
 * reconnect, everything after the last seen row). Events carry their chain seq and id. An event a replica
 * could not copy to the chain (the database was down) is only in that replica's local log.
 */
import { auditEventMatches, type AuditEvent, type AuditFilter } from '../../../app/audit';
import { messageOf } from '../../../app/errors';
import { AUDIT_CHANNEL, type PgAuditChain } from './audit-chain';
import type { Notifier } from './notifier';

export class SharedAuditFeed {
  private events: AuditEvent[] = [];
  private lastSeq = 0;
  private readonly subscribers = new Set<(e: AuditEvent) => void>();
  private queue: Promise<void> = Promise.resolve();
  private readonly offs: Array<() => void> = [];

  private constructor(
    private readonly chain: PgAuditChain,
    private readonly max: number,
    private readonly log: (line: string) => void,
  ) {}

  static async open(
    chain: PgAuditChain,
    notifier: Notifier,
    opts: { max?: number; log?: (line: string) => void } = {},
  ): Promise<SharedAuditFeed> {
    const f = new SharedAuditFeed(chain, opts.max ?? 10_000, opts.log ?? (() => {}));
    f.offs.push(notifier.on(AUDIT_CHANNEL, () => f.catchUp()));
    f.offs.push(notifier.onReconnect(() => f.catchUp()));
    // Listening before the first read: a row committed in between is fetched by its NOTIFY.
    await notifier.listening(AUDIT_CHANNEL);
    f.events = await chain.listRecent(f.max);
    f.lastSeq = f.events[f.events.length - 1]?.seq ?? 0;
    return f;
  }

  list(filter?: AuditFilter): AuditEvent[] {
    const matched = this.events.filter((e) => auditEventMatches(e, filter));
    const limited = filter?.limit !== undefined ? matched.slice(-filter.limit) : matched;
    return limited.map((e) => structuredClone(e));
  }

  subscribe(cb: (e: AuditEvent) => void): () => void {
    this.subscribers.add(cb);
    return () => {
      this.subscribers.delete(cb);
    };
  }

  /** Resolves once every row committed so far is in the window (tests, and start). */
  caughtUp(): Promise<void> {
    this.catchUp();
    return this.queue;
  }

  close(): void {
    for (const off of this.offs.splice(0)) off();
    this.subscribers.clear();
  }

  /** Fetches the rows after the last one seen, in order, one fetch at a time. */
  private catchUp(): void {
    this.queue = this.queue.then(async () => {
      try {
        for (;;) {
          const page = await this.chain.listAfter(this.lastSeq, 500);
          for (const e of page) {
            this.lastSeq = e.seq;
            this.events.push(e);
            for (const cb of [...this.subscribers]) {
              try {
                cb(structuredClone(e));
              } catch {
                // A closed stream must not stop the others.
              }
            }
          }
          if (this.events.length > this.max) this.events.splice(0, this.events.length - this.max);
          if (page.length < 500) break;
        }
      } catch (e) {
        this.log(`audit: the shared event list could not be refreshed (${messageOf(e)})`);
      }
    });
  }
}
