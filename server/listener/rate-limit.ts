/**
 * Token buckets for the listener. `RateLimiter`: one bucket per key, `capacity` requests in a burst,
 * refilled at `perSecond`. Keys are client groups (clientGroup): one IPv4 /24 or one IPv6 /64 counts as
 * one client, so a host with many addresses in its subnet gets one budget, not one per address.
 */
import { isIP } from 'node:net';

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

/** Expands an IPv6 address to its 8 hextets (undefined when it is not one). */
function ipv6Hextets(a: string): number[] | undefined {
  let s = a.split('%')[0]!;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    s = s.slice(0, -v4[1]!.length).replace(/:$/, ':0');
    if (s.endsWith('::0')) s = s.slice(0, -1);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (p: string) => (p === '' ? [] : p.split(':').map((h) => parseInt(h, 16)));
  const head = parse(halves[0]!);
  const back = halves.length === 2 ? parse(halves[1]!) : [];
  const want = 8 - tail.length;
  const fill = halves.length === 2 ? want - head.length - back.length : 0;
  const all = [...head, ...new Array<number>(Math.max(0, fill)).fill(0), ...back, ...tail];
  return all.length === 8 && all.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff) ? all : undefined;
}

/**
 * The client group of an address: IPv4 by /24 ("192.0.2.0/24"), IPv6 by /64 ("2001:db8:1:2::/64"),
 * IPv4-mapped IPv6 as IPv4. Anything else is its own group.
 */
export function clientGroup(address: string): string {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(a) === 4) return `${a.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIP(a) === 6) {
    const h = ipv6Hextets(a);
    if (h)
      return `${h
        .slice(0, 4)
        .map((x) => x.toString(16))
        .join(':')}::/64`;
  }
  return a;
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
