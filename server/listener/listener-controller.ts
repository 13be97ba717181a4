/**
 * The listener's lifecycle: start, restart with new settings (drain first; on failure start the previous
 * listener again), report its state to watchers, close. Owns the TLS certificate choice and the host
 * token file; the listener itself (server.ts) is rebuilt for every configuration.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { DomainError, messageOf } from '../../app/errors';
import type { ListenerStatus } from '../../app/status';
import type { AuditLog } from '../services/audit-log';
import type { SettingsStore } from '../services/settings-store';
import type { Listener } from './server';
import { loadOrCreateTlsCert } from './tls-cert';

export interface TlsIdentity {
  keyPem: string;
  certPem: string;
  fingerprint: string;
}

/** What one listener instance is built from. */
export interface ListenerConfig {
  host: string;
  port: number;
  tls: TlsIdentity | undefined;
  hostToken: string | undefined;
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

export interface ListenerControllerDeps {
  dataDir: string;
  settings: SettingsStore;
  audit: Pick<AuditLog, 'append'>;
  /** Builds a listener for one configuration. */
  createListener(config: ListenerConfig): Listener;
  /** Names the TLS certificate is made for besides the bind address. */
  extraTlsNames: string[];
  /** A host token given on the command line or in the environment; else DIR/host-token. */
  hostToken?: string;
  /** Called after a successful move to a new address (the SSH tunnel follows it). */
  onMoved?: () => Promise<void>;
  log: (line: string) => void;
  /** More status the owner should see (host token recommended, audit stream full). */
  statusExtras?: () => Pick<ListenerStatus, 'hostTokenRecommended' | 'auditFull'>;
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function readTokenFile(file: string): string | undefined {
  if (!fs.existsSync(file)) return undefined;
  const token = fs.readFileSync(file, 'utf8').trim();
  return token.length >= 16 ? token : undefined;
}

function writeTokenFile(file: string, token: string): void {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export class ListenerController {
  private listener: Listener | undefined;
  private bound = { host: '', port: 0, url: '' };
  private tls: TlsIdentity | undefined;
  private token: string | undefined;
  private state: ListenerStatus['state'] = 'stopped';
  private lastError: string | undefined;
  private readonly watchers = new Set<(status: ListenerStatus) => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly hostTokenFile: string;

  constructor(private readonly deps: ListenerControllerDeps) {
    this.hostTokenFile = join(deps.dataDir, 'host-token');
    this.token = deps.hostToken || readTokenFile(this.hostTokenFile);
  }

  get url(): string {
    return this.bound.url;
  }
  get host(): string {
    return this.bound.host;
  }
  get port(): number {
    return this.bound.port;
  }
  get hostToken(): string | undefined {
    return this.token;
  }
  get tlsFingerprint(): string | undefined {
    return this.tls?.fingerprint;
  }
  get tlsCertFile(): string | undefined {
    return this.tls ? join(this.deps.dataDir, 'tls-cert.pem') : undefined;
  }

  /** Starts the first listener; throws (and leaves nothing running) when it cannot bind. */
  async start(initial: { host: string; port: number; tls: boolean }): Promise<void> {
    this.tls = initial.tls ? this.loadTls(initial.host) : undefined;
    this.listener = this.build(initial.host, initial.port);
    this.bound = await this.listener.start();
    this.setState('running');
  }

  status(): ListenerStatus {
    const st: ListenerStatus = {
      state: this.state,
      host: this.bound.host,
      port: this.bound.port,
      tls: this.tls !== undefined,
      hostTokenRequired: this.token !== undefined,
    };
    Object.assign(st, this.deps.statusExtras?.());
    if (this.state === 'running') st.url = this.bound.url;
    if (this.tls) st.tlsFingerprint = this.tls.fingerprint;
    if (this.lastError !== undefined) st.error = this.lastError;
    return st;
  }

  /** Called on every state change; returns the unsubscribe function. */
  onChange(cb: (status: ListenerStatus) => void): () => void {
    this.watchers.add(cb);
    return () => {
      this.watchers.delete(cb);
    };
  }

  /**
   * Drains the listener and starts it with the new settings, then stores them (settings.listener).
   * One reconfiguration at a time; a failed one does not block the next.
   */
  configure(config: ListenerReconfig): Promise<ListenerStatus> {
    const run = this.queue.then(() => this.restart(config));
    this.queue = run.catch(() => {});
    return run;
  }

  /** Waits for a reconfiguration in flight, then drains and stops the listener. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    this.state = 'stopped';
    await this.listener?.close();
  }

  private build(host: string, port: number): Listener {
    return this.deps.createListener({ host, port, tls: this.tls, hostToken: this.token });
  }

  /** The certificate in dataDir (generated on first use, then reused: hosts pin its fingerprint). */
  private loadTls(host: string): TlsIdentity {
    const names = [...new Set(['localhost', '127.0.0.1', '::1', host, ...this.deps.extraTlsNames])].filter(
      (n) => n !== '0.0.0.0' && n !== '::',
    );
    return loadOrCreateTlsCert(this.deps.dataDir, names);
  }

  private setState(next: ListenerStatus['state']): void {
    this.state = next;
    const st = this.status();
    for (const cb of [...this.watchers]) {
      try {
        cb(st);
      } catch {
        // A broken watcher must not stop the listener.
      }
    }
  }

  private async restart(config: ListenerReconfig): Promise<ListenerStatus> {
    if (this.closed) throw new DomainError('service-closed', 'the service is shutting down');
    if (!isLoopbackHost(config.host) && config.allowNonLoopback !== true) {
      throw new DomainError(
        'non-loopback-not-confirmed',
        `binding ${config.host} lets other machines reach the listener: confirm it explicitly`,
      );
    }
    const previous = { host: this.bound.host, port: this.bound.port, tls: this.tls, token: this.token };
    let nextToken = this.token;
    if (config.hostToken === 'none') nextToken = undefined;
    if (config.hostToken === 'generate') nextToken = randomBytes(32).toString('base64url');
    this.setState('draining');
    await this.listener?.close();
    this.setState('starting');
    try {
      this.tls = config.tls ? this.loadTls(config.host) : undefined;
      this.token = nextToken;
      this.listener = this.build(config.host, config.port);
      this.bound = await this.listener.start();
    } catch (e) {
      const reason = messageOf(e);
      this.tls = previous.tls;
      this.token = previous.token;
      this.listener = this.build(previous.host, previous.port);
      try {
        this.bound = await this.listener.start();
        this.lastError = `could not listen on ${config.host}:${config.port} (${reason}); kept ${this.bound.url}`;
        this.setState('running');
      } catch (e2) {
        this.lastError = `could not listen on ${config.host}:${config.port} (${reason}), nor again on the previous address (${messageOf(e2)})`;
        this.setState('error');
      }
      this.deps.audit.append({ type: 'listener', result: 'error', message: this.lastError });
      throw new DomainError('listener-restart-failed', this.lastError);
    }
    // Persist only what worked: a failed bind never becomes the stored setting.
    if (this.token !== previous.token) {
      if (this.token) writeTokenFile(this.hostTokenFile, this.token);
      else fs.rmSync(this.hostTokenFile, { force: true });
    }
    this.deps.settings.update({ listener: { host: config.host, port: config.port, tls: config.tls } });
    this.lastError = undefined;
    await this.deps.onMoved?.().catch((e: unknown) => this.deps.log(`tunnel: ${messageOf(e)}`));
    this.deps.audit.append({
      type: 'listener',
      result: 'info',
      message: `listening on ${this.bound.url}`,
      details: { tls: this.tls?.fingerprint ?? null, hostTokenRequired: this.token !== undefined },
    });
    this.setState('running');
    return this.status();
  }
}
