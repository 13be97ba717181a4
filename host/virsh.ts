/**
 * The libvirt side of `sev-attest-host`: runs the system `virsh` (found on PATH) with argument arrays,
 * never through a shell, and parses its real output formats. `virsh nodesevinfo` prints each typed
 * parameter as `%-18s: %s` and `virsh domlaunchsecinfo` as `%-15s: %s` (tools/virsh-host.c,
 * tools/virsh-domain.c): one `field : value` per line; unsigned ints in decimal, strings (the base64
 * blobs) as they are.
 */
import { spawn } from 'node:child_process';

export type VirshFailure = 'unreachable' | 'failed';

/** A failed virsh command: `unreachable` when virsh is missing or cannot reach libvirt. */
export class VirshError extends Error {
  constructor(
    readonly kind: VirshFailure,
    message: string,
    readonly stderr = '',
  ) {
    super(message);
    this.name = 'VirshError';
  }
}

export interface VirshOptions {
  /** libvirt connection URI (`virsh -c URI`). */
  connect?: string;
  /** The program to run (default `virsh`, looked up on PATH). */
  program?: string;
  env?: NodeJS.ProcessEnv;
  /** Per-command time limit (default 120 s: `start` of a large guest takes a while). */
  timeoutMs?: number;
}

/** `field : value` lines, as virsh prints typed parameters. Later duplicates are ignored. */
export function parseVirshFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*: ?(.*)$/.exec(line);
    if (m && !out.has(m[1]!)) out.set(m[1]!, m[2]!.trim());
  }
  return out;
}

export interface NodeSevInfo {
  pdh: string;
  certChain: string;
  /** base64 of the 64-byte chip id (libvirt 8.4+), when reported. */
  cpu0Id: string | undefined;
  cbitpos: number | undefined;
  reducedPhysBits: number | undefined;
  maxGuests: number | undefined;
  maxEsGuests: number | undefined;
}

export interface LaunchSecInfo {
  measurement: string;
  apiMajor: number;
  apiMinor: number;
  buildId: number;
  policy: number;
}

function uint(fields: Map<string, string>, name: string, required: true): number;
function uint(fields: Map<string, string>, name: string, required?: false): number | undefined;
function uint(fields: Map<string, string>, name: string, required = false): number | undefined {
  const v = fields.get(name);
  if (v === undefined) {
    if (required) throw new VirshError('failed', `virsh printed no '${name}'`);
    return undefined;
  }
  if (!/^\d+$/.test(v)) throw new VirshError('failed', `virsh printed a non-numeric '${name}': '${v}'`);
  return Number(v);
}

/** Parses `virsh nodesevinfo`. */
export function parseNodeSevInfo(text: string): NodeSevInfo {
  const f = parseVirshFields(text);
  const pdh = f.get('pdh');
  const certChain = f.get('cert-chain');
  if (!pdh || !certChain) {
    throw new VirshError(
      'failed',
      'virsh nodesevinfo printed no pdh / cert-chain (is SEV enabled on this host?)',
    );
  }
  return {
    pdh,
    certChain,
    cpu0Id: f.get('cpu0-id') || undefined,
    cbitpos: uint(f, 'cbitpos'),
    reducedPhysBits: uint(f, 'reduced-phys-bits'),
    maxGuests: uint(f, 'max-guests'),
    maxEsGuests: uint(f, 'max-es-guests'),
  };
}

/** Parses `virsh domlaunchsecinfo`. */
export function parseLaunchSecInfo(text: string): LaunchSecInfo {
  const f = parseVirshFields(text);
  const measurement = f.get('sev-measurement');
  if (!measurement) throw new VirshError('failed', 'virsh domlaunchsecinfo printed no sev-measurement');
  return {
    measurement,
    apiMajor: uint(f, 'sev-api-major', true),
    apiMinor: uint(f, 'sev-api-minor', true),
    buildId: uint(f, 'sev-build-id', true),
    policy: uint(f, 'sev-policy', true),
  };
}

const UNREACHABLE =
  /failed to connect to the hypervisor|Failed to connect socket|no connection driver available|authentication (failed|unavailable)|End of file while reading data/i;

/** Runs virsh commands for one connection URI. */
export class Virsh {
  constructor(private readonly opts: VirshOptions = {}) {}

  /** The full argument vector for a virsh subcommand (what --dry-run prints). */
  argv(args: string[]): string[] {
    return [this.opts.program ?? 'virsh', ...(this.opts.connect ? ['-c', this.opts.connect] : []), ...args];
  }

  /** Runs `virsh [-c URI] args...`; resolves with stdout, throws VirshError with virsh's own message. */
  run(args: string[]): Promise<Buffer> {
    const [program, ...rest] = this.argv(args);
    const timeoutMs = this.opts.timeoutMs ?? 120_000;
    return new Promise((resolve, reject) => {
      const child = spawn(program!, rest, {
        env: { ...(this.opts.env ?? process.env), LC_ALL: 'C' },
        stdio: ['ignore', 'pipe', 'pipe'],
        shell: false,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGTERM');
      }, timeoutMs);
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new VirshError(
            'unreachable',
            e.code === 'ENOENT' ? `'${program}' was not found on PATH (install libvirt's virsh)` : e.message,
          ),
        );
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8').trim();
        if (code === 0) {
          resolve(Buffer.concat(out));
          return;
        }
        const what = `virsh ${args[0]}`;
        if (timedOut) {
          reject(new VirshError('failed', `${what} did not finish within ${timeoutMs / 1000} s`, stderr));
          return;
        }
        const detail = stderr.replace(/^error: /gm, '').replace(/\n+/g, '; ') || `exit ${code ?? signal}`;
        reject(
          new VirshError(UNREACHABLE.test(stderr) ? 'unreachable' : 'failed', `${what}: ${detail}`, stderr),
        );
      });
    });
  }

  private async text(args: string[]): Promise<string> {
    return (await this.run(args)).toString('utf8');
  }

  /** `virsh nodesevinfo`: the platform's PDH, chain and chip id. */
  async nodeSevInfo(): Promise<NodeSevInfo> {
    return parseNodeSevInfo(await this.text(['nodesevinfo']));
  }

  /** `virsh domstate NAME`: e.g. `shut off`, `running`, `paused`. */
  async domState(name: string): Promise<string> {
    return (await this.text(['domstate', name])).trim();
  }

  /**
   * `virsh dumpxml --inactive --security-info NAME`: the persistent definition, including secrets such
   * as VNC passwords (without --security-info they would be dropped by the define that follows).
   */
  async dumpXml(name: string): Promise<Buffer> {
    return this.run(['dumpxml', '--inactive', '--security-info', name]);
  }

  async define(file: string): Promise<void> {
    await this.run(['define', file]);
  }

  async startPaused(name: string): Promise<void> {
    await this.run(['start', '--paused', name]);
  }

  async launchSecInfo(name: string): Promise<LaunchSecInfo> {
    return parseLaunchSecInfo(await this.text(['domlaunchsecinfo', name]));
  }

  /** `virsh domsetlaunchsecstate NAME --secrethdr F --secret F` (files hold base64, read by virsh). */
  async setLaunchSecState(name: string, headerFile: string, secretFile: string): Promise<void> {
    await this.run(['domsetlaunchsecstate', name, '--secrethdr', headerFile, '--secret', secretFile]);
  }

  async resume(name: string): Promise<void> {
    await this.run(['resume', name]);
  }

  async destroy(name: string): Promise<void> {
    await this.run(['destroy', name]);
  }
}
