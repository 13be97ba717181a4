/**
 * Whole-chain results of verifyChain, remembered for a bounded time and count. The result is a pure
 * function of the input bytes (PDH, cert-chain, CEK) and the trust store, so a repeated launch from the
 * same platform skips the signature checks. Only successes are kept (a failure is always re-checked),
 * and any change to the trust store's anchors drops every entry.
 */
import { createHash } from 'node:crypto';
import type { ChainInput, ChainResult } from '../../app/sev/chain';
import type { TrustAnchor, TrustStore } from '../../app/sev/roots';

export interface VerifiedChainCacheOptions {
  /** How long a verified chain is reused (default 10 minutes). */
  ttlMs?: number;
  /** Most chains kept; the oldest goes first (default 1024). */
  maxEntries?: number;
  now?: () => number;
}

/** A bounded, expiring cache of verified chains for one trust store. */
export class VerifiedChainCache {
  private readonly entries = new Map<string, { result: ChainResult; expires: number }>();
  private anchors: TrustAnchor[] = [];
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly trust: TrustStore,
    options: VerifiedChainCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10 * 60_000;
    this.maxEntries = Math.max(1, options.maxEntries ?? 1024);
    this.now = options.now ?? Date.now;
    this.anchors = [...trust.anchors()];
  }

  /** sha256 over the length-prefixed PDH, cert-chain and CEK (absent and empty CEK differ). */
  key(input: ChainInput): string {
    const h = createHash('sha256');
    const part = (b: Uint8Array | undefined): void => {
      const len = Buffer.alloc(5);
      len.writeUInt8(b === undefined ? 0 : 1, 0);
      len.writeUInt32LE(b?.length ?? 0, 1);
      h.update(len);
      if (b) h.update(b);
    };
    part(input.pdh);
    part(input.certChain);
    part(input.cek);
    return h.digest('hex');
  }

  /** The verified result for these bytes, unless it expired or the trust store changed since. */
  get(key: string): ChainResult | undefined {
    this.checkTrust();
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.result;
  }

  /** Remembers a successful verification. */
  set(key: string, result: ChainResult): void {
    this.checkTrust();
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const first = this.entries.keys().next();
      if (first.done) break;
      this.entries.delete(first.value);
    }
    this.entries.set(key, { result, expires: this.now() + this.ttlMs });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Drops everything when the anchors are no longer exactly the ones the entries were verified under. */
  private checkTrust(): void {
    const current = this.trust.anchors();
    if (current.length === this.anchors.length && current.every((a, i) => a === this.anchors[i])) return;
    this.entries.clear();
    this.anchors = [...current];
  }
}

/** verifyChain through the cache: a hit returns the remembered result, a success is remembered. */
export function verifyChainCached(
  cache: VerifiedChainCache,
  input: ChainInput,
  verify: (input: ChainInput) => ChainResult,
): ChainResult {
  const key = cache.key(input);
  const hit = cache.get(key);
  if (hit) return hit;
  const result = verify(input);
  cache.set(key, result);
  return result;
}
