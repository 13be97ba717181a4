/**
 * The one composition root: constructs every service from options and wires their dependencies. It starts
 * nothing (server/serve/serve.ts starts the listener and the tunnel); the desktop app (main/index.ts) and
 * headless `sev-attest serve` both build their services here.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { VmProfile } from '../app/profile';
import { DomainError, messageOf } from '../app/errors';
import { KbsTokenIssuer } from '../app/kbs/jwt';
import { DiskCekCache, KdsClient } from '../app/sev/kds';
import { TrustStore } from '../app/sev/roots';
import { SnpKdsClient } from '../app/snp/kds';
import { SnpTrustStore } from '../app/snp/roots';
import { bundleRoutes } from './listener/bundle-routes';
import { hostSetupRoutes } from './listener/host-setup-routes';
import { kbsRoutes } from './listener/kbs-routes';
import { ListenerController } from './listener/listener-controller';
import type { ListenerLimits } from './listener/server';
import { Listener } from './listener/server';
import type { RateLimitOptions } from './listener/rate-limit';
import { readExtraSnpRoots } from './serve/snp-roots-file';
import { TunnelController } from './serve/tunnel-controller';
import { ApprovalService } from './services/approvals';
import { ArtifactImportService } from './services/artifact-import';
import { ArtifactStore } from './services/artifact-store';
import { AttestationService, type AuditSink, type CekSource } from './services/attestation';
import { AuditLog } from './services/audit-log';
import { BundleService } from './services/bundle-service';
import { ConnectionTable, type ConnectionStore } from './services/connections';
import { DemoService } from './services/demo-service';
import { ExpectedDigests } from './services/expected-digests';
import { ExpectedSnpMeasurements } from './services/expected-snp-measurements';
import { HostSetupService } from './services/host-setup-service';
import { KbsService, type SnpKeySource } from './services/kbs-service';
import { snpMeasurementRows, SnpIdKeyService } from './services/snp-id-keys';
import { createConfBackend, type KeyValueBackend } from './services/kv-backend';
import { OwnerService } from './services/owner-service';
import { ProfileStore } from './services/profile-store';
import { SecretService } from './services/secret-service';
import { createSecretStore, MemoryOverlaySecretStore, type SecretStore } from './services/secret-store';
import { SettingsStore } from './services/settings-store';
import { TrustedKeyStore, type StoredTrustedKey } from './services/trusted-keys';
import { PinnedCekStore, type PinnedCek } from './services/pinned-ceks';
import { PgApprovalReplication } from './storage/pg/approvals';
import { PgConnectionStore } from './storage/pg/connections';
import { PgKbsSessionStore } from './storage/pg/kbs-sessions';
import { SharedSettingsBackend } from './storage/pg/settings';
import { PgArtifactReplica } from './storage/pg/artifacts';
import { PgCekCache, PgSnpKdsCache } from './storage/pg/kds-cache';
import { PgSecretStore } from './storage/pg/secrets';
import { AuditChainMirror, type SharedDatabase } from './storage/pg/shared';

/**
 * Makes the JSON key-value file behind one store (profiles, settings). Headless mode uses `conf`
 * (createConfBackend); the desktop app passes one on electron-store, which extends conf.
 */
export type KeyValueBackendFactory = <T extends Record<string, unknown>>(options: {
  cwd: string;
  configName: string;
  defaults: T;
}) => KeyValueBackend<T>;

export interface ServeOptions {
  /** Bind address; default the stored setting (listener.host, 127.0.0.1 unless changed). */
  host?: string;
  /** Default the stored setting (listener.port, 8470 unless changed); 0 picks a free port. */
  port?: number;
  dataDir: string;
  /** The JSON stores' backend (default: conf files in dataDir). */
  kvBackend?: KeyValueBackendFactory;
  /** Extra ASK||ARK files (AMD's ask_ark_<gen>.cert layout) trusted besides the pinned AMD roots. */
  trustCa?: string[];
  /**
   * SEV-SNP root files (serve --snp-roots; PEM ARK, ASK, ASVK of one product and the ARK's CRL): each an
   * extra root set beside AMD's pinned roots (a lab or simulated platform), named by its file.
   */
  snpRoots?: string[];
  /** Also trust the pinned AMD roots (default true; tests of a simulated platform may turn it off). */
  trustAmdRoots?: boolean;
  secretStore?: 'keychain' | 'memory' | SecretStore;
  /** HTTPS with the self-signed certificate in dataDir; default the stored setting (listener.tls). */
  tls?: boolean;
  /** The owner token; else DIR/owner-token, generated on first use (mode 0600). */
  ownerToken?: string;
  /** The token hosts must send; else DIR/host-token when the owner generated one (listener:configure). */
  hostToken?: string;
  allowedHosts?: string[];
  /** AMD key server base URL (default: the settings' kdsUrl, https://kdsintf.amd.com). */
  kdsUrl?: string;
  /** Where a signed CEK comes from when the chain's is unsigned; default a KdsClient on kdsUrl with a disk cache in DIR/kds-cache. */
  kds?: CekSource;
  approvalTimeoutSeconds?: number;
  /**
   * SEV-SNP guests (Trustee KBS, /kbs/v0): where VCEKs and CRLs come from (default an SnpKdsClient on
   * kdsUrl with a disk cache in DIR/snp-kds-cache and the owner's offline VCEKs in DIR/snp-vceks), the SNP
   * roots (default AMD's pinned ones; tests pass their own), how long an attest waits for the owner
   * (default the setting kbsApprovalWaitSeconds), and the session caps.
   */
  kbs?: {
    keys?: SnpKeySource;
    trust?: SnpTrustStore;
    approvalWaitSeconds?: number;
    challengeTtlSeconds?: number;
    maxSessions?: number;
    maxSessionsPerClient?: number;
  };
  /** Pending-approval budgets (ApprovalServiceOptions: maxPending, per client, per platform, host token). */
  approvalLimits?: {
    maxPending?: number;
    maxPendingPerClient?: number;
    maxPendingPerPlatform?: number;
    maxPendingAuthenticated?: number;
  };
  /** Refuse to start without a host token (serve --require-host-token). */
  requireHostToken?: boolean;
  /**
   * The audit log: events kept in the main window (default 10000), the retained stream's disk budget
   * (default 256 MiB; reaching it refuses releases) and segment size, and the window refused host
   * requests are aggregated over per client and reason (default 10 s).
   */
  audit?: {
    maxEntries?: number;
    retainedBudgetBytes?: number;
    segmentBytes?: number;
    aggregateWindowMs?: number;
  };
  connectionTtlSeconds?: number;
  rateLimit?: Omit<RateLimitOptions, 'now'> | false;
  limits?: Partial<ListenerLimits>;
  log?: (line: string) => void;
  version?: string;
  /** The ssh program the reverse tunnel runs (default `ssh` on PATH; tests pass a stand-in). */
  sshPath?: string;
  /** The first-run demo's firmware image (default: the shipped assets/demo). */
  demoFirmware?: string;
  /**
   * serve --database: replicas share one PostgreSQL (docs/scale-out.md). VM profiles, launch connections
   * (TEK/TIK sealed), secret values (sealed) and a hash-chained copy of every audit event live there; the
   * service key comes from serviceKeyFile (mode 0600) or SEV_ATTEST_SERVICE_KEY. Not shared yet (each
   * replica keeps its own, from its data directory): settings, the key-server cache and artifacts.
   * Trusted keys and pinned CEKs are shared like profiles; approvals through approvalReplication.
   */
  database?: { url: string; serviceKeyFile?: string; poolSize?: number };
}

/** Every service of one running SEV Attest, constructed and wired but not started. */
export interface Services {
  dataDir: string;
  /** The anchors chains are verified against; the demo host adds its simulated root here, labelled 'extra'. */
  trust: TrustStore;
  /** Where secret values live (OS keychain or memory); only SecretService and the release path read it. */
  secretStore: SecretStore;
  /** Set, reveal, delete and copy secret values, each audited: every transport goes through it. */
  secrets: SecretService;
  settings: SettingsStore;
  profiles: ProfileStore;
  artifacts: ArtifactStore;
  /** Imports with progress and cancellation (hashing in a worker), and browser uploads. */
  imports: ArtifactImportService;
  audit: AuditLog;
  approvals: ApprovalService;
  connections: ConnectionStore;
  /** serve --database: the shared database (undefined on the laptop and a single serve). */
  shared: SharedDatabase | undefined;
  /** serve --database: shares approvals; started (attach) by server/serve/serve.ts. */
  approvalReplication: PgApprovalReplication | undefined;
  /** The expected-digest cache (one firmware pass per artifact), shared with previews of draft profiles. */
  digests: ExpectedDigests;
  /** The SEV-SNP measurement cache (one OVMF pass per artifact): the KBS service and draft previews read it. */
  snpMeasurements: ExpectedSnpMeasurements;
  attestation: AttestationService;
  /** SEV-SNP guests over Trustee's KBS protocol (the listener's /kbs/v0 routes). */
  kbs: KbsService;
  /** The SNP roots the KBS verifies against (AMD's pinned ones unless given); the demo adds its own. */
  snpTrust: SnpTrustStore;
  owner: OwnerService;
  /** The keys trusted to sign bundles (DIR/trusted-keys.json). */
  trustedKeys: TrustedKeyStore;
  /** The key-server CEKs the owner pinned per chip (DIR/pinned-ceks.json). */
  pinnedCeks: PinnedCekStore;
  /** Measurement bundles: signing key, export, verify, import (also the listener's bundle routes). */
  bundles: BundleService;
  /** What to paste on the host for a profile; SEV-SNP ID keys and ID blocks (also REST routes). */
  hostSetup: HostSetupService;
  listener: ListenerController;
  /** The SSH reverse tunnel to the listener (tunnel:status / tunnel:configure, serve --tunnel). */
  tunnel: TunnelController;
  demo: DemoService;
  /** Closes what construction opened (stores, timers, the audit log); the listener is closed by its starter. */
  close(): Promise<void>;
}

/** Builds the trust store: AMD's pinned roots (unless turned off) plus each --trust-ca file. */
function buildTrust(opts: ServeOptions): TrustStore {
  const trust = opts.trustAmdRoots === false ? TrustStore.empty() : TrustStore.pinned();
  for (const file of opts.trustCa ?? []) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(fs.readFileSync(file));
    } catch (e) {
      throw new DomainError('bad-arguments', `--trust-ca ${file}: cannot read it (${messageOf(e)})`);
    }
    try {
      trust.addAskArk(bytes, file);
    } catch (e) {
      throw new DomainError('bad-arguments', `--trust-ca ${file}: ${messageOf(e)}`);
    }
  }
  return trust;
}

/**
 * Builds every service. `shared` (serve --database, opened by server/serve/serve.ts) moves connections,
 * secret values and a copy of the audit log into PostgreSQL.
 */
export function composeServices(opts: ServeOptions, ownerToken: string, shared?: SharedDatabase): Services {
  const log = opts.log ?? (() => {});
  const trust = buildTrust(opts);
  if (shared && opts.secretStore !== undefined) {
    throw new DomainError(
      'bad-arguments',
      '--secret-store cannot be combined with --database: secret values live in the database',
    );
  }
  const chosenStore = shared
    ? new PgSecretStore(shared.db, shared.cipher)
    : typeof opts.secretStore === 'object'
      ? opts.secretStore
      : createSecretStore(opts.secretStore ?? 'keychain');
  // A keychain store also keeps the first-run demo's passphrase in memory when the keychain is missing.
  const secretStore =
    chosenStore.kind === 'keychain' ? new MemoryOverlaySecretStore(chosenStore) : chosenStore;
  const kvBackend: KeyValueBackendFactory = opts.kvBackend ?? createConfBackend;
  const localSettings = kvBackend({ cwd: opts.dataDir, configName: 'settings', defaults: { settings: {} } });
  const settings = new SettingsStore({
    // serve --database: the deployment-wide settings are shared (storage/pg/settings.ts).
    backend: shared ? new SharedSettingsBackend(localSettings, shared.settings) : localSettings,
  });
  for (const p of settings.problems()) log(`settings: ${p}`);
  const s = settings.get();
  const profiles = new ProfileStore({
    backend:
      shared?.profiles ??
      kvBackend({
        cwd: opts.dataDir,
        configName: 'profiles',
        defaults: { profiles: {} as Record<string, VmProfile> },
      }),
  });
  // serve --database: artifacts are shared; this directory is the replica's copy (storage/pg/artifacts.ts).
  const artifactReplica = shared ? new PgArtifactReplica(shared.db, shared.notifier, log) : undefined;
  const artifacts = new ArtifactStore({
    dir: join(opts.dataDir, 'artifacts'),
    ...(artifactReplica ? { replica: artifactReplica } : {}),
  });
  if (artifactReplica) {
    const sync = (change: { deleted?: string }) =>
      (change.deleted ? artifacts.forgetLocal(change.deleted) : artifacts.syncFromReplica()).catch(
        (e: unknown) => log(`artifacts: copying from the shared database failed (${messageOf(e)})`),
      );
    artifactReplica.onChange(sync);
    void sync({});
  }
  // A validate or measurement on this replica finds an artifact imported on another one.
  const firmwarePath = shared
    ? async (sha: string) => ((await artifacts.ensureLocal(sha)) ? artifacts.path(sha) : undefined)
    : (sha: string) => (artifacts.has(sha) ? artifacts.path(sha) : undefined);
  const imports = new ArtifactImportService({ store: artifacts });
  const audit = AuditLog.open({
    file: join(opts.dataDir, 'audit.log'),
    ...(opts.audit?.maxEntries !== undefined ? { maxEntries: opts.audit.maxEntries } : {}),
    retained: {
      ...(opts.audit?.retainedBudgetBytes !== undefined
        ? { budgetBytes: opts.audit.retainedBudgetBytes }
        : {}),
      ...(opts.audit?.segmentBytes !== undefined ? { segmentBytes: opts.audit.segmentBytes } : {}),
    },
    aggregateWindowMs: opts.audit?.aggregateWindowMs ?? 10_000,
    warn: (line) => log(`audit log: warning: ${line}`),
  });
  for (const w of audit.openReport.warnings) log(`audit log: ${w}`);
  const secrets = new SecretService({ store: secretStore, profiles, audit });
  const approvalReplication = shared ? new PgApprovalReplication(shared.db, shared.notifier, log) : undefined;
  const approvals = new ApprovalService({
    ...opts.approvalLimits,
    ...(approvalReplication ? { replication: approvalReplication } : {}),
    timeoutSeconds: () => opts.approvalTimeoutSeconds ?? settings.get().approvalTimeoutSeconds,
  });
  const ttlMs = (opts.connectionTtlSeconds ?? s.connectionTtlSeconds) * 1000;
  const connections: ConnectionStore = shared
    ? new PgConnectionStore({ db: shared.db, cipher: shared.cipher, ttlMs, log })
    : new ConnectionTable({ ttlMs });
  const mirror = shared ? new AuditChainMirror(audit, shared.chain, log) : undefined;
  // What the release paths (SEV validate, KBS resource) write to: with --database, a durable event also
  // waits for its copy in the shared chain, so a release is on the chain before the secret leaves.
  const releaseAudit: AuditSink = mirror
    ? {
        append: (e) => audit.append(e),
        appendDurable: async (e) => {
          const event = audit.append(e);
          const copied = mirror.copyOf(event);
          // Observed at once: a copy that fails while the local write is still in flight must not be an
          // unhandled rejection (it ended the replica); it is rethrown by the await below.
          copied.catch(() => {});
          await audit.flushed(event.seq);
          await copied;
          return event;
        },
      }
    : audit;
  const digests = new ExpectedDigests({
    firmwarePath,
  });
  const snpMeasurements = new ExpectedSnpMeasurements({
    firmwarePath,
  });
  const pinnedCeks = new PinnedCekStore(
    shared?.pinnedCeks ??
      kvBackend({ cwd: opts.dataDir, configName: 'pinned-ceks', defaults: { ceks: [] as PinnedCek[] } }),
  );
  const attestation = new AttestationService({
    profiles,
    secrets: secretStore,
    trust,
    connections,
    approvals,
    digests,
    audit: releaseAudit,
    pinnedCeks,
    kds:
      opts.kds ??
      new KdsClient({
        baseUrl: opts.kdsUrl ?? s.kdsUrl,
        // serve --database: one cache for the deployment (AMD's key server is asked once per chip).
        cache: shared ? new PgCekCache(shared.db) : new DiskCekCache(join(opts.dataDir, 'kds-cache')),
        // A host waits on this: two attempts at most.
        maxAttempts: 2,
      }),
  });
  // The listener controller is made below; the owner's health route reads its TLS state when asked.
  const owner: OwnerService = new OwnerService({
    profiles,
    secrets,
    artifacts,
    approvals,
    connections,
    digests,
    snpMeasurements,
    audit,
    // serve --database: the owner sees every replica's events (the shared chain).
    ...(shared ? { events: shared.auditFeed } : {}),
    pinnedCeks,
    tls: (): { enabled: boolean; fingerprint?: string } => {
      const fingerprint: string | undefined = controller.tlsFingerprint;
      return fingerprint ? { enabled: true, fingerprint } : { enabled: false };
    },
    ...(opts.version ? { version: opts.version } : {}),
  });
  const trustedKeys = new TrustedKeyStore(
    shared?.trustedKeys ??
      kvBackend({
        cwd: opts.dataDir,
        configName: 'trusted-keys',
        defaults: { keys: [] as StoredTrustedKey[] },
      }),
  );
  const bundles = new BundleService({
    profiles,
    // The signing key lives in the same store; VM secret values go through SecretService.
    secrets: secretStore,
    trustedKeys,
    artifacts,
    owner,
    audit,
    ...(opts.version ? { version: opts.version } : {}),
  });
  // SNP ID keys (one per VM) live in the same secret store as the bundle signing key.
  const hostSetup = new HostSetupService({
    profiles,
    listener: () => ({
      url: controller.url,
      ...(controller.tlsFingerprint !== undefined ? { tlsFingerprint: controller.tlsFingerprint } : {}),
      hostTokenRequired: controller.hostToken !== undefined,
    }),
    tunnel: async () => tunnel.status(),
    snp: new SnpIdKeyService({
      profiles,
      secrets: secretStore,
      audit,
      measurements: (p) => snpMeasurementRows(p, (q) => snpMeasurements.detailedFor(q)),
    }),
  });
  const snpTrust = opts.kbs?.trust ?? SnpTrustStore.pinned();
  for (const file of opts.snpRoots ?? []) {
    const extra = readExtraSnpRoots(file);
    snpTrust.addExtra(extra);
    // Said at start-up: reports chaining to it are accepted besides AMD's.
    log(`SEV-SNP ${extra.set.product} reports may also chain to ${extra.label}`);
  }
  const kbs = new KbsService({
    profiles,
    secrets: secretStore,
    approvals,
    audit: releaseAudit,
    tokens: new KbsTokenIssuer(shared ? { key: shared.kbsTokenKey } : {}),
    // serve --database: sessions in the shared database, so each step may reach another replica.
    ...(shared ? { sessions: new PgKbsSessionStore({ db: shared.db, cipher: shared.cipher }) } : {}),
    // The one SNP measurement cache: the owner's saves forget a replaced OVMF's entries in it.
    measurements: snpMeasurements,
    keys:
      opts.kbs?.keys ??
      new SnpKdsClient({
        baseUrl: opts.kdsUrl ?? s.kdsUrl,
        ...(shared
          ? { cache: new PgSnpKdsCache(shared.db) }
          : { cacheDir: join(opts.dataDir, 'snp-kds-cache') }),
        offlineDir: join(opts.dataDir, 'snp-vceks'),
        // A guest waits on this (and retries the handshake itself): two attempts at most.
        maxAttempts: 2,
      }),
    trust: snpTrust,
    allowMissingCrl: () => settings.get().snpAllowMissingCrl,
    approvalWaitSeconds: () => opts.kbs?.approvalWaitSeconds ?? settings.get().kbsApprovalWaitSeconds,
    ...(opts.kbs?.challengeTtlSeconds !== undefined
      ? { challengeTtlSeconds: opts.kbs.challengeTtlSeconds }
      : {}),
    ...(opts.kbs?.maxSessions !== undefined ? { maxSessions: opts.kbs.maxSessions } : {}),
    ...(opts.kbs?.maxSessionsPerClient !== undefined
      ? { maxSessionsPerClient: opts.kbs.maxSessionsPerClient }
      : {}),
  });
  const extraRoutes = [...bundleRoutes(bundles), ...kbsRoutes(kbs, log), ...hostSetupRoutes(hostSetup)];
  const controller: ListenerController = new ListenerController({
    dataDir: opts.dataDir,
    settings,
    audit,
    extraTlsNames: opts.allowedHosts ?? [],
    ...(opts.hostToken ? { hostToken: opts.hostToken } : {}),
    onMoved: (): Promise<void> => tunnel.listenerMoved(),
    log,
    statusExtras: () => ({
      ...(controller.hostToken === undefined && profiles.list().some((p) => p.approval === 'manual')
        ? { hostTokenRecommended: true }
        : {}),
      ...(audit.retainedStatus()?.full ? { auditFull: true } : {}),
    }),
    createListener: (config): Listener =>
      new Listener({
        host: config.host,
        port: config.port,
        ...(config.tls ? { tls: config.tls } : {}),
        ownerToken,
        ...(config.hostToken ? { hostToken: config.hostToken } : {}),
        allowedHosts: [
          ...(opts.allowedHosts ?? settings.get().listener.allowedHosts),
          // A name given as the bind address is what hosts put in the Host header.
          ...(/^[A-Za-z]/.test(config.host) && config.host !== 'localhost' ? [config.host] : []),
        ],
        attestation,
        owner,
        ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
        ...(opts.limits ? { limits: opts.limits } : {}),
        log,
        ...(opts.version ? { version: opts.version } : {}),
        extraRoutes,
      }),
  });
  const tunnel: TunnelController = new TunnelController({
    settings,
    audit,
    localPort: (): number => controller.port,
    log,
    ...(opts.sshPath ? { sshPath: opts.sshPath } : {}),
  });
  const services: Services = {
    dataDir: opts.dataDir,
    trust,
    secretStore,
    secrets,
    settings,
    profiles,
    artifacts,
    imports,
    audit,
    approvals,
    connections,
    shared,
    approvalReplication,
    digests,
    snpMeasurements,
    attestation,
    kbs,
    snpTrust,
    owner,
    trustedKeys,
    pinnedCeks,
    bundles,
    hostSetup,
    listener: controller,
    tunnel,
    demo: undefined as unknown as DemoService,
    close: async () => {
      approvals.close();
      await connections.close();
      kbs.close();
      owner.close();
      await audit.close();
      await approvalReplication?.flush();
      await mirror?.close();
      await shared?.close();
    },
  };
  services.demo = new DemoService({
    service: {
      get url() {
        return controller.url;
      },
      get tlsCertFile() {
        return controller.tlsCertFile;
      },
      get hostToken() {
        return controller.hostToken;
      },
      profiles,
      artifacts,
      trust,
      snpTrust,
      approvals,
      audit,
      owner,
      secrets,
      // The demo keeps its own passphrase in memory through it when no keychain takes it.
      secretStore,
    },
    ...(opts.demoFirmware ? { firmwarePath: opts.demoFirmware } : {}),
  });
  return services;
}
