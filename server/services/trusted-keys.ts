/**
 * The Ed25519 keys the owner trusts to sign measurement bundles (their own signing key and colleagues'),
 * in DIR/trusted-keys.json. Public keys only; nothing here is secret.
 */
import { DomainError } from '../../app/errors';
import { z } from 'zod';
import { isFingerprint, keyFingerprint, type TrustedKey } from '../../app/bundle/bundle';
import { fromBase64 } from '../../app/sev/bytes';
import type { KeyValueBackend } from './kv-backend';

const StoredKeySchema = z.strictObject({
  fingerprint: z.string().refine(isFingerprint, 'an ed25519:... fingerprint'),
  publicKey: z.string().optional(),
  label: z.string().max(200).optional(),
  addedAt: z.string(),
});
export type StoredTrustedKey = z.infer<typeof StoredKeySchema>;

export type TrustedKeysBackend = KeyValueBackend<{ keys: StoredTrustedKey[] }>;

/** A fingerprint or public key the owner typed that is neither. */
export class TrustedKeyFormatError extends DomainError<'bad-key'> {
  constructor(message: string) {
    super('bad-key', message);
    this.name = 'TrustedKeyFormatError';
  }
}

/**
 * Reads a key as the owner gives it: a fingerprint ('ed25519:' + 43 base64 characters), or a raw public
 * key in base64 (32 bytes), optionally as the `public-key ...` line `sev-attest bundle key` prints.
 */
export function parseTrustedKey(text: string, label?: string): TrustedKey {
  const t = text.trim().replace(/^public-key\s+/, '');
  if (isFingerprint(t)) return { fingerprint: t, ...(label !== undefined ? { label } : {}) };
  let raw: Uint8Array | undefined;
  try {
    raw = fromBase64(t);
  } catch {
    raw = undefined;
  }
  if (!raw || raw.length !== 32) {
    throw new TrustedKeyFormatError(
      `not a bundle signing key: expected a fingerprint (ed25519:...) or a base64 Ed25519 public key (32 bytes)`,
    );
  }
  return { fingerprint: keyFingerprint(raw), publicKey: t, ...(label !== undefined ? { label } : {}) };
}

export class TrustedKeyStore {
  constructor(private readonly backend: TrustedKeysBackend) {}

  /** Resolves once the writes so far are committed where other replicas read them (serve --database). */
  async flushed(): Promise<void> {
    const b = this.backend as { flushed?: () => Promise<void> };
    if (b.flushed) await b.flushed();
  }

  /** The valid entries (a hand-edited entry that no longer parses is skipped). */
  list(): StoredTrustedKey[] {
    const raw: unknown = this.backend.get('keys');
    if (!Array.isArray(raw)) return [];
    return raw.flatMap((k) => {
      const r = StoredKeySchema.safeParse(k);
      return r.success ? [r.data] : [];
    });
  }

  /** Adds (or relabels) a key; returns the stored entry. */
  add(key: TrustedKey, now = new Date()): StoredTrustedKey {
    const entry: StoredTrustedKey = {
      fingerprint: key.fingerprint,
      ...(key.publicKey !== undefined ? { publicKey: key.publicKey } : {}),
      ...(key.label !== undefined ? { label: key.label } : {}),
      addedAt: now.toISOString(),
    };
    StoredKeySchema.parse(entry);
    const rest = this.list().filter((k) => k.fingerprint !== key.fingerprint);
    this.backend.set('keys', [...rest, entry]);
    return entry;
  }

  /** True when the key was trusted and is no longer. */
  remove(fingerprint: string): boolean {
    const all = this.list();
    const rest = all.filter((k) => k.fingerprint !== fingerprint);
    if (rest.length === all.length) return false;
    this.backend.set('keys', rest);
    return true;
  }
}
