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
  /**
   * No host token while a VM asks for manual approval: anyone who reaches the listener can queue
   * approvals (within the per-client and per-platform budgets). A host token is recommended.
   */
  hostTokenRecommended?: boolean;
  /** The retained audit stream reached its disk budget: secret releases are refused until the owner makes room. */
  auditFull?: boolean;
  error?: string;
}

export interface TunnelStatus {
  state: 'off' | 'connecting' | 'up' | 'down' | 'error';
  /** `user@host` of the SSH server the reverse tunnel goes to. */
  target?: string;
  remotePort?: number;
  message?: string;
}
