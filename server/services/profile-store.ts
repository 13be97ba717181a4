/**
 * The owner's VM profiles, one JSON map { id: profile } in a key-value backend (conf / electron-store).
 * Every read re-validates what is on disk: a hand-edited entry that no longer parses is reported in
 * problems() and skipped, never fatal, and never rewritten behind the owner's back. The schema check of an
 * entry is cached against the entry's exact JSON, so only an entry that changed is parsed again.
 */
import { randomUUID } from 'node:crypto';
import { DomainError } from '../../app/errors';
import { VmIdSchema, VmProfileSchema, type VmProfile } from '../../app/profile';
import type { KeyValueBackend } from './kv-backend';
import { zodIssues } from './store-util';

export type ProfileBackend = KeyValueBackend<{ profiles: Record<string, VmProfile> }>;

/** A profile that does not satisfy VmProfileSchema. */
export class ProfileValidationError extends DomainError<'profile-invalid'> {
  constructor(readonly issues: Array<{ path: string; message: string }>) {
    super('profile-invalid', `invalid profile: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'ProfileValidationError';
  }
}

/** An entry on disk that was skipped, with why. */
export interface ProfileProblem {
  id: string;
  message: string;
}

export type ProfileChange = { type: 'put'; id: string; profile: VmProfile } | { type: 'delete'; id: string };

export class ProfileStore {
  private readonly backend: ProfileBackend;
  private readonly now: () => Date;
  private readonly listeners = new Set<(change: ProfileChange) => void>();
  private lastProblems: ProfileProblem[] = [];
  /** Per stored key, the result of the last schema check and the exact JSON it was made on. */
  private checked = new Map<string, CheckedEntry>();

  constructor(options: { backend: ProfileBackend; now?: () => Date }) {
    this.backend = options.backend;
    this.now = options.now ?? (() => new Date());
  }

  /** Valid profiles, sorted by id. Invalid entries are skipped and listed in problems(). */
  list(): VmProfile[] {
    // Valid entries are stored under their own id, so sorting by key sorts by id.
    return [...this.readValid().entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, json]) => parseChecked(json));
  }

  get(id: string): VmProfile | undefined {
    const json = this.readValid().get(id);
    return json === undefined ? undefined : parseChecked(json);
  }

  /** The entries the last read skipped (empty when everything on disk is valid). */
  problems(): ProfileProblem[] {
    return this.lastProblems.map((p) => ({ ...p }));
  }

  /**
   * Validates and stores a profile (create or replace); keeps createdAt, sets updatedAt and a new
   * revision (connections launched for the previous revision no longer release secrets).
   */
  put(input: unknown): VmProfile {
    const parsed = VmProfileSchema.safeParse(input);
    if (!parsed.success) throw new ProfileValidationError(zodIssues(parsed.error));
    const raw = this.readRaw();
    const previous = VmProfileSchema.safeParse(raw[parsed.data.id]);
    const time = this.now().toISOString();
    const profile: VmProfile = {
      ...parsed.data,
      createdAt: previous.success ? (previous.data.createdAt ?? time) : time,
      updatedAt: time,
      revision: randomUUID(),
    };
    // Other entries are written back exactly as read, valid or not (hence the cast).
    this.backend.set('profiles', { ...raw, [profile.id]: profile } as Record<string, VmProfile>);
    this.emit({ type: 'put', id: profile.id, profile });
    return structuredClone(profile);
  }

  /** True when a profile (valid or not) was removed. */
  delete(id: string): boolean {
    const raw = this.readRaw();
    if (!Object.prototype.hasOwnProperty.call(raw, id)) return false;
    const rest = { ...raw };
    delete rest[id];
    this.backend.set('profiles', rest as Record<string, VmProfile>);
    this.emit({ type: 'delete', id });
    return true;
  }

  /**
   * Resolves once every put/delete so far is committed where other replicas read it (serve --database);
   * at once for a file. Owner writes await it before they answer; it rejects when the write was lost.
   */
  async flushed(): Promise<void> {
    const b = this.backend as { flushed?: () => Promise<void> };
    if (b.flushed) await b.flushed();
  }

  /** Called after every put/delete made through this store; returns the unsubscribe function. */
  onChange(cb: (change: ProfileChange) => void): () => void {
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
    };
  }

  private emit(change: ProfileChange): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(change);
      } catch {
        // A broken listener must not undo or fail a completed write.
      }
    }
  }

  private readRaw(): Record<string, unknown> {
    const raw: unknown = this.backend.get('profiles');
    if (raw === undefined || raw === null) return {};
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ProfileValidationError([
        {
          path: 'profiles',
          message: `expected an object in ${this.backend.path}, found ${Array.isArray(raw) ? 'an array' : typeof raw}`,
        },
      ]);
    }
    return raw as Record<string, unknown>;
  }

  /** The valid entries as the JSON of their schema output, by id; problems() is updated. */
  private readValid(): Map<string, string> {
    const out = new Map<string, string>();
    const problems: ProfileProblem[] = [];
    let raw: Record<string, unknown>;
    try {
      raw = this.readRaw();
    } catch (e) {
      this.lastProblems = [{ id: '*', message: e instanceof Error ? e.message : String(e) }];
      return out;
    }
    // Rebuilt on every read, so removed entries leave the cache.
    const checked = new Map<string, CheckedEntry>();
    for (const [key, value] of Object.entries(raw)) {
      const json = JSON.stringify(value);
      const prev = this.checked.get(key);
      const entry =
        prev !== undefined && json !== undefined && prev.json === json ? prev : checkEntry(key, value);
      if (json !== undefined) checked.set(key, { ...entry, json });
      if ('profileJson' in entry) out.set(key, entry.profileJson);
      else problems.push({ id: key, message: entry.problem });
    }
    this.checked = checked;
    this.lastProblems = problems;
    return out;
  }
}

/**
 * A fresh profile from the cached JSON of a schema output, so no caller can change the cache. Profiles
 * are plain JSON data (read from a JSON file, through a schema of JSON types), and JSON.parse copies one
 * faster than structuredClone.
 */
function parseChecked(profileJson: string): VmProfile {
  return JSON.parse(profileJson) as VmProfile;
}

/** A valid entry's schema output as JSON, or why the entry is skipped. */
type CheckResult = { profileJson: string } | { problem: string };
type CheckedEntry = CheckResult & { json: string };

/** The schema check of one stored entry. */
function checkEntry(key: string, value: unknown): CheckResult {
  const parsed = VmProfileSchema.safeParse(value);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; ');
    return { problem: `skipped: ${issues}` };
  }
  if (parsed.data.id !== key || !VmIdSchema.safeParse(key).success) {
    return { problem: `skipped: stored under "${key}" but its id is "${parsed.data.id}"` };
  }
  return { profileJson: JSON.stringify(parsed.data) };
}
