/**
 * Non-secret settings of the listener and the app. The host token and the owner token are secrets: they
 * live in the SecretStore, never here.
 */
import { DomainError } from '../../app/errors';
import { z } from 'zod';
import type { KeyValueBackend } from './kv-backend';
import { zodIssues } from './store-util';

/**
 * The listener's default port. 8470 is not registered with IANA for a common service and is not a
 * frequent development port; it is a default only: `listener.port` changes it (0 picks a free port).
 */
export const DEFAULT_LISTENER_PORT = 8470;
export const DEFAULT_KDS_URL = 'https://kdsintf.amd.com';

const hostName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/,
    'a host name, an IPv4 or an IPv6 address',
  );
const port = z.number().int().min(0).max(65535);

/** `user@host` or `user@host:port`; an IPv6 host goes in brackets. */
export const TunnelTargetSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}@(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/,
    'user@host or user@host:port',
  );

export const ListenerSettingsSchema = z.object({
  host: hostName.default('127.0.0.1'),
  port: port.default(DEFAULT_LISTENER_PORT),
  tls: z.boolean().default(false),
  /** Extra Host header names accepted (besides the listen address and localhost). */
  allowedHosts: z.array(hostName).max(64).default([]),
});

export const TunnelSettingsSchema = z
  .object({
    enabled: z.boolean().default(false),
    target: TunnelTargetSchema.optional(),
    /** The port opened on the remote host (ssh -R remotePort:listener). */
    remotePort: port.default(DEFAULT_LISTENER_PORT),
    /** The private key file (ssh -i), so a tunnel restored at start-up uses the same key. */
    identityFile: z.string().min(1).max(4096).optional(),
  })
  .refine((t) => !t.enabled || t.target !== undefined, {
    message: 'a target (user@host[:port]) is required when the tunnel is enabled',
    path: ['target'],
  });

export const SettingsSchema = z.object({
  listener: ListenerSettingsSchema.default(ListenerSettingsSchema.parse({})),
  kdsUrl: z.url({ protocol: /^https?$/ }).default(DEFAULT_KDS_URL),
  /** Extra PEM files of CAs trusted for the KDS / TLS (absolute paths). */
  trustedCaFiles: z
    .array(
      z
        .string()
        .min(1)
        .max(4096)
        .refine((p) => p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p), 'an absolute path'),
    )
    .max(64)
    .default([]),
  approvalTimeoutSeconds: z.number().int().min(1).max(86_400).default(120),
  connectionTtlSeconds: z.number().int().min(10).max(86_400).default(600),
  /**
   * SEV-SNP guests (Trustee KBS): accept a report when AMD's revocation list cannot be fetched (the
   * attestation then says revocation was not checked). Off: such an attestation is refused.
   */
  snpAllowMissingCrl: z.boolean().default(false),
  /** How long a guest's /kbs/v0/attest waits for the owner's decision on a manual profile (seconds). */
  kbsApprovalWaitSeconds: z.number().int().min(1).max(600).default(120),
  tunnel: TunnelSettingsSchema.default(TunnelSettingsSchema.parse({})),
  firstRunDone: z.boolean().default(false),
});
export type Settings = z.infer<typeof SettingsSchema>;

/** A partial update: nested objects are merged key by key. */
export type SettingsUpdate = Partial<
  Omit<Settings, 'listener' | 'tunnel'> & {
    listener: Partial<Settings['listener']>;
    tunnel: Partial<Settings['tunnel']>;
  }
>;

export class SettingsValidationError extends DomainError<'settings-invalid'> {
  constructor(readonly issues: Array<{ path: string; message: string }>) {
    super('settings-invalid', `invalid settings: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'SettingsValidationError';
  }
}

export type SettingsBackend = KeyValueBackend<{ settings: Record<string, unknown> }>;

/** The default settings. */
export function defaultSettings(): Settings {
  return SettingsSchema.parse({});
}

export class SettingsStore {
  private readonly backend: SettingsBackend;
  private lastProblems: string[] = [];
  private storedShapeProblem: string | undefined;
  private readonly listeners = new Set<(s: Settings) => void>();

  constructor(options: { backend: SettingsBackend }) {
    this.backend = options.backend;
  }

  /**
   * The current settings, validated. A stored field that is invalid (hand-edited) falls back to its
   * default and is reported in problems(); the file is not rewritten until the next update().
   */
  get(): Settings {
    const stored = this.readStored();
    const problems: string[] = this.storedShapeProblem ? [this.storedShapeProblem] : [];
    const whole = SettingsSchema.safeParse(stored);
    if (whole.success) {
      this.lastProblems = problems;
      return whole.data;
    }
    const fixed: Record<string, unknown> = {};
    for (const key of Object.keys(SettingsSchema.shape) as Array<keyof Settings>) {
      const field = SettingsSchema.shape[key].safeParse(stored[key]);
      if (field.success) {
        fixed[key] = field.data;
      } else {
        problems.push(
          `${key}: ${zodIssues(field.error)
            .map((i) => (i.path === '(root)' ? i.message : `${i.path}: ${i.message}`))
            .join('; ')} (using the default)`,
        );
      }
    }
    this.lastProblems = problems;
    return SettingsSchema.parse(fixed);
  }

  /** Fields of the stored settings that were invalid at the last get(). */
  problems(): string[] {
    return [...this.lastProblems];
  }

  /** Merges, validates and stores; throws SettingsValidationError without writing anything. */
  update(partial: SettingsUpdate): Settings {
    if (typeof partial !== 'object' || partial === null || Array.isArray(partial)) {
      throw new SettingsValidationError([{ path: '(root)', message: 'expected an object' }]);
    }
    const unknownKeys = Object.keys(partial).filter((k) => !(k in SettingsSchema.shape));
    if (unknownKeys.length > 0) {
      throw new SettingsValidationError(unknownKeys.map((k) => ({ path: k, message: 'unknown setting' })));
    }
    const current = this.get();
    const merged = {
      ...current,
      ...partial,
      listener: { ...current.listener, ...(partial.listener ?? {}) },
      tunnel: { ...current.tunnel, ...(partial.tunnel ?? {}) },
    };
    const parsed = SettingsSchema.safeParse(merged);
    if (!parsed.success) throw new SettingsValidationError(zodIssues(parsed.error));
    this.backend.set('settings', parsed.data);
    this.lastProblems = [];
    for (const cb of [...this.listeners]) {
      try {
        cb(structuredClone(parsed.data));
      } catch {
        // A broken listener must not fail a completed write.
      }
    }
    return parsed.data;
  }

  /** Called after every update(); returns the unsubscribe function. */
  onChange(cb: (settings: Settings) => void): () => void {
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
    };
  }

  private readStored(): Record<string, unknown> {
    const raw: unknown = this.backend.get('settings');
    if (raw === undefined) return {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      this.storedShapeProblem = `settings in ${this.backend.path} is not an object (using the defaults)`;
      return {};
    }
    this.storedShapeProblem = undefined;
    return raw as Record<string, unknown>;
  }
}
