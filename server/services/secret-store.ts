/**
 * Where secret VALUES live (disk passphrases, the host and owner tokens): the OS keychain, or memory.
 * Never on disk under our control: when the keychain cannot be reached we fail with
 * SecretStoreUnavailableError; there is no file fallback.
 */
import { DomainError } from '../../app/errors';
import { fromBase64, toBase64 } from '../../app/sev/bytes';

export interface SecretStore {
  /** 'database': the shared PostgreSQL of serve --database (server/storage/pg/secrets.ts). */
  readonly kind: 'keychain' | 'memory' | 'database';
  /** One line for logs and the UI: what keeps the secrets and whether they survive a restart. */
  readonly description: string;
  get(account: string): Promise<Uint8Array | undefined>;
  set(account: string, value: Uint8Array): Promise<void>;
  /** True when something was deleted. */
  delete(account: string): Promise<boolean>;
  /** Account names (sorted), optionally only those starting with `prefix`. */
  list(prefix?: string): Promise<string[]>;
  /** Throws SecretStoreUnavailableError when the store cannot write now (a locked or absent keychain). */
  probeWritable?(): Promise<void>;
}

const UNAVAILABLE_HINT =
  'the OS keychain is locked or not running (Secret Service on D-Bus): unlock it, or run with --secret-store memory, which keeps nothing';

/** The OS keychain cannot be used right now (locked, no D-Bus, no Secret Service, keytar not loadable). */
export class SecretStoreUnavailableError extends DomainError<'secret-store-unavailable'> {
  constructor(
    /** What the keychain library said, for logs. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super('secret-store-unavailable', `${UNAVAILABLE_HINT} (${detail})`, {
      hostMessage: "the owner's secret store is unavailable; try later",
    });
    if (options?.cause !== undefined) this.cause = options.cause;
    this.name = 'SecretStoreUnavailableError';
  }
}

/** The subset of keytar's API we use; injectable for tests. */
export interface KeytarLike {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
  findCredentials(service: string): Promise<Array<{ account: string; password: string }>>;
}

export interface KeytarSecretStoreOptions {
  /** The keychain "service" attribute; all our items carry it. */
  service?: string;
  /** Injected for tests; default: keytar, loaded on first use. */
  keytar?: KeytarLike;
  /** A keychain that does not answer within this time is reported unavailable (default 15 s). */
  timeoutMs?: number;
}

/** An account we write and delete to tell "not found" from "locked" (libsecret reads return nothing then). */
const PROBE_ACCOUNT = '.sev-attest-probe';

export function validateAccount(account: string): void {
  if (account.length === 0 || account.length > 512) {
    throw new TypeError('a secret account name must be 1..512 characters');
  }
  if (account === PROBE_ACCOUNT) throw new TypeError(`"${PROBE_ACCOUNT}" is reserved`);
}

/** keytar refuses an empty password ("Password is required."), so every store refuses empty values alike. */
export function validateValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array) || value.length === 0) {
    throw new TypeError('a secret value must be a non-empty byte array');
  }
}

/**
 * The keychain store on keytar (libsecret / Secret Service on Linux, Keychain on macOS, Credential
 * Vault on Windows). keytar is archived upstream (no more releases): this is the ONE class that a move
 * to Electron's safeStorage or @napi-rs/keyring replaces; nothing else knows about keytar.
 * Values are bytes, kept in the keychain as base64 text.
 */
export class KeytarSecretStore implements SecretStore {
  readonly kind = 'keychain' as const;
  readonly description: string;
  private readonly service: string;
  private readonly timeoutMs: number;
  private keytar: KeytarLike | undefined;
  private loading: Promise<KeytarLike> | undefined;

  constructor(options: KeytarSecretStoreOptions = {}) {
    this.service = options.service ?? 'sev-attest';
    this.keytar = options.keytar;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.description = `OS keychain (service "${this.service}"): secrets survive restarts`;
  }

  async get(account: string): Promise<Uint8Array | undefined> {
    validateAccount(account);
    const value = await this.call('read', (k) => k.getPassword(this.service, account));
    if (value === null) {
      // A locked Secret Service answers reads with "nothing": make sure that is a real miss.
      await this.probeWritable();
      return undefined;
    }
    return decodeValue(account, value);
  }

  async set(account: string, value: Uint8Array): Promise<void> {
    validateAccount(account);
    validateValue(value);
    const encoded = toBase64(value);
    await this.call('write', (k) => k.setPassword(this.service, account, encoded));
  }

  async delete(account: string): Promise<boolean> {
    validateAccount(account);
    const deleted = await this.call('delete', (k) => k.deletePassword(this.service, account));
    if (!deleted) await this.probeWritable();
    return deleted;
  }

  async list(prefix = ''): Promise<string[]> {
    const found = await this.call('list', (k) => k.findCredentials(this.service));
    const accounts = found.map((c) => c.account).filter((a) => a !== PROBE_ACCOUNT && a.startsWith(prefix));
    if (accounts.length === 0) await this.probeWritable();
    return [...new Set(accounts)].sort();
  }

  /** Throws SecretStoreUnavailableError unless the keychain accepts a write right now. */
  async probeWritable(): Promise<void> {
    await this.call('write', (k) => k.setPassword(this.service, PROBE_ACCOUNT, 'probe'));
    await this.call('delete', (k) => k.deletePassword(this.service, PROBE_ACCOUNT));
  }

  private async load(): Promise<KeytarLike> {
    if (this.keytar) return this.keytar;
    this.loading ??= import('keytar').then(
      (mod: KeytarLike & { default?: KeytarLike }) => (this.keytar = mod.default ?? mod),
      (e: unknown) => {
        this.loading = undefined;
        throw new SecretStoreUnavailableError(
          `the keytar native module cannot be loaded: ${e instanceof Error ? e.message : String(e)}`,
          { cause: e },
        );
      },
    );
    return this.loading;
  }

  private async call<R>(what: string, fn: (k: KeytarLike) => Promise<R>): Promise<R> {
    const k = await this.load();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SecretStoreUnavailableError(
              `the keychain did not answer a ${what} within ${this.timeoutMs} ms`,
            ),
          ),
        this.timeoutMs,
      );
      timer.unref();
    });
    try {
      return await Promise.race([fn(k), timeout]);
    } catch (e) {
      throw toUnavailable(what, e);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * keytar rejects only when the keychain itself fails. Observed on Linux: "Could not connect: No such file
 * or directory" (no D-Bus at DBUS_SESSION_BUS_ADDRESS), "Cannot autolaunch D-Bus without X11 $DISPLAY"
 * (no session bus), "Cannot create an item in a locked collection" (locked keyring), "Object does not
 * exist at path /org/freedesktop/secrets/collection/login" (no keyring and no prompter to create one).
 */
function toUnavailable(what: string, e: unknown): SecretStoreUnavailableError {
  if (e instanceof SecretStoreUnavailableError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new SecretStoreUnavailableError(`keychain ${what} failed: ${message}`, { cause: e });
}

function decodeValue(account: string, value: string): Uint8Array {
  try {
    return fromBase64(value);
  } catch {
    // Written by something else than this store: report it, never guess an encoding.
    throw new SecretFormatError(account);
  }
}

/** A keychain item under our service that is not base64 (not written by this store). */
export class SecretFormatError extends DomainError<'secret-format'> {
  constructor(readonly account: string) {
    super(
      'secret-format',
      `the keychain item "${account}" is not base64: it was not written by sev-attest; delete or re-enter it`,
    );
    this.name = 'SecretFormatError';
  }
}

/** Secrets in process memory only: nothing survives a restart (tests, --secret-store memory). */
export class InMemorySecretStore implements SecretStore {
  readonly kind = 'memory' as const;
  readonly description = 'in memory only: secrets are lost when the process exits (nothing is kept)';
  private readonly items = new Map<string, Uint8Array>();

  async get(account: string): Promise<Uint8Array | undefined> {
    validateAccount(account);
    const v = this.items.get(account);
    // Uint8Array.from copies; Buffer#slice would share memory, and a caller wiping its copy would wipe ours.
    return v === undefined ? undefined : Uint8Array.from(v);
  }

  async set(account: string, value: Uint8Array): Promise<void> {
    validateAccount(account);
    validateValue(value);
    this.items.set(account, Uint8Array.from(value));
  }

  async delete(account: string): Promise<boolean> {
    validateAccount(account);
    const v = this.items.get(account);
    if (v) v.fill(0);
    return this.items.delete(account);
  }

  async list(prefix = ''): Promise<string[]> {
    return [...this.items.keys()].filter((a) => a.startsWith(prefix)).sort();
  }
}

/** The store for `--secret-store keychain|memory`. */
export function createSecretStore(
  kind: 'keychain' | 'memory',
  options?: KeytarSecretStoreOptions,
): SecretStore {
  return kind === 'keychain' ? new KeytarSecretStore(options) : new InMemorySecretStore();
}

/**
 * The keychain store plus values the caller asked to keep in memory only (the first-run demo's own
 * passphrase when no keychain is reachable: the demo runs anyway, its secret labelled as kept in memory).
 * Everything else goes to the keychain as before, and fails as before when it cannot be reached.
 */
export class MemoryOverlaySecretStore implements SecretStore {
  private readonly memory = new InMemorySecretStore();
  readonly probeWritable?: () => Promise<void>;

  constructor(readonly inner: SecretStore) {
    if (inner.probeWritable) this.probeWritable = () => inner.probeWritable!();
  }

  get kind(): SecretStore['kind'] {
    return this.inner.kind;
  }

  get description(): string {
    return this.inner.description;
  }

  async get(account: string): Promise<Uint8Array | undefined> {
    return (await this.memory.get(account)) ?? this.inner.get(account);
  }

  /** Into the keychain; a value kept in memory under the same account is dropped once that succeeds. */
  async set(account: string, value: Uint8Array): Promise<void> {
    await this.inner.set(account, value);
    await this.memory.delete(account);
  }

  /** Keeps this value in this process's memory only (gone at exit). */
  async setInMemory(account: string, value: Uint8Array): Promise<void> {
    await this.memory.set(account, value);
  }

  async delete(account: string): Promise<boolean> {
    const inMemory = await this.memory.delete(account);
    try {
      return (await this.inner.delete(account)) || inMemory;
    } catch (e) {
      if (inMemory) return true;
      throw e;
    }
  }

  async list(prefix = ''): Promise<string[]> {
    const mem = await this.memory.list(prefix);
    let inner: string[] = [];
    try {
      inner = await this.inner.list(prefix);
    } catch (e) {
      if (mem.length === 0) throw e;
    }
    return [...new Set([...inner, ...mem])].sort();
  }
}

/** True for a store that can keep a value in memory only (MemoryOverlaySecretStore). */
export function canKeepInMemory(
  store: object,
): store is { setInMemory(account: string, value: Uint8Array): Promise<void> } {
  return typeof (store as { setInMemory?: unknown }).setInMemory === 'function';
}
