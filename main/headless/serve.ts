/**
 * The composition root of headless mode (`sev-attest serve`): builds every service from options, starts
 * the listener, and closes everything in order (listener drained first, then approvals, connections with
 * their keys wiped, and the audit log). The desktop app builds the same services in its main process.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { TrustStore, anchorName } from '../../app/sev/roots';
import { isSevError } from '../../app/sev/errors';
import { DiskCekCache, KdsClient } from '../../app/sev/kds';
import type { VmProfile } from '../../app/profile';
import { loadOrCreateTlsCert } from '../listener/tls-cert';
import { Listener, type ListenerLimits } from '../listener/server';
import type { RateLimitOptions } from '../listener/rate-limit';
import { ApprovalService } from '../services/approvals';
import { ArtifactStore } from '../services/artifact-store';
import { AttestationService, type CekSource } from '../services/attestation';
import { AuditLog } from '../services/audit-log';
import { ConnectionTable } from '../services/connections';
import { ExpectedDigests } from '../services/expected-digests';
import { createConfBackend } from '../services/kv-backend';
import { OwnerService } from '../services/owner-service';
import { ProfileStore } from '../services/profile-store';
import { createSecretStore, type SecretStore } from '../services/secret-store';
import { SettingsStore } from '../services/settings-store';

export interface ServeOptions {
  host: string;
  port: number;
  dataDir: string;
  /** Extra ASK||ARK files (AMD's ask_ark_<gen>.cert layout) trusted besides the pinned AMD roots. */
  trustCa?: string[];
  /** Also trust the pinned AMD roots (default true; tests of a simulated platform may turn it off). */
  trustAmdRoots?: boolean;
  secretStore?: 'keychain' | 'memory' | SecretStore;
  tls?: boolean;
  /** The owner token; else DIR/owner-token, generated on first use (mode 0600). */
  ownerToken?: string;
  hostToken?: string;
  allowedHosts?: string[];
  /** AMD key server base URL (default: the settings' kdsUrl, https://kdsintf.amd.com). */
  kdsUrl?: string;
  /** Where a signed CEK comes from when the chain's is unsigned; default a KdsClient on kdsUrl with a disk cache in DIR/kds-cache. */
  kds?: CekSource;
  approvalTimeoutSeconds?: number;
  connectionTtlSeconds?: number;
  rateLimit?: Omit<RateLimitOptions, 'now'> | false;
  limits?: Partial<ListenerLimits>;
  log?: (line: string) => void;
  version?: string;
}

export interface RunningService {
  url: string;
  port: number;
  host: string;
  ownerToken: string;
  /** Set when the token was read from or written to DIR/owner-token. */
  ownerTokenFile: string | undefined;
  tlsFingerprint: string | undefined;
  tlsCertFile: string | undefined;
  trustAnchors: string[];
  secretStore: SecretStore;
  attestation: AttestationService;
  owner: OwnerService;
  profiles: ProfileStore;
  artifacts: ArtifactStore;
  settings: SettingsStore;
  /** The anchors chains are verified against; the demo host adds its simulated root here, labelled 'extra'. */
  trust: TrustStore;
  /** The expected-digest cache (one firmware pass per artifact), shared with previews of draft profiles. */
  digests: ExpectedDigests;
  audit: AuditLog;
  approvals: ApprovalService;
  connections: ConnectionTable;
  /** Drains the listener and closes every service; safe to call twice. */
  close(): Promise<void>;
}

/** The owner token: given, or DIR/owner-token (read, or generated with mode 0600). */
export function resolveOwnerToken(
  dataDir: string,
  given: string | undefined,
): { token: string; file: string | undefined } {
  if (given !== undefined && given !== '') {
    if (given.length < 16) throw new Error('SEV_ATTEST_OWNER_TOKEN must be at least 16 characters');
    return { token: given, file: undefined };
  }
  const file = join(dataDir, 'owner-token');
  if (fs.existsSync(file)) {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token.length >= 16) return { token, file };
  }
  const token = randomBytes(32).toString('base64url');
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
  return { token, file };
}

/** Builds the services and starts the listener. */
export async function startService(opts: ServeOptions): Promise<RunningService> {
  const log = opts.log ?? (() => {});
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const trust = opts.trustAmdRoots === false ? TrustStore.empty() : TrustStore.pinned();
  for (const file of opts.trustCa ?? []) {
    try {
      trust.addAskArk(new Uint8Array(fs.readFileSync(file)), file);
    } catch (e) {
      throw new Error(`--trust-ca ${file}: ${isSevError(e) || e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
    }
  }
  const secrets =
    typeof opts.secretStore === 'object'
      ? opts.secretStore
      : createSecretStore(opts.secretStore ?? 'keychain');
  const settings = new SettingsStore({
    backend: createConfBackend({ cwd: opts.dataDir, configName: 'settings', defaults: { settings: {} } }),
  });
  const s = settings.get();
  const profiles = new ProfileStore({
    backend: createConfBackend({
      cwd: opts.dataDir,
      configName: 'profiles',
      defaults: { profiles: {} as Record<string, VmProfile> },
    }),
  });
  const artifacts = new ArtifactStore({ dir: join(opts.dataDir, 'artifacts') });
  const audit = AuditLog.open({ file: join(opts.dataDir, 'audit.log') });
  for (const w of audit.openReport.warnings) log(`audit log: ${w}`);
  const approvals = new ApprovalService({
    timeoutSeconds: () => opts.approvalTimeoutSeconds ?? settings.get().approvalTimeoutSeconds,
  });
  const connections = new ConnectionTable({
    ttlMs: (opts.connectionTtlSeconds ?? s.connectionTtlSeconds) * 1000,
  });
  const digests = new ExpectedDigests({
    firmwarePath: (sha) => (artifacts.has(sha) ? artifacts.path(sha) : undefined),
  });
  const attestation = new AttestationService({
    profiles,
    secrets,
    trust,
    connections,
    approvals,
    digests,
    audit,
    kds:
      opts.kds ??
      new KdsClient({
        baseUrl: opts.kdsUrl ?? s.kdsUrl,
        cache: new DiskCekCache(join(opts.dataDir, 'kds-cache')),
        // A host waits on this: two attempts at most.
        maxAttempts: 2,
      }),
  });

  let tlsInfo: { keyPem: string; certPem: string; fingerprint: string } | undefined;
  let tlsCertFile: string | undefined;
  if (opts.tls) {
    const names = [
      ...new Set(['localhost', '127.0.0.1', '::1', opts.host, ...(opts.allowedHosts ?? [])]),
    ].filter((n) => n !== '0.0.0.0' && n !== '::');
    tlsInfo = loadOrCreateTlsCert(opts.dataDir, names);
    tlsCertFile = join(opts.dataDir, 'tls-cert.pem');
  }
  const owner = new OwnerService({
    profiles,
    secrets,
    artifacts,
    approvals,
    connections,
    digests,
    audit,
    tls: () => (tlsInfo ? { enabled: true, fingerprint: tlsInfo.fingerprint } : { enabled: false }),
    ...(opts.version ? { version: opts.version } : {}),
  });
  const { token: ownerToken, file: ownerTokenFile } = resolveOwnerToken(opts.dataDir, opts.ownerToken);
  const listener = new Listener({
    host: opts.host,
    port: opts.port,
    ...(tlsInfo ? { tls: tlsInfo } : {}),
    ownerToken,
    ...(opts.hostToken ? { hostToken: opts.hostToken } : {}),
    allowedHosts: opts.allowedHosts ?? s.listener.allowedHosts,
    attestation,
    owner,
    ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    log,
    ...(opts.version ? { version: opts.version } : {}),
  });
  let bound: { port: number; host: string; url: string };
  try {
    bound = await listener.start();
  } catch (e) {
    approvals.close();
    connections.close();
    owner.close();
    await audit.close();
    throw e;
  }
  const trustAnchors = trust.anchors().map((a) => anchorName(a.label));
  audit.append({
    type: 'listener',
    result: 'info',
    message: `listening on ${bound.url}`,
    details: { tls: tlsInfo?.fingerprint ?? null, secretStore: secrets.kind, trustAnchors },
  });
  let closing: Promise<void> | undefined;
  return {
    ...bound,
    ownerToken,
    ownerTokenFile,
    tlsFingerprint: tlsInfo?.fingerprint,
    tlsCertFile,
    trustAnchors,
    secretStore: secrets,
    attestation,
    owner,
    profiles,
    artifacts,
    settings,
    trust,
    digests,
    audit,
    approvals,
    connections,
    close: () =>
      (closing ??= (async () => {
        await listener.close();
        approvals.close();
        connections.close();
        owner.close();
        try {
          audit.append({ type: 'listener', result: 'info', message: 'stopped' });
        } finally {
          // Writes the events still pending (fire-and-forget ones) before the file closes.
          await audit.close();
        }
      })()),
  };
}
