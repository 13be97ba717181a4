/**
 * Starts SEV Attest from options: the services built by the composition root (server/compose.ts), then the
 * listener and a stored SSH tunnel; closes everything in order (tunnel, listener drained, then approvals,
 * connections with their keys wiped, and the audit log). Headless `sev-attest serve` and the desktop app's
 * main process both start here.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { DomainError, messageOf } from '../../app/errors';
import type { ListenerStatus } from '../../app/status';
import { anchorName } from '../../app/sev/roots';
import { composeServices, type ServeOptions, type Services } from '../compose';
import { isLoopbackHost, type ListenerReconfig } from '../listener/listener-controller';
import { openSharedDatabase } from '../storage/pg/shared';

export type { KeyValueBackendFactory, ServeOptions } from '../compose';
export { isLoopbackHost, type ListenerReconfig };

/** The services of a started SEV Attest, with the listener running. */
export interface RunningService extends Services {
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
  /** The listener's state, address and TLS fingerprint. */
  listenerStatus(): ListenerStatus;
  /**
   * Drains the listener and starts it with the new settings, then stores them (settings.listener).
   * When the new listener cannot start, the previous one is started again and the error is thrown.
   */
  configureListener(config: ListenerReconfig): Promise<ListenerStatus>;
  /** Called on every listener state change; returns the unsubscribe function. */
  onListenerChange(cb: (status: ListenerStatus) => void): () => void;
  /** Drains the listener and closes every service; safe to call twice. */
  close(): Promise<void>;
}

/** The owner token: given, or DIR/owner-token (read, or generated with mode 0600). */
export function resolveOwnerToken(
  dataDir: string,
  given: string | undefined,
): { token: string; file: string | undefined } {
  if (given !== undefined && given !== '') {
    if (given.length < 16) {
      throw new DomainError('bad-arguments', 'SEV_ATTEST_OWNER_TOKEN must be at least 16 characters');
    }
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One service per data directory (the audit log has one writer): DIR/serve.lock is created exclusively
 * with this process's pid. A lock whose pid is no longer running (a kill -9) is stale and replaced.
 * Returns the release function (removes the lock if it is still ours).
 */
export function acquireDataDirLock(dataDir: string): () => void {
  const file = join(dataDir, 'serve.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8').trim();
      } catch {
        continue; // removed meanwhile: try again
      }
      const pid = Number(text);
      if (/^\d+$/.test(text) && pid > 0 && pidAlive(pid)) {
        throw new DomainError(
          'data-dir-locked',
          `another sev-attest serve (pid ${pid}) is using the data directory ${dataDir}: only one process may ` +
            `write its audit log. Stop that one first, or use another --data-dir (if pid ${pid} is not a ` +
            `sev-attest process, delete ${file})`,
        );
      }
      // Stale (its process is gone) or a half-written lock of a process killed while creating it.
      if (text === '' && Date.now() - fs.statSync(file).mtimeMs < 2000) {
        throw new DomainError(
          'data-dir-locked',
          `another sev-attest serve is starting on ${dataDir} (${file})`,
        );
      }
      fs.rmSync(file, { force: true });
      continue;
    }
    fs.writeSync(fd, `${process.pid}\n`);
    fs.closeSync(fd);
    return () => {
      try {
        if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
      } catch {
        // Already gone.
      }
    };
  }
  throw new DomainError('data-dir-locked', `could not take the lock ${file}`);
}

/**
 * Builds the services (server/compose.ts), starts the listener and a stored tunnel; holds DIR/serve.lock
 * until close().
 */
export async function startService(opts: ServeOptions): Promise<RunningService> {
  try {
    fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    fs.accessSync(opts.dataDir, fs.constants.W_OK);
  } catch (e) {
    throw new DomainError(
      'bad-arguments',
      `the data directory ${opts.dataDir} cannot be used: ${messageOf(e)}`,
    );
  }
  const release = acquireDataDirLock(opts.dataDir);
  let svc: RunningService;
  try {
    svc = await startServiceLocked(opts);
  } catch (e) {
    release();
    throw e;
  }
  const close = svc.close;
  svc.close = () => close().finally(release);
  return svc;
}

async function startServiceLocked(opts: ServeOptions): Promise<RunningService> {
  const log = opts.log ?? (() => {});
  const { token: ownerToken, file: ownerTokenFile } = resolveOwnerToken(opts.dataDir, opts.ownerToken);
  // serve --database: the schema is brought to this version (or refused) before any service exists.
  const shared = opts.database
    ? await openSharedDatabase({
        url: opts.database.url,
        ...(opts.database.serviceKeyFile !== undefined
          ? { serviceKeyFile: opts.database.serviceKeyFile }
          : {}),
        ...(opts.database.poolSize !== undefined ? { poolSize: opts.database.poolSize } : {}),
        log,
      })
    : undefined;
  if (shared && shared.migration.applied.length > 0) {
    log(`database: schema migrated from version ${shared.migration.from} to ${shared.migration.to}`);
  }
  let services: Services;
  try {
    services = composeServices(opts, ownerToken, shared);
  } catch (e) {
    await shared?.close();
    throw e;
  }
  const { listener, settings, tunnel, audit } = services;
  try {
    // Other replicas' pending and recently decided approvals, before the first request.
    await services.approvalReplication?.attach(services.approvals);
  } catch (e) {
    await services.close();
    throw e;
  }
  if (opts.requireHostToken && !listener.hostToken) {
    await services.close();
    throw new DomainError(
      'host-token-required',
      'a host token is required (--require-host-token) but none is set: set SEV_ATTEST_HOST_TOKEN ' +
        `(at least 16 characters) or generate one in the UI (Listener, Host token), stored in ${join(opts.dataDir, 'host-token')}`,
    );
  }
  const stored = settings.get().listener;
  try {
    await listener.start({
      host: opts.host ?? stored.host,
      port: opts.port ?? stored.port,
      tls: opts.tls ?? stored.tls,
    });
  } catch (e) {
    await services.close();
    throw e;
  }
  const storedTunnel = settings.get().tunnel;
  if (storedTunnel.enabled && storedTunnel.target !== undefined) {
    void tunnel
      .start({
        target: storedTunnel.target,
        remotePort: storedTunnel.remotePort,
        ...(storedTunnel.identityFile ? { identityFile: storedTunnel.identityFile } : {}),
      })
      .catch((e: unknown) => log(`tunnel: ${messageOf(e)}`));
  }
  const trustAnchors = services.trust.anchors().map((a) => anchorName(a.label));
  audit.append({
    type: 'listener',
    result: 'info',
    message: `listening on ${listener.url}`,
    details: {
      tls: listener.tlsFingerprint ?? null,
      secretStore: services.secretStore.kind,
      trustAnchors,
      ...(shared
        ? { database: `schema ${shared.migration.to}, service key ${shared.cipher.sealingKeyId}` }
        : {}),
    },
  });
  let closing: Promise<void> | undefined;
  return {
    ...services,
    get url() {
      return listener.url;
    },
    get port() {
      return listener.port;
    },
    get host() {
      return listener.host;
    },
    ownerToken,
    ownerTokenFile,
    get hostToken() {
      return listener.hostToken;
    },
    get tlsFingerprint() {
      return listener.tlsFingerprint;
    },
    get tlsCertFile() {
      return listener.tlsCertFile;
    },
    trustAnchors,
    listenerStatus: () => listener.status(),
    configureListener: (config) => {
      if (closing) return Promise.reject(new DomainError('service-closed', 'the service is shutting down'));
      return listener.configure(config);
    },
    onListenerChange: (cb) => listener.onChange(cb),
    close: () =>
      (closing ??= (async () => {
        await tunnel.close();
        await listener.close();
        try {
          audit.append({ type: 'listener', result: 'info', message: 'stopped' });
        } finally {
          // Writes the events still pending (fire-and-forget ones) before the file closes.
          await services.close();
        }
      })()),
  };
}
