/**
 * An SSH reverse tunnel for a listener the libvirt host cannot reach directly (a laptop behind NAT):
 * runs the system OpenSSH client
 *   ssh -v -N -T -R 127.0.0.1:REMOTE:127.0.0.1:LOCAL -o ExitOnForwardFailure=yes -o BatchMode=yes
 *       -o ServerAliveInterval=.. -o ServerAliveCountMax=.. [-p PORT] [-i KEY]
 *       [-o UserKnownHostsFile=F] user@host
 * and reports its state (stopped / connecting / up / down / error) to subscribers, reconnecting with
 * exponential backoff. BatchMode means ssh never asks for a password or a host key confirmation: a key
 * or an agent is required, and anything else ends in the `error` state with ssh's own reason.
 *
 * 'up' is taken from ssh itself: with -v, ssh logs "remote forward success for: listen
 * 127.0.0.1:REMOTE" when the server confirmed the tcpip-forward request (and, with
 * ExitOnForwardFailure, exits when it refused). That is the server's word that the remote port is
 * bound, without opening a second connection to probe it. Electron-free.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export type TunnelState = 'stopped' | 'connecting' | 'up' | 'down' | 'error';

export interface TunnelStatus {
  state: TunnelState;
  /** Why it is down / in error: ssh's own message. */
  reason?: string;
  /** Connection attempts since the last 'up'. */
  attempt: number;
  /** When down: milliseconds until the next attempt. */
  retryInMs?: number;
  /** user@host:port */
  target: string;
  remotePort: number;
  localPort: number;
}

export interface SshTarget {
  user: string | undefined;
  host: string;
  port: number | undefined;
}

/** Parses `user@host[:port]` (`[v6]:port` too). */
export function parseSshTarget(s: string): SshTarget {
  const m = /^(?:([^@\s:/]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(s);
  const port = m?.[3] === undefined ? undefined : Number(m[3]);
  if (!m || (port !== undefined && (port < 1 || port > 65535)) || m[2]!.startsWith('-')) {
    throw new RangeError(`a tunnel target is user@host[:port], got '${s}'`);
  }
  return { user: m[1], host: m[2]!.replace(/^\[|\]$/g, ''), port };
}

export interface SshTunnelOptions {
  /** user@host[:port] of the SSH server on (or next to) the libvirt host. */
  target: string;
  /** Port bound on the server's loopback (what the host's sev-attest-host --service uses). */
  remotePort: number;
  /** The listener's local port. */
  localPort: number;
  identityFile?: string;
  knownHostsFile?: string;
  /** Seconds between keep-alives and how many may go unanswered (default 15 / 3). */
  serverAliveInterval?: number;
  serverAliveCountMax?: number;
  /** Backoff between attempts: first delay and upper bound (default 1 s / 60 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The ssh program (default `ssh` on PATH). */
  sshPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** ssh's messages that no retry can fix (configuration or trust problems). */
const PERMANENT =
  /Permission denied|Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No (ED25519|RSA|ECDSA)? ?host key is known|Bad configuration option|no such identity|Could not resolve hostname|Load key .*: (invalid format|No such file)|Too many authentication failures/i;

const MAX_STDERR_LINES = 200;

/** A supervised `ssh -N -R` process. */
export class SshTunnel {
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private attempt = 0;
  private current: TunnelStatus;
  private readonly listeners = new Set<(s: TunnelStatus) => void>();
  private readonly target: SshTarget;

  constructor(private readonly opts: SshTunnelOptions) {
    this.target = parseSshTarget(opts.target);
    for (const [n, v] of [
      ['remote port', opts.remotePort],
      ['local port', opts.localPort],
    ] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535)
        throw new RangeError(`tunnel ${n} must be 1..65535, got ${v}`);
    }
    this.current = this.status('stopped');
  }

  /** The ssh argument vector (without the program). */
  args(): string[] {
    const t = this.target;
    const o = this.opts;
    return [
      '-v',
      '-N',
      '-T',
      '-R',
      `127.0.0.1:${o.remotePort}:127.0.0.1:${o.localPort}`,
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      `ServerAliveInterval=${o.serverAliveInterval ?? 15}`,
      '-o',
      `ServerAliveCountMax=${o.serverAliveCountMax ?? 3}`,
      '-o',
      'ConnectTimeout=15',
      // A shared master connection would hide this tunnel's own state.
      '-o',
      'ControlMaster=no',
      '-o',
      'ControlPath=none',
      ...(t.port !== undefined ? ['-p', String(t.port)] : []),
      ...(o.identityFile ? ['-i', o.identityFile, '-o', 'IdentitiesOnly=yes'] : []),
      ...(o.knownHostsFile ? ['-o', `UserKnownHostsFile=${o.knownHostsFile}`] : []),
      '--',
      t.user ? `${t.user}@${t.host}` : t.host,
    ];
  }

  get state(): TunnelStatus {
    return this.current;
  }

  /** Calls `fn` on every state change (and once now); returns the unsubscribe function. */
  subscribe(fn: (s: TunnelStatus) => void): () => void {
    this.listeners.add(fn);
    fn(this.current);
    return () => this.listeners.delete(fn);
  }

  /** Starts (or restarts after an error). */
  start(): void {
    this.stopping = false;
    if (this.child || this.timer) return;
    this.attempt = 0;
    this.connect();
  }

  /** Stops the tunnel and any pending retry; resolves when ssh has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    this.child = undefined;
    this.set(this.status('stopped'));
  }

  private status(state: TunnelState, extra: Partial<TunnelStatus> = {}): TunnelStatus {
    const t = this.target;
    return {
      state,
      attempt: this.attempt,
      target: `${t.user ? `${t.user}@` : ''}${t.host}${t.port !== undefined ? `:${t.port}` : ''}`,
      remotePort: this.opts.remotePort,
      localPort: this.opts.localPort,
      ...extra,
    };
  }

  private set(s: TunnelStatus): void {
    this.current = s;
    for (const fn of [...this.listeners]) {
      try {
        fn(s);
      } catch {
        // A subscriber's failure must not stop the tunnel.
      }
    }
  }

  private connect(): void {
    this.timer = undefined;
    this.attempt++;
    this.set(this.status('connecting'));
    const child = spawn(this.opts.sshPath ?? 'ssh', this.args(), {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...(this.opts.env ?? process.env), LC_ALL: 'C' },
    });
    this.child = child;
    const lines: string[] = [];
    let partial = '';
    let up = false;
    const forwardOk = new RegExp(
      `remote forward success for: listen (127\\.0\\.0\\.1|localhost):${this.opts.remotePort}\\b`,
    );
    child.stderr!.on('data', (c: Buffer) => {
      partial += c.toString('utf8');
      const parts = partial.split(/\r?\n/);
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > MAX_STDERR_LINES) lines.shift();
        if (!up && forwardOk.test(line)) {
          up = true;
          this.attempt = 0;
          this.set(this.status('up'));
        }
      }
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      // spawn failed: no ssh client installed; retrying cannot help.
      this.child = undefined;
      this.set(
        this.status('error', {
          reason:
            e.code === 'ENOENT'
              ? `'${this.opts.sshPath ?? 'ssh'}' was not found (install OpenSSH's client)`
              : e.message,
        }),
      );
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (partial) lines.push(partial);
      if (this.stopping) return;
      const reason = sshReason(lines) ?? `ssh exited (${code ?? signal})`;
      if (PERMANENT.test(reason) || (!up && /Permission denied/.test(lines.join('\n')))) {
        this.set(this.status('error', { reason: permanentHint(reason) }));
        return;
      }
      const base = this.opts.initialBackoffMs ?? 1000;
      const max = this.opts.maxBackoffMs ?? 60_000;
      const delay = Math.min(max, base * 2 ** Math.max(0, this.attempt - 1));
      this.set(this.status('down', { reason, retryInMs: delay }));
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }
}

/** The most telling non-debug line ssh printed (the last one, ignoring the version banner). */
function sshReason(lines: string[]): string | undefined {
  const useful = lines
    .map((l) => l.trim())
    .filter((l) => l && !/^debug\d?:/.test(l) && !/^OpenSSH_/.test(l) && !/^Transferred: /.test(l));
  return useful[useful.length - 1];
}

function permanentHint(reason: string): string {
  if (/Permission denied/.test(reason)) {
    return `${reason} — the tunnel uses keys or an agent only (BatchMode): add this machine's public key to the server's authorized_keys or give --tunnel-identity`;
  }
  if (/Host key verification failed|No .*host key is known/i.test(reason)) {
    return `${reason} — the server's host key is not known: add it to known_hosts (ssh-keyscan) or give --tunnel-known-hosts`;
  }
  return reason;
}
