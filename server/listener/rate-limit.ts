/**
 * Token buckets for the listener. `RateLimiter`: one bucket per key, `capacity` requests in a burst,
 * refilled at `perSecond`. Keys are client groups (clientGroup): one IPv4 /24 or one IPv6 /64 counts as
 * one client, so a host with many addresses in its subnet gets one budget, not one per address.
 */
export { clientGroup } from '../services/client-group';

export interface RateLimitOptions {
  capacity: number;
  perSecond: number;
  /** Most keys tracked at once; idle full buckets are dropped first (default 10000). */
  maxClients?: number;
  /**
   * One budget shared by every unauthenticated host request, whatever its address (default: 4x the
   * per-client budget). Many source addresses cannot add up to more than this.
   */
  global?: { capacity: number; perSecond: number } | false;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private readonly maxClients: number;

  constructor(private readonly opts: RateLimitOptions) {
    this.now = opts.now ?? Date.now;
    this.maxClients = opts.maxClients ?? 10_000;
  }

  /** Takes one token; returns 0 when allowed, else the seconds until a token is available. */
  take(client: string): number {
    const wait = this.peek(client);
    if (wait === 0) this.buckets.get(client)!.tokens -= 1;
    return wait;
  }

  /** Like take() but only looks: 0 when a token is available now (the bucket is refilled either way). */
  peek(client: string): number {
    const now = this.now();
    let b = this.buckets.get(client);
    if (!b) {
      if (this.buckets.size >= this.maxClients) this.prune(now);
      b = { tokens: this.opts.capacity, at: now };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(this.opts.capacity, b.tokens + ((now - b.at) / 1000) * this.opts.perSecond);
      b.at = now;
    }
    if (b.tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond));
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) {
      const full = b.tokens + ((now - b.at) / 1000) * this.opts.perSecond >= this.opts.capacity;
      if (full) this.buckets.delete(k);
    }
    // Still full of active clients: forget the oldest half rather than grow without bound.
    if (this.buckets.size >= this.maxClients) {
      let n = Math.floor(this.buckets.size / 2);
      for (const k of this.buckets.keys()) {
        if (n-- <= 0) break;
        this.buckets.delete(k);
      }
    }
  }
}
