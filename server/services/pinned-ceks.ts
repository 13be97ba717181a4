/**
 * CEKs the owner pinned per chip, for offline owners (DIR/pinned-ceks.json): the ASK-signed CEK AMD's
 * key server gives for a chip id, imported once. A pinned CEK takes precedence over fetching, and proves a
 * claimed cpu-id the same way the key server's answer does. Public data only; nothing here is secret.
 */
import { z } from 'zod';
import { DomainError } from '../../app/errors';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import { checkSignedCek } from '../../app/sev/kds';
import type { KeyValueBackend } from './kv-backend';

const CHIP_HEX = /^[0-9a-f]{128}$/;

const StoredCekSchema = z.strictObject({
  chipId: z.string().regex(CHIP_HEX),
  cek: z.string().min(1).max(4096),
  label: z.string().max(200).optional(),
  pinnedAt: z.string(),
});
export type PinnedCek = z.infer<typeof StoredCekSchema>;

export type PinnedCeksBackend = KeyValueBackend<{ ceks: PinnedCek[] }>;

/** A chip id as the owner gives it (128 hex digits, any case) in the store's lower-case hex. */
export function normalizeChipIdHex(text: string): string {
  const t = text.trim().toLowerCase();
  if (!CHIP_HEX.test(t)) throw new DomainError('bad-request', 'chip id: 128 hex digits (cpu0-id, 64 bytes)');
  return t;
}

export class PinnedCekStore {
  constructor(private readonly backend: PinnedCeksBackend) {}

  /** Resolves once the writes so far are committed where other replicas read them (serve --database). */
  async flushed(): Promise<void> {
    const b = this.backend as { flushed?: () => Promise<void> };
    if (b.flushed) await b.flushed();
  }

  /** The valid entries, by chip id (a hand-edited entry that no longer parses is skipped). */
  list(): PinnedCek[] {
    const raw: unknown = this.backend.get('ceks');
    if (!Array.isArray(raw)) return [];
    return raw
      .flatMap((k) => {
        const r = StoredCekSchema.safeParse(k);
        return r.success ? [r.data] : [];
      })
      .sort((a, b) => (a.chipId < b.chipId ? -1 : a.chipId > b.chipId ? 1 : 0));
  }

  /** The pinned CEK of a chip (hex, any case), if any. */
  get(chipIdHex: string): Uint8Array | undefined {
    const id = chipIdHex.toLowerCase();
    const e = this.list().find((k) => k.chipId === id);
    if (!e) return undefined;
    try {
      const cek = fromBase64(e.cek);
      checkSignedCek(cek, 'pinned CEK');
      return cek;
    } catch {
      return undefined;
    }
  }

  /** Pins (or replaces) a chip's CEK: it must be an ASK-signed CEK certificate. */
  pin(chipIdHex: string, cek: Uint8Array, label?: string, now = new Date()): PinnedCek {
    const chipId = normalizeChipIdHex(chipIdHex);
    try {
      checkSignedCek(cek, 'cek');
    } catch (e) {
      throw new DomainError('bad-request', e instanceof Error ? e.message : String(e));
    }
    const entry: PinnedCek = {
      chipId,
      cek: toBase64(cek),
      ...(label !== undefined ? { label } : {}),
      pinnedAt: now.toISOString(),
    };
    const rest = this.list().filter((k) => k.chipId !== chipId);
    this.backend.set('ceks', [...rest, entry]);
    return entry;
  }

  /** True when a CEK was pinned for the chip and no longer is. */
  unpin(chipIdHex: string): boolean {
    const chipId = normalizeChipIdHex(chipIdHex);
    const all = this.list();
    const rest = all.filter((k) => k.chipId !== chipId);
    if (rest.length === all.length) return false;
    this.backend.set('ceks', rest);
    return true;
  }
}
