/**
 * The SSH reverse tunnel as part of a running service (headless `serve --tunnel`, and the desktop app's
 * main process): starts an SshTunnel to the listener's bound port, writes every state change to the
 * audit log as a 'tunnel' event, and reports it as a log line.
 */
import type { AuditEventInput } from '../../app/audit';
import { SshTunnel, type SshTunnelOptions, type TunnelStatus } from '../services/ssh-tunnel';

export interface TunnelAuditSink {
  append(e: AuditEventInput): unknown;
}

/** One line for a tunnel state (what serve prints and the audit message says). */
export function describeTunnel(s: TunnelStatus): string {
  const where = `${s.target} 127.0.0.1:${s.remotePort} -> 127.0.0.1:${s.localPort}`;
  switch (s.state) {
    case 'up':
      return `up (${where})`;
    case 'connecting':
      return `connecting (${where}, attempt ${s.attempt})`;
    case 'down':
      return `down: ${s.reason ?? 'disconnected'}; retrying in ${Math.round((s.retryInMs ?? 0) / 1000)} s`;
    case 'error':
      return `error: ${s.reason ?? 'failed'}`;
    default:
      return 'stopped';
  }
}

/** Starts the tunnel and audits its state changes; stop it with `tunnel.stop()`. */
export function startAuditedTunnel(
  opts: SshTunnelOptions,
  audit: TunnelAuditSink,
  log: (line: string) => void = () => {},
): SshTunnel {
  const tunnel = new SshTunnel(opts);
  let last: string | undefined;
  tunnel.subscribe((s) => {
    // 'connecting' repeats on every retry; audit transitions, not attempts.
    if (s.state === last || (s.state === 'stopped' && last === undefined)) return;
    last = s.state;
    log(`tunnel ${describeTunnel(s)}`);
    audit.append({
      type: 'tunnel',
      result: s.state === 'error' ? 'error' : s.state === 'down' ? 'refused' : 'info',
      message: describeTunnel(s),
      details: { state: s.state, target: s.target, remotePort: s.remotePort, localPort: s.localPort },
      ...(s.reason ? { reason: `tunnel-${s.state}` } : {}),
    });
  });
  tunnel.start();
  return tunnel;
}
