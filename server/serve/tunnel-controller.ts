/**
 * The SSH reverse tunnel of a running service, as the UI sees it (tunnel:status / tunnel:configure /
 * tunnel:changed): at most one audited SshTunnel (server/serve/tunnel.ts) pointed at the listener's
 * current port, restarted when the listener moves, configured from the UI (stored in settings.tunnel)
 * or for one run by `serve --tunnel` (not stored).
 */
import { DomainError } from '../../app/errors';
import type { TunnelStatus as UiTunnelStatus } from '../../app/status';
import { SshTunnel, type SshTunnelOptions, type TunnelStatus } from '../services/ssh-tunnel';
import type { SettingsStore } from '../services/settings-store';
import { describeTunnel, startAuditedTunnel, type TunnelAuditSink } from './tunnel';

/** What the UI sends (the contract's TunnelConfig after parsing). */
export interface TunnelRequest {
  enabled: boolean;
  /** user@host */
  target: string;
  sshPort: number;
  remotePort: number;
  identityFile?: string;
}

export type TunnelSpec = Omit<SshTunnelOptions, 'localPort' | 'sshPath'>;

export interface TunnelControllerDeps {
  settings: SettingsStore;
  audit: TunnelAuditSink;
  /** The listener's current port (the tunnel's local end). */
  localPort: () => number;
  log?: (line: string) => void;
  /** The ssh program (default `ssh` on PATH; tests pass a stand-in). */
  sshPath?: string;
}

/** The contract's view of an SshTunnel state. */
export function uiTunnelStatus(s: TunnelStatus | undefined): UiTunnelStatus {
  if (!s) return { state: 'off' };
  return {
    state: s.state === 'stopped' ? 'off' : s.state,
    target: s.target,
    remotePort: s.remotePort,
    message: describeTunnel(s),
  };
}

export class TunnelController {
  private tunnel: SshTunnel | undefined;
  private spec: TunnelSpec | undefined;
  private offTunnel: (() => void) | undefined;
  private readonly watchers = new Set<(s: UiTunnelStatus) => void>();
  private queue: Promise<unknown> = Promise.resolve();
  /** Where the current tunnel's transition lines go (kept when it restarts for a new listener port). */
  private log: (line: string) => void;

  constructor(private readonly deps: TunnelControllerDeps) {
    this.log = deps.log ?? (() => {});
  }

  status(): UiTunnelStatus {
    return uiTunnelStatus(this.tunnel?.state);
  }

  /** Called on every state change; returns the unsubscribe function. */
  subscribe(cb: (s: UiTunnelStatus) => void): () => void {
    this.watchers.add(cb);
    return () => {
      this.watchers.delete(cb);
    };
  }

  /** tunnel:configure: stops the current tunnel, starts the new one when enabled, stores the settings. */
  configure(req: TunnelRequest): Promise<UiTunnelStatus> {
    return this.serial(async () => {
      const target = req.sshPort === 22 ? req.target : `${req.target}:${req.sshPort}`;
      const spec: TunnelSpec = {
        target,
        remotePort: req.remotePort,
        ...(req.identityFile ? { identityFile: req.identityFile } : {}),
      };
      if (req.enabled) this.check(spec);
      await this.stopCurrent();
      // The settings keep target and remote port (what the UI shows next time), enabled or not.
      this.deps.settings.update({
        tunnel: {
          enabled: req.enabled,
          target,
          remotePort: req.remotePort,
          identityFile: req.identityFile,
        },
      });
      if (req.enabled) this.startNow(spec, this.deps.log);
      else this.emit();
      return this.status();
    });
  }

  /**
   * Starts a tunnel for this run only (`serve --tunnel`, or the stored settings at start-up); `log` gets
   * one `tunnel <state>` line per state transition (default: the service log).
   */
  start(spec: TunnelSpec, log?: (line: string) => void): Promise<UiTunnelStatus> {
    return this.serial(async () => {
      this.check(spec);
      await this.stopCurrent();
      this.startNow(spec, log);
      return this.status();
    });
  }

  /** The listener moved: point a running tunnel at the new port. */
  listenerMoved(): Promise<void> {
    return this.serial(async () => {
      const spec = this.spec;
      if (!spec || !this.tunnel || this.tunnel.state.localPort === this.deps.localPort()) return;
      await this.stopCurrent();
      this.startNow(spec);
    });
  }

  /** Stops the tunnel (service shutdown). */
  close(): Promise<void> {
    return this.serial(() => this.stopCurrent());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Refuses a spec SshTunnel would refuse, before the running tunnel is stopped. */
  private check(spec: TunnelSpec): void {
    try {
      // The constructor validates target and ports; nothing runs until start().
      new SshTunnel({ ...spec, localPort: this.deps.localPort() });
    } catch (e) {
      throw new DomainError('bad-arguments', e instanceof Error ? e.message : String(e));
    }
  }

  private startNow(spec: TunnelSpec, log = this.log): void {
    const tunnel = startAuditedTunnel(
      {
        ...spec,
        localPort: this.deps.localPort(),
        ...(this.deps.sshPath ? { sshPath: this.deps.sshPath } : {}),
      },
      this.deps.audit,
      log,
    );
    this.tunnel = tunnel;
    this.spec = spec;
    this.log = log;
    this.offTunnel = tunnel.subscribe(() => this.emit());
  }

  private async stopCurrent(): Promise<void> {
    const tunnel = this.tunnel;
    if (!tunnel) return;
    await tunnel.stop();
    this.offTunnel?.();
    this.offTunnel = undefined;
    this.tunnel = undefined;
    this.spec = undefined;
    this.emit();
  }

  private emit(): void {
    const s = this.status();
    for (const cb of [...this.watchers]) {
      try {
        cb(s);
      } catch {
        // A broken watcher must not stop the tunnel.
      }
    }
  }
}
