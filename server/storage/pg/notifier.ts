/**
 * LISTEN on a dedicated connection, so a change committed by one replica reaches every other within
 * milliseconds (pg_notify is delivered at commit). The connection comes back by itself after a server
 * restart (retries with backoff); onReconnect lets each user reload what it may have missed meanwhile.
 */
import pg from 'pg';
import { messageOf } from '../../../app/errors';

export type NotifyHandler = (payload: string) => void;

export class Notifier {
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<NotifyHandler>>();
  private readonly reconnectHandlers = new Set<() => void>();
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private everConnected = false;
  /** The LISTEN issued for a channel added while connected. */
  private readonly listens = new Map<string, Promise<void>>();

  constructor(
    private readonly url: string,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** Connects and listens; resolves after the first successful LISTEN (rejects if the first try fails). */
  async start(): Promise<void> {
    await this.connect();
  }

  on(channel: string, fn: NotifyHandler): () => void {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      if (this.client) {
        this.listens.set(
          channel,
          this.client.query(`LISTEN ${pg.escapeIdentifier(channel)}`).then(
            () => undefined,
            () => undefined,
          ),
        );
      }
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Resolves once the channel is listened to (read state after it: no commit falls in between). */
  async listening(channel: string): Promise<void> {
    await this.listens.get(channel);
  }

  onReconnect(fn: () => void): () => void {
    this.reconnectHandlers.add(fn);
    return () => this.reconnectHandlers.delete(fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 3000 });
    client.on('notification', (n) => {
      for (const fn of this.handlers.get(n.channel) ?? []) {
        try {
          fn(n.payload ?? '');
        } catch (e) {
          this.log(`database: a ${n.channel} handler failed (${messageOf(e)})`);
        }
      }
    });
    let lost = false;
    const onLost = (e?: unknown) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      if (this.closed) return;
      this.log(`database: notification connection lost${e ? ` (${messageOf(e)})` : ''}; reconnecting`);
      this.scheduleRetry(500);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    await client.connect();
    for (const channel of this.handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    if (this.everConnected) {
      this.log('database: notification connection back');
      for (const fn of this.reconnectHandlers) {
        try {
          fn();
        } catch {
          // One user's reload must not stop the others'.
        }
      }
    }
    this.everConnected = true;
  }

  private scheduleRetry(ms: number): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch(() => this.scheduleRetry(Math.min(ms * 2, 5000)));
    }, ms);
    this.retryTimer.unref();
  }
}
