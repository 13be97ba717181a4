/** A token bucket per client address: `capacity` requests in a burst, refilled at `perSecond`. */
export interface RateLimitOptions {
  capacity: number;
  perSecond: number;
  /** Most addresses tracked at once; idle full buckets are dropped first (default 10000). */
  maxClients?: number;
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
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
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
