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
import type { ListenerStatus } from '../../app/contract/ipc';
import { loadOrCreateTlsCert } from '../listener/tls-cert';
import { Listener, type ListenerLimits } from '../listener/server';
import type { RateLimitOptions } from '../listener/rate-limit';
import { bundleRoutes } from '../listener/bundle-routes';
import { ApprovalService } from '../services/approvals';
import { ArtifactStore } from '../services/artifact-store';
import { AttestationService, type CekSource } from '../services/attestation';
import { AuditLog } from '../services/audit-log';
import { BundleService } from '../services/bundle-service';
import { ConnectionTable } from '../services/connections';
import { ExpectedDigests } from '../services/expected-digests';
import { createConfBackend, type KeyValueBackend } from '../services/kv-backend';
import { OwnerService } from '../services/owner-service';
import { ProfileStore } from '../services/profile-store';
import { createSecretStore, MemoryOverlaySecretStore, type SecretStore } from '../services/secret-store';
import { SettingsStore } from '../services/settings-store';
import { TunnelController } from './tunnel-controller';
import { TrustedKeyStore, type StoredTrustedKey } from '../services/trusted-keys';

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
  connectionTtlSeconds?: number;
  rateLimit?: Omit<RateLimitOptions, 'now'> | false;
  limits?: Partial<ListenerLimits>;
  log?: (line: string) => void;
  version?: string;
  /** The ssh program the reverse tunnel runs (default `ssh` on PATH; tests pass a stand-in). */
  sshPath?: string;
}

/** A new listener configuration (listener:configure). */
export interface ListenerReconfig {
  host: string;
  port: number;
  tls: boolean;
  /** Keep the current host token, require none, or generate a new one (stored in DIR/host-token). */
  hostToken?: 'keep' | 'none' | 'generate';
  /** Must be true to bind anything but loopback: hosts elsewhere could then reach the listener. */
  allowNonLoopback?: boolean;
}

export interface RunningService {
  /** The listener's current address (changes with configureListener). */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  ownerToken: string;
  /** Set when the token was read from or written to DIR/owner-token. */
  ownerTokenFile: string | undefined;
  /** The token hosts must send, or undefined when none is required. */
  readonly hostToken: string | undefined;
  readonly tlsFingerprint: string | undefined;
  readonly tlsCertFile: string | undefined;
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
  /** Measurement bundles: signing key, export, verify, import (also the listener's bundle routes). */
  bundles: BundleService;
  /** The keys trusted to sign bundles (DIR/trusted-keys.json). */
  trustedKeys: TrustedKeyStore;
  /** The listener's state, address and TLS fingerprint. */
  listenerStatus(): ListenerStatus;
  /**
   * Drains the listener and starts it with the new settings, then stores them (settings.listener).
   * When the new listener cannot start, the previous one is started again and the error is thrown.
   */
  configureListener(config: ListenerReconfig): Promise<ListenerStatus>;
  /** Called on every listener state change; returns the unsubscribe function. */
  onListenerChange(cb: (status: ListenerStatus) => void): () => void;
  /** The SSH reverse tunnel to the listener (tunnel:status / tunnel:configure, serve --tunnel). */
  tunnel: TunnelController;
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
    if (token.length >= 16) {
      // A copied or hand-made file may be readable by others: the token is the owner's key.
      if ((fs.statSync(file).mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
      return { token, file };
    }
  }
  const token = randomBytes(32).toString('base64url');
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
  return { token, file };
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A coded error the IPC and CLI layers pass through with its message. */
function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function readHostTokenFile(file: string): string | undefined {
  if (!fs.existsSync(file)) return undefined;
  const token = fs.readFileSync(file, 'utf8').trim();
  return token.length >= 16 ? token : undefined;
}

function writeHostTokenFile(file: string, token: string): void {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
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
  const chosenStore =
    typeof opts.secretStore === 'object'
      ? opts.secretStore
      : createSecretStore(opts.secretStore ?? 'keychain');
  // A keychain store also keeps the first-run demo's passphrase in memory when the keychain is missing.
  const secrets = chosenStore.kind === 'keychain' ? new MemoryOverlaySecretStore(chosenStore) : chosenStore;
  const kvBackend: KeyValueBackendFactory = opts.kvBackend ?? createConfBackend;
  const settings = new SettingsStore({
    backend: kvBackend({ cwd: opts.dataDir, configName: 'settings', defaults: { settings: {} } }),
  });
  const s = settings.get();
  for (const p of settings.problems()) log(`settings: ${p}`);
  const profiles = new ProfileStore({
    backend: kvBackend({
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
  /** The certificate in dataDir (generated on first use, then reused: hosts pin its fingerprint). */
  const loadTls = (host: string): { keyPem: string; certPem: string; fingerprint: string } => {
    const names = [...new Set(['localhost', '127.0.0.1', '::1', host, ...(opts.allowedHosts ?? [])])].filter(
      (n) => n !== '0.0.0.0' && n !== '::',
    );
    return loadOrCreateTlsCert(opts.dataDir, names);
  };
  const initial = {
    host: opts.host ?? s.listener.host,
    port: opts.port ?? s.listener.port,
    tls: opts.tls ?? s.listener.tls,
  };
  if (initial.tls) {
    tlsInfo = loadTls(initial.host);
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
  const trustedKeys = new TrustedKeyStore(
    kvBackend({
      cwd: opts.dataDir,
      configName: 'trusted-keys',
      defaults: { keys: [] as StoredTrustedKey[] },
    }),
  );
  const bundles = new BundleService({
    profiles,
    secrets,
    trustedKeys,
    artifacts,
    owner,
    audit,
    ...(opts.version ? { version: opts.version } : {}),
  });
  const { token: ownerToken, file: ownerTokenFile } = resolveOwnerToken(opts.dataDir, opts.ownerToken);
  const hostTokenFile = join(opts.dataDir, 'host-token');
  let hostToken = opts.hostToken || readHostTokenFile(hostTokenFile);
  const makeListener = (host: string, port: number): Listener =>
    new Listener({
      host,
      port,
      ...(tlsInfo ? { tls: tlsInfo } : {}),
      ownerToken,
      ...(hostToken ? { hostToken } : {}),
      allowedHosts: [
        ...(opts.allowedHosts ?? settings.get().listener.allowedHosts),
        // A name given as the bind address is what hosts put in the Host header.
        ...(/^[A-Za-z]/.test(host) && host !== 'localhost' ? [host] : []),
      ],
      attestation,
      owner,
      ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
      log,
      ...(opts.version ? { version: opts.version } : {}),
      extraRoutes: bundleRoutes(bundles),
    });
  let listener = makeListener(initial.host, initial.port);
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
  let state: ListenerStatus['state'] = 'running';
  let lastError: string | undefined;
  const listenerWatchers = new Set<(status: ListenerStatus) => void>();
  const listenerStatus = (): ListenerStatus => {
    const st: ListenerStatus = {
      state,
      host: bound.host,
      port: bound.port,
      tls: tlsInfo !== undefined,
      hostTokenRequired: hostToken !== undefined,
    };
    if (state === 'running') st.url = bound.url;
    if (tlsInfo) st.tlsFingerprint = tlsInfo.fingerprint;
    if (lastError !== undefined) st.error = lastError;
    return st;
  };
  const setState = (next: ListenerStatus['state']): void => {
    state = next;
    const st = listenerStatus();
    for (const cb of [...listenerWatchers]) {
      try {
        cb(st);
      } catch {
        // A broken watcher must not stop the listener.
      }
    }
  };
  let reconfiguring: Promise<unknown> = Promise.resolve();
  let closing: Promise<void> | undefined;

  const restart = async (config: ListenerReconfig): Promise<ListenerStatus> => {
    if (closing) throw coded('service-closed', 'the service is shutting down');
    if (!isLoopbackHost(config.host) && config.allowNonLoopback !== true) {
      throw coded(
        'non-loopback-not-confirmed',
        `binding ${config.host} lets other machines reach the listener: confirm it explicitly`,
      );
    }
    const previous = { host: bound.host, port: bound.port, tlsInfo, tlsCertFile, hostToken };
    let nextHostToken = hostToken;
    if (config.hostToken === 'none') nextHostToken = undefined;
    if (config.hostToken === 'generate') nextHostToken = randomBytes(32).toString('base64url');
    setState('draining');
    await listener.close();
    setState('starting');
    try {
      tlsInfo = config.tls ? loadTls(config.host) : undefined;
      tlsCertFile = config.tls ? join(opts.dataDir, 'tls-cert.pem') : undefined;
      hostToken = nextHostToken;
      listener = makeListener(config.host, config.port);
      bound = await listener.start();
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      ({ tlsInfo, tlsCertFile, hostToken } = previous);
      listener = makeListener(previous.host, previous.port);
      try {
        bound = await listener.start();
        lastError = `could not listen on ${config.host}:${config.port} (${reason}); kept ${bound.url}`;
        setState('running');
      } catch (e2) {
        const again = e2 instanceof Error ? e2.message : String(e2);
        lastError = `could not listen on ${config.host}:${config.port} (${reason}), nor again on the previous address (${again})`;
        setState('error');
      }
      audit.append({ type: 'listener', result: 'error', message: lastError });
      throw coded('listener-restart-failed', lastError);
    }
    // Persist only what worked: a failed bind never becomes the stored setting.
    if (hostToken !== previous.hostToken) {
      if (hostToken) writeHostTokenFile(hostTokenFile, hostToken);
      else fs.rmSync(hostTokenFile, { force: true });
    }
    settings.update({ listener: { host: config.host, port: config.port, tls: config.tls } });
    lastError = undefined;
    await tunnel.listenerMoved().catch((e: unknown) => log(`tunnel: ${e instanceof Error ? e.message : e}`));
    audit.append({
      type: 'listener',
      result: 'info',
      message: `listening on ${bound.url}`,
      details: { tls: tlsInfo?.fingerprint ?? null, hostTokenRequired: hostToken !== undefined },
    });
    setState('running');
    return listenerStatus();
  };
  const tunnel = new TunnelController({
    settings,
    audit,
    localPort: () => bound.port,
    log,
    ...(opts.sshPath ? { sshPath: opts.sshPath } : {}),
  });
  const storedTunnel = settings.get().tunnel;
  if (storedTunnel.enabled && storedTunnel.target !== undefined) {
    void tunnel
      .start({
        target: storedTunnel.target,
        remotePort: storedTunnel.remotePort,
        ...(storedTunnel.identityFile ? { identityFile: storedTunnel.identityFile } : {}),
      })
      .catch((e: unknown) => log(`tunnel: ${e instanceof Error ? e.message : String(e)}`));
  }
  const trustAnchors = trust.anchors().map((a) => anchorName(a.label));
  audit.append({
    type: 'listener',
    result: 'info',
    message: `listening on ${bound.url}`,
    details: { tls: tlsInfo?.fingerprint ?? null, secretStore: secrets.kind, trustAnchors },
  });
  return {
    get url() {
      return bound.url;
    },
    get port() {
      return bound.port;
    },
    get host() {
      return bound.host;
    },
    ownerToken,
    ownerTokenFile,
    get hostToken() {
      return hostToken;
    },
    get tlsFingerprint() {
      return tlsInfo?.fingerprint;
    },
    get tlsCertFile() {
      return tlsCertFile;
    },
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
    bundles,
    trustedKeys,
    listenerStatus,
    tunnel,
    configureListener: (config) => {
      // One reconfiguration at a time; a failed one does not block the next.
      const run = reconfiguring.then(() => restart(config));
      reconfiguring = run.catch(() => {});
      return run;
    },
    onListenerChange: (cb) => {
      listenerWatchers.add(cb);
      return () => {
        listenerWatchers.delete(cb);
      };
    },
    close: () =>
      (closing ??= (async () => {
        await reconfiguring;
        await tunnel.close();
        state = 'stopped';
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
