/**
 * `demo:run`: a simulated host (app/sim: SimulatedSevPlatform + SimulatedHost) launches one of the owner's
 * VMs against the RUNNING listener over real HTTP on loopback, as a real host would: POST launch with its
 * PDH, cert chain and ASK-signed CEK, repeat through 202 while the owner decides in the UI, LAUNCH_START
 * with the returned owner cert / session / policy, measure the firmware (and kernel hashes table and
 * VMSAs), POST validate with the measurement, inject the released secret and report what the guest
 * decrypted. Nothing is shortcut: the listener cannot tell the demo from a host.
 *
 * Trust: the simulated platform's ASK||ARK is added to the service's TrustStore as an 'extra' anchor
 * labelled DEMO_ANCHOR_LABEL, so every audit event of a demo launch names it (never an AMD root). Its RSA
 * keys are generated in this process and never leave it, so nothing else can sign under that anchor.
 */
import { DomainError } from '../../app/errors';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { DemoRunRequest, DemoRunResult } from '../../app/demo';
import type { AuditEventInput } from '../../app/audit';
import type { VmProfile } from '../../app/profile';
import { toBase64, toHex } from '../../app/sev/bytes';
import { anchorName, type TrustStore } from '../../app/sev/roots';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import { SimulatedHost, type SimulatedLaunch } from '../../app/sim/simulated-host';
import type { ApprovalService } from './approvals';
import type { ArtifactStore } from './artifact-store';
import type { ProfileStore } from './profile-store';

/** How the demo's trust anchor is labelled in the TrustStore, audit events and the UI. */
export const DEMO_ANCHOR_LABEL = 'demo: simulated platform (not AMD)';

export type DemoRunParsed = DemoRunRequest;

/** A demo that cannot start (unknown VM, no firmware to launch): a coded error for the UI. */
export class DemoError extends DomainError<'unknown-vm' | 'demo-not-possible'> {
  constructor(code: 'unknown-vm' | 'demo-not-possible', message: string) {
    super(code, message);
    this.name = 'DemoError';
  }
}

/** What the runner needs of the running service (server/serve/serve.ts RunningService). */
export interface DemoServiceView {
  url: string;
  tlsCertFile?: string | undefined;
  /** The host token as the listener currently requires it (read per request: the owner may change it). */
  hostToken?: string | undefined;
  profiles: Pick<ProfileStore, 'get'>;
  artifacts: Pick<ArtifactStore, 'has' | 'path'>;
  trust: TrustStore;
  approvals: Pick<ApprovalService, 'subscribe'>;
  audit: { append(e: AuditEventInput): unknown };
}

export interface DemoHostOptions {
  service: DemoServiceView;
  /** The host token, when the service does not say which one it requires (service.hostToken wins). */
  hostToken?: string;
  /** Longest wait for the owner's decision (default 10 minutes; the approval's own timeout denies first). */
  maxWaitMs?: number;
  /** Per-request time limit (default 30 s). */
  requestTimeoutMs?: number;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

const EPYC_V4 = { family: 23, model: 1, stepping: 2 };

/** The listener's URL as a local client reaches it (an unspecified bind address means loopback). */
export function loopbackUrl(url: string): string {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  else if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.href.replace(/\/$/, '');
}

/** Runs demo launches; one simulated platform per runner, hosts cached per launch configuration. */
export class DemoHostRunner {
  private platform: SimulatedSevPlatform | undefined;
  private readonly hosts = new Map<string, Promise<SimulatedHost>>();

  constructor(private readonly opts: DemoHostOptions) {}

  /** The simulated platform (created and trusted on first use). */
  simulatedPlatform(): SimulatedSevPlatform {
    if (!this.platform) {
      const p = SimulatedSevPlatform.create({ generation: 'naples' });
      const anchor = this.opts.service.trust.addAskArk(p.askArk, DEMO_ANCHOR_LABEL);
      this.platform = p;
      this.opts.service.audit.append({
        type: 'listener',
        result: 'info',
        anchor: anchorName(anchor.label),
        message: `demo host: its simulated platform's root is trusted as an extra anchor labelled '${DEMO_ANCHOR_LABEL}' (not an AMD root; its keys exist only in this process)`,
        details: { demo: true, askKeyId: toHex(anchor.ask.keyId) },
      });
    }
    return this.platform;
  }

  /** One launch of the VM by the simulated host; resolves when it got its secret or was refused. */
  async run(options: DemoRunParsed & { vmId: string }): Promise<DemoRunResult> {
    const svc = this.opts.service;
    const profile = svc.profiles.get(options.vmId);
    if (!profile) throw new DemoError('unknown-vm', `no VM profile ${options.vmId}`);
    const config = this.launchConfig(profile, options);
    const platform = this.simulatedPlatform();
    const host = await this.host(config, platform).catch((e: unknown) => {
      throw new DemoError('demo-not-possible', `the simulated host cannot start this VM: ${errText(e)}`);
    });
    const sevEs = profile.scheme === 'amd-sev-es';
    const what = `${sevEs ? `SEV-ES, ${host.cpus} vCPU(s), ${host.vmsaVariant} VMSA` : 'SEV'}`;
    this.audit('info', profile.id, `demo host: launching VM ${profile.id} (${what})`, {
      cpuCount: host.cpus,
      vmsaVariant: sevEs ? host.vmsaVariant : undefined,
    });
    const finish = (result: DemoRunResult): DemoRunResult => {
      const r: DemoRunResult = { ...result, vmId: profile.id };
      this.audit(
        r.outcome === 'released' ? 'ok' : r.outcome === 'refused' ? 'refused' : 'error',
        profile.id,
        `demo host: ${r.message}`,
        {
          outcome: r.outcome,
          ...(r.code ? { code: r.code } : {}),
          ...(r.connection ? { connection: r.connection } : {}),
        },
      );
      return r;
    };

    let launched: Answer;
    try {
      launched = await this.launchRequest(profile, platform);
    } catch (e) {
      return finish({ outcome: 'error', message: `launch request failed: ${errText(e)}` });
    }
    if (launched.status !== 200) return finish(refusal('launch', launched));
    const { connection, session, policy } = launched.body as {
      connection: string;
      session: string;
      policy: number;
    };
    const ownerCert = (launched.body as Record<string, string>)['owner-cert']!;

    let launch: SimulatedLaunch;
    try {
      launch = host.launch({ policy, dhCert: ownerCert, session });
    } catch (e) {
      return finish({ outcome: 'error', connection, message: `the simulated launch failed: ${errText(e)}` });
    }
    const info = launch.launchSecurityInfo();
    let validated: Answer;
    try {
      validated = await this.post(`/v1/connections/${encodeURIComponent(connection)}/validate`, {
        'api-major': info['sev-api-major'],
        'api-minor': info['sev-api-minor'],
        'build-id': info['sev-build-id'],
        policy: info['sev-policy'],
        measurement: info['sev-measurement'],
        ...(sevEs ? { 'cpu-count': host.cpus } : {}),
      });
    } catch (e) {
      return finish({ outcome: 'error', connection, message: `validate request failed: ${errText(e)}` });
    }
    if (validated.status !== 200) return finish({ ...refusal('validate', validated), connection });
    try {
      const out = launch.injectSecret({
        header: validated.body['secret-header'] as string,
        payload: validated.body['secret-table'] as string,
      });
      launch.resume();
      const releasedGuids = out.entries.map((e) => e.guid);
      return finish({
        outcome: 'released',
        connection,
        releasedGuids,
        message: `the simulated guest decrypted ${releasedGuids.length} secret(s) and runs`,
      });
    } catch (e) {
      return finish({
        outcome: 'error',
        connection,
        message: `the secret was released but the simulated guest could not take it: ${errText(e)}`,
      });
    }
  }

  private launchConfig(p: VmProfile, o: DemoRunParsed) {
    if (p.firmware.kind !== 'artifact') {
      throw new DemoError(
        'demo-not-possible',
        `VM ${p.id} has precomputed launch digests only: the demo host needs the firmware image itself (import it and use it in the profile)`,
      );
    }
    const svc = this.opts.service;
    const need = (sha: string, what: string) => {
      if (!svc.artifacts.has(sha)) {
        throw new DemoError(
          'demo-not-possible',
          `the ${what} of VM ${p.id} (sha256 ${sha}) is not in the artifact store: import it to run the demo`,
        );
      }
      return svc.artifacts.path(sha);
    };
    const firmware = need(p.firmware.sha256, 'firmware');
    let kernel: string | undefined;
    let initrd: string | undefined;
    if (p.kernelHash !== undefined) {
      kernel = need(p.kernelHash, 'kernel');
      if (p.initrdHash !== undefined) initrd = need(p.initrdHash, 'initrd');
      if (p.cmdlineHash !== undefined && p.cmdline === undefined) {
        throw new DemoError(
          'demo-not-possible',
          `VM ${p.id} names its kernel command line only by its hash: the demo host needs the command line itself`,
        );
      }
    }
    return {
      firmware,
      kernel,
      initrd,
      cmdline: p.kernelHash !== undefined ? p.cmdline : undefined,
      cpus: o.cpuCount ?? p.cpuCounts[0]!,
      cpuSignature: p.cpuSignatures[0] ?? EPYC_V4,
      vmsaVariant: o.vmsaVariant ?? p.vmsaVariants[0] ?? 'kvm-init2',
    };
  }

  private host(
    c: ReturnType<DemoHostRunner['launchConfig']>,
    platform: SimulatedSevPlatform,
  ): Promise<SimulatedHost> {
    const key = JSON.stringify(c);
    let h = this.hosts.get(key);
    if (!h) {
      h = SimulatedHost.create({
        platform,
        firmware: c.firmware,
        ...(c.kernel !== undefined ? { kernel: c.kernel } : {}),
        ...(c.initrd !== undefined ? { initrd: c.initrd } : {}),
        ...(c.cmdline !== undefined ? { cmdline: c.cmdline } : {}),
        cpus: c.cpus,
        cpuSignature: c.cpuSignature,
        vmsaVariant: c.vmsaVariant,
      });
      h.catch(() => this.hosts.delete(key));
      // A handful of configurations is all a demo needs; each holds the firmware image.
      if (this.hosts.size >= 8) this.hosts.delete(this.hosts.keys().next().value!);
      this.hosts.set(key, h);
    }
    return h;
  }

  /** POST launch, repeated through 202 answers; an approval change wakes the wait early. */
  private async launchRequest(p: VmProfile, platform: SimulatedSevPlatform): Promise<Answer> {
    const body = {
      pdh: toBase64(platform.pdh),
      'cert-chain': toBase64(platform.certChain),
      'cpu-id': toBase64(platform.chipId),
      // The ASK-signed CEK, as a host with a key-server cache sends it.
      cek: toBase64(platform.signedCek),
      policy: p.policy,
      scheme: p.scheme,
    };
    const maxWait = this.opts.maxWaitMs ?? 600_000;
    const started = Date.now();
    for (;;) {
      const a = await this.post(`/v1/vm/${encodeURIComponent(p.id)}/launch`, body);
      if (a.status !== 202) return a;
      const left = maxWait - (Date.now() - started);
      if (left <= 0) {
        return {
          status: 202,
          headers: a.headers,
          body: { error: 'timeout', message: 'the owner did not decide in time' },
        };
      }
      const retry = Math.min(Math.max(Number(a.headers['retry-after']) || 2, 1), 60) * 1000;
      await this.waitForDecision(Math.min(retry, left));
    }
  }

  /** Sleeps up to `ms`, or until any approval changes (the owner decided in the UI). */
  private waitForDecision(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let off = () => {};
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      off = this.opts.service.approvals.subscribe((a) => {
        if (a.state !== 'pending') done();
      });
    });
  }

  private post(path: string, body: unknown): Promise<Answer> {
    const url = new URL(loopbackUrl(this.opts.service.url) + path);
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(payload.length),
    };
    const svc = this.opts.service;
    const token = 'hostToken' in svc ? svc.hostToken : this.opts.hostToken;
    if (token) headers.authorization = `Bearer ${token}`;
    const tlsFile = this.opts.service.tlsCertFile;
    const timeoutMs = this.opts.requestTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const onResponse = (res: http.IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = { error: `http-${res.statusCode}`, message: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      };
      const req =
        url.protocol === 'https:'
          ? // The listener's self-signed certificate is the only CA: verified, not skipped.
            https.request(
              url,
              { method: 'POST', headers, ...(tlsFile ? { ca: fs.readFileSync(tlsFile) } : {}) },
              onResponse,
            )
          : http.request(url, { method: 'POST', headers }, onResponse);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  private audit(
    result: AuditEventInput['result'],
    vmId: string,
    message: string,
    details: Record<string, unknown>,
  ) {
    this.opts.service.audit.append({
      type: 'listener',
      result,
      vmId,
      message,
      details: { demo: true, ...details },
    });
  }
}

function refusal(step: 'launch' | 'validate', a: Answer): DemoRunResult {
  const code = typeof a.body?.error === 'string' ? (a.body.error as string) : `http-${a.status}`;
  const why = typeof a.body?.message === 'string' ? (a.body.message as string) : `HTTP ${a.status}`;
  return { outcome: 'refused', code, message: `the listener refused the ${step}: ${why} (${code})` };
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
