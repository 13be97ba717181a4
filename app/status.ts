/**
 * What the running services report about themselves (the listener, the SSH tunnel). Domain types: the
 * services produce them, the IPC contract (app/contract/ipc.ts) re-exports them for the UI.
 */

export const LISTENER_STATES = ['stopped', 'starting', 'running', 'draining', 'error'] as const;

export interface ListenerStatus {
  state: (typeof LISTENER_STATES)[number];
  host: string;
  port: number;
  /** The base URL hosts call, when running. */
  url?: string;
  tls: boolean;
  /** SHA-256 fingerprint of the TLS certificate (the host side pins it). */
  tlsFingerprint?: string;
  hostTokenRequired: boolean;
  error?: string;
}

export interface TunnelStatus {
  state: 'off' | 'connecting' | 'up' | 'down' | 'error';
  /** `user@host` of the SSH server the reverse tunnel goes to. */
  target?: string;
  remotePort?: number;
  message?: string;
}
