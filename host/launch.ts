/**
 * `sev-attest-host launch`: one attested SEV launch of a libvirt domain, the flow libvirt's proposal
 * describes, with no change to libvirt:
 *   nodesevinfo -> (CEK from the key server) -> POST launch -> <launchSecurity> into the domain XML ->
 *   define -> start --paused -> domlaunchsecinfo -> POST validate -> domsetlaunchsecstate -> resume.
 * Any failure after the start destroys the domain (or leaves it paused when asked), the temporary files
 * are removed on every path, and the exit code names the step (HOST_EXIT).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { fromBase64, toBase64, toHex } from '../app/sev/bytes';
import type { LaunchRequest } from '../app/contract/rest';
import { policyHex } from '../app/sev/policy';
import { DiskCekCache, KdsClient } from '../app/sev/kds';
import { DomainXmlError, domainXmlText, parseDomainXml, setSevLaunchSecurity } from './domain-xml';
import { ServiceClient, ServiceError } from './service-client';
import { Virsh, VirshError, type NodeSevInfo } from './virsh';

/** Exit codes of sev-attest-host (docs/host-setup.md has the same table). */
export const HOST_EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  libvirtUnreachable: 3,
  launchRefused: 4,
  startFailed: 5,
  validateRefused: 6,
  injectionFailed: 7,
  resumeFailed: 8,
} as const;

/** A failed step: its exit code and a one-line reason. */
export class HostStepError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HostStepError';
  }
}

export interface LaunchOptions {
  domain: string;
  service: string;
  vmId?: string;
  token?: string;
  connect?: string;
  pinSha256?: string;
  kdsUrl?: string;
  kdsCacheDir?: string;
  keepPausedOnFailure?: boolean;
  dryRun?: boolean;
  maxWaitMs?: number;
  /** Environment for virsh (PATH decides which virsh runs). */
  env?: NodeJS.ProcessEnv;
  /** Progress (stderr) and result (stdout) lines. */
  log: (line: string) => void;
  out: (line: string) => void;
  /** For tests: where temporary files go (default the OS temp dir). */
  tmpRoot?: string;
}

const step = (code: number, msg: string) => new HostStepError(code, msg);

function virshStep(code: number, e: unknown): HostStepError {
  if (e instanceof VirshError) {
    return step(e.kind === 'unreachable' ? HOST_EXIT.libvirtUnreachable : code, e.message);
  }
  return step(code, e instanceof Error ? e.message : String(e));
}

function serviceStep(code: number, what: string, e: unknown): HostStepError {
  if (e instanceof ServiceError) return step(code, `${what}: ${e.message}`);
  return step(code, `${what}: ${e instanceof Error ? e.message : String(e)}`);
}

/** Prints what launch would do, running nothing. */
function dryRun(o: LaunchOptions, virsh: Virsh, client: ServiceClient): number {
  const q = (argv: string[]) =>
    argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const d = o.domain;
  const launchPath = o.vmId ? `/v1/vm/${o.vmId}/launch` : '/v1/launch';
  const lines = [
    `# sev-attest-host launch --dry-run: nothing is run`,
    q(virsh.argv(['nodesevinfo'])),
    q(virsh.argv(['domstate', d])),
    q(virsh.argv(['dumpxml', '--inactive', '--security-info', d])),
    ...(o.kdsUrl ? [`GET ${o.kdsUrl.replace(/\/+$/, '')}/cek/id/<cpu0-id in hex>`] : []),
    `POST ${client.url(launchPath)} {pdh, cert-chain, cpu-id${o.kdsUrl ? ', cek' : ''}${o.vmId ? '' : ', policy'}}${o.pinSha256 ? ' (certificate pinned)' : ''}`,
    `# put policy, dhCert, session into <launchSecurity type='sev'> of ${d}'s XML`,
    q(virsh.argv(['define', '<TMPDIR>/domain.xml'])),
    q(virsh.argv(['start', '--paused', d])),
    q(virsh.argv(['domlaunchsecinfo', d])),
    `POST ${client.url('/v1/connections/<connection>/validate')} {api-major, api-minor, build-id, policy, measurement, cpu-count}`,
    q(
      virsh.argv([
        'domsetlaunchsecstate',
        d,
        '--secrethdr',
        '<TMPDIR>/secret-header',
        '--secret',
        '<TMPDIR>/secret',
      ]),
    ),
    q(virsh.argv(['resume', d])),
    `# on failure: ${o.keepPausedOnFailure ? 'leave the domain paused' : q(virsh.argv(['destroy', d]))}`,
  ];
  for (const l of lines) o.out(l);
  return HOST_EXIT.ok;
}

/** Runs the whole launch; returns the exit code (HOST_EXIT) after printing why on failure. */
export async function launchDomain(o: LaunchOptions): Promise<number> {
  const virsh = new Virsh({ ...(o.connect ? { connect: o.connect } : {}), ...(o.env ? { env: o.env } : {}) });
  let client: ServiceClient;
  try {
    client = new ServiceClient({
      baseUrl: o.service,
      ...(o.token ? { token: o.token } : {}),
      ...(o.pinSha256 ? { pinSha256: o.pinSha256 } : {}),
      ...(o.maxWaitMs !== undefined ? { maxWaitMs: o.maxWaitMs } : {}),
      log: o.log,
    });
  } catch (e) {
    throw step(HOST_EXIT.usage, (e as Error).message);
  }
  if (o.dryRun) return dryRun(o, virsh, client);

  let tmp: string | undefined;
  let started = false;
  try {
    // 1. The platform.
    let sev: NodeSevInfo;
    try {
      sev = await virsh.nodeSevInfo();
    } catch (e) {
      throw virshStep(HOST_EXIT.libvirtUnreachable, e);
    }
    o.log(`platform: chip ${sev.cpu0Id ? toHex(fromBase64(sev.cpu0Id)).slice(0, 16) + '…' : '(no cpu0-id)'}`);

    // The domain must exist and be shut off: this tool starts it.
    let state: string;
    try {
      state = await virsh.domState(o.domain);
    } catch (e) {
      if (e instanceof VirshError && e.kind === 'unreachable')
        throw virshStep(HOST_EXIT.libvirtUnreachable, e);
      throw step(HOST_EXIT.usage, `no domain '${o.domain}': ${(e as Error).message}`);
    }
    if (state !== 'shut off') {
      throw step(
        HOST_EXIT.startFailed,
        `domain '${o.domain}' is ${state}; shut it down first (it must start paused, with a fresh session)`,
      );
    }
    let xml: string;
    try {
      xml = domainXmlText(await virsh.dumpXml(o.domain));
      const info = parseDomainXml(xml);
      if (info.launchSecurity) {
        const type = info.launchSecurity.attributes.find(([k]) => k === 'type')?.[1];
        if (type !== 'sev') throw new DomainXmlError(`<launchSecurity type='${type ?? ''}'> is not SEV`);
      }
    } catch (e) {
      if (e instanceof VirshError) throw virshStep(HOST_EXIT.startFailed, e);
      throw step(HOST_EXIT.usage, `domain '${o.domain}': ${(e as Error).message}`);
    }
    const info = parseDomainXml(xml);

    // 2. The ASK-signed CEK, when a key server is given.
    let cek: string | undefined;
    if (o.kdsUrl) {
      if (!sev.cpu0Id)
        throw step(
          HOST_EXIT.launchRefused,
          '--kds-url needs cpu0-id from nodesevinfo (libvirt 8.4 or later)',
        );
      try {
        const kds = new KdsClient({
          baseUrl: o.kdsUrl,
          maxAttempts: 2,
          ...(o.kdsCacheDir ? { cache: new DiskCekCache(o.kdsCacheDir) } : {}),
        });
        cek = toBase64(await kds.getCek(fromBase64(sev.cpu0Id)));
        o.log('CEK: fetched from the key server');
      } catch (e) {
        throw step(HOST_EXIT.launchRefused, `key server: ${(e as Error).message}`);
      }
    }

    // 3. The launch session from the owner.
    const req: LaunchRequest = {
      pdh: sev.pdh,
      'cert-chain': sev.certChain,
      ...(sev.cpu0Id ? { 'cpu-id': sev.cpu0Id } : {}),
      ...(cek ? { cek } : {}),
    };
    if (!o.vmId) {
      // /v1/launch needs the policy; take the one already in the domain XML.
      const p = info.launchSecurity?.children.find((c) => c.name === 'policy')?.text;
      if (!p)
        throw step(HOST_EXIT.usage, 'without --vm-id the domain XML must carry <launchSecurity><policy>');
      const policy = Number.parseInt(p.replace(/^0x/i, ''), 16);
      if (!Number.isInteger(policy)) throw step(HOST_EXIT.usage, `<policy>${p}</policy> is not hexadecimal`);
      req.policy = policy;
      req.scheme = policy & 0x4 ? 'amd-sev-es' : 'amd-sev';
    }
    o.log(`launch: POST ${client.url(o.vmId ? `/v1/vm/${o.vmId}/launch` : '/v1/launch')}`);
    let launch;
    try {
      launch = await client.launch(o.vmId, req);
    } catch (e) {
      throw serviceStep(HOST_EXIT.launchRefused, 'launch refused', e);
    }
    o.log(`launch: connection ${launch.connection}, policy ${policyHex(launch.policy)}`);

    // 4. The session into the domain, then start paused.
    tmp = fs.mkdtempSync(join(o.tmpRoot ?? os.tmpdir(), 'sev-attest-host-'));
    fs.chmodSync(tmp, 0o700);
    const edited = setSevLaunchSecurity(xml, {
      policy: launch.policy,
      dhCert: launch['owner-cert'],
      session: launch.session,
      ...(sev.cbitpos !== undefined ? { cbitpos: sev.cbitpos } : {}),
      ...(sev.reducedPhysBits !== undefined ? { reducedPhysBits: sev.reducedPhysBits } : {}),
    });
    const xmlFile = join(tmp, 'domain.xml');
    fs.writeFileSync(xmlFile, edited, { mode: 0o600 });
    try {
      await virsh.define(xmlFile);
    } catch (e) {
      throw virshStep(HOST_EXIT.startFailed, e);
    }
    try {
      started = true; // a failed start may still leave a paused QEMU behind; destroy is harmless if not
      await virsh.startPaused(o.domain);
    } catch (e) {
      throw virshStep(HOST_EXIT.startFailed, e);
    }
    o.log(`start: ${o.domain} is paused`);

    // 5. The measurement, checked by the owner.
    let m;
    try {
      m = await virsh.launchSecInfo(o.domain);
    } catch (e) {
      throw virshStep(HOST_EXIT.startFailed, e);
    }
    o.log(
      `measurement: ${m.measurement} (API ${m.apiMajor}.${m.apiMinor} build ${m.buildId}, policy ${policyHex(m.policy)})`,
    );
    let secret;
    try {
      secret = await client.validate(launch.connection, {
        'api-major': m.apiMajor,
        'api-minor': m.apiMinor,
        'build-id': m.buildId,
        policy: m.policy,
        measurement: m.measurement,
        'cpu-count': info.vcpus,
      });
    } catch (e) {
      throw serviceStep(HOST_EXIT.validateRefused, 'validate refused', e);
    }

    // 6. The secret into the guest, then run it.
    const hdr = join(tmp, 'secret-header');
    const sec = join(tmp, 'secret');
    fs.writeFileSync(hdr, secret['secret-header'], { mode: 0o600 });
    fs.writeFileSync(sec, secret['secret-table'], { mode: 0o600 });
    try {
      await virsh.setLaunchSecState(o.domain, hdr, sec);
    } catch (e) {
      throw virshStep(HOST_EXIT.injectionFailed, e);
    } finally {
      fs.rmSync(hdr, { force: true });
      fs.rmSync(sec, { force: true });
    }
    o.log('secret: injected');
    try {
      await virsh.resume(o.domain);
    } catch (e) {
      throw virshStep(HOST_EXIT.resumeFailed, e);
    }
    o.out(`launched ${o.domain} connection ${launch.connection}`);
    return HOST_EXIT.ok;
  } catch (e) {
    const err =
      e instanceof HostStepError ? e : step(HOST_EXIT.internal, e instanceof Error ? e.message : String(e));
    o.log(`error: ${err.message}`);
    if (started) {
      if (o.keepPausedOnFailure) {
        o.log(
          `${o.domain} is left paused (--keep-paused-on-failure); destroy it with: virsh destroy ${o.domain}`,
        );
      } else {
        try {
          // A start that failed early leaves nothing running; destroy only what runs.
          if ((await virsh.domState(o.domain).catch(() => 'unknown')) === 'shut off') {
            return err.exitCode;
          }
          await virsh.destroy(o.domain);
          o.log(`${o.domain} destroyed`);
        } catch (d) {
          o.log(`could not destroy ${o.domain}: ${(d as Error).message}`);
        }
      }
    }
    return err.exitCode;
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}
