/**
 * Settings with serve --database: the deployment-wide ones (the key server's URL, the approval timeout,
 * the launch connection lifetime, the SNP missing-CRL choice, the KBS approval wait) live in the shared
 * kv_store (store 'settings'), so a change made on one replica is read by every other within
 * milliseconds (NOTIFY, PgKeyValueBackend); the per-replica ones (listen address and TLS, tunnel, trusted
 * CA files on this machine, first-run flag) stay in the replica's data directory. A deployment-wide field
 * the database does not hold yet is read from the local file, so a replica's existing settings carry on.
 */
import type { SettingsBackend } from '../../services/settings-store';
import type { PgKeyValueBackend } from './kv';

export const SHARED_SETTING_FIELDS = [
  'kdsUrl',
  'approvalTimeoutSeconds',
  'connectionTtlSeconds',
  'snpAllowMissingCrl',
  'kbsApprovalWaitSeconds',
] as const;

type Stored = Record<string, unknown>;

function pick(o: Stored, shared: boolean): Stored {
  const out: Stored = {};
  for (const [k, v] of Object.entries(o)) {
    if ((SHARED_SETTING_FIELDS as readonly string[]).includes(k) === shared) out[k] = v;
  }
  return out;
}

const asObject = (v: unknown): Stored =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Stored) : {};

export class SharedSettingsBackend implements SettingsBackend {
  readonly path: string;

  constructor(
    private readonly local: SettingsBackend,
    private readonly shared: PgKeyValueBackend<{ settings: Stored }>,
  ) {
    this.path = `${local.path} (this replica's settings) and ${shared.path} (the deployment's)`;
  }

  get<K extends 'settings'>(_key: K): { settings: Stored }[K] {
    const local = asObject(this.local.get('settings'));
    return { ...local, ...pick(asObject(this.shared.get('settings')), true) };
  }

  set<K extends 'settings'>(_key: K, value: { settings: Stored }[K]): void {
    const v = asObject(value);
    const sharedNow = asObject(this.shared.get('settings'));
    const sharedNext = pick(v, true);
    // Only a change of a deployment-wide field writes the shared row (a listener change on this replica
    // does not rewrite, and so cannot conflict with, another replica's settings change).
    if (JSON.stringify(sorted(sharedNow)) !== JSON.stringify(sorted(sharedNext))) {
      this.shared.set('settings', sharedNext);
    }
    this.local.set('settings', { ...asObject(this.local.get('settings')), ...pick(v, false), ...sharedNext });
  }

  /** Resolves once the deployment-wide part is committed (rejects: not saved, see PgKeyValueBackend). */
  flushed(): Promise<void> {
    return this.shared.flushed();
  }
}

function sorted(o: Stored): Stored {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
