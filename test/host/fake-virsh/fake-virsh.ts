/**
 * A stand-in for libvirt's `virsh` in tests, backed by the simulated SEV platform (app/sim). Each virsh
 * invocation is a new process, so everything lives in the directory named by FAKE_VIRSH_STATE:
 *   platform.json          the simulated platform (SimulatedSevPlatform.exportState)
 *   host.json              what QEMU would use: vCPU signature, VMSA variant
 *   domains/NAME.xml       the persistent definition (define / dumpxml), bytes kept as given
 *   domains/NAME.json      run state: shut off | paused | running, and a paused launch's firmware context
 *   received/NAME.json     every secret table the guest received (what a test asserts)
 *   calls.log              one JSON argv per invocation
 *   fail-<command>         makes that command fail once (its content is the error text)
 * Output formats follow libvirt's virsh: typed parameters as `%-18s: %s` (nodesevinfo) and `%-15s: %s`
 * (domlaunchsecinfo), `Domain 'NAME' started`, errors as `error: ...` lines on stderr with exit 1.
 *
 * The firmware context of a paused launch (TEK/TIK, measure) cannot cross processes inside the
 * simulator, so domsetlaunchsecstate replays LAUNCH_START with the same dhCert/session (the firmware
 * unwraps the same keys), sets the launch digest computed at start from the real images, and
 * re-measures with the recorded mnonce; it checks the measurement is the one reported.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fromBase64, toBase64, toHex } from '../../../app/sev/bytes';
import { SimulatedSevPlatform, type SimPlatformState } from '../../../app/sim/platform';
import { SimulatedHost } from '../../../app/sim/simulated-host';
import { hasSecretArea, parseOvmfFooter } from '../../../app/digest/ovmf';
import type { CpuSignature, VmsaVariant } from '../../../app/digest/vmsa';
import { parseDomainXml } from '../../../host/domain-xml';

export interface FakeHostConfig {
  cpuSignature: CpuSignature;
  vmsaVariant: VmsaVariant;
}

interface DomainRun {
  state: 'shut off' | 'paused' | 'running';
  history: string[];
  launch?: {
    policy: number;
    dhCert: string;
    session: string;
    launchDigest: string;
    mnonce: string;
    measurement: string;
    firmware: string;
  };
}

class VirshFailure extends Error {}

const fail = (...lines: string[]): never => {
  throw new VirshFailure(lines.map((l) => `error: ${l}`).join('\n'));
};

/** Writes a fresh state directory for a platform (the test keeps the platform for its trust file). */
export function initFakeVirshState(dir: string, platform: SimulatedSevPlatform, host: FakeHostConfig): void {
  fs.mkdirSync(join(dir, 'domains'), { recursive: true });
  fs.mkdirSync(join(dir, 'received'), { recursive: true });
  fs.writeFileSync(join(dir, 'platform.json'), JSON.stringify(platform.exportState()));
  fs.writeFileSync(join(dir, 'host.json'), JSON.stringify(host));
}

/** Runs one virsh invocation; returns the exit code. */
export async function main(
  argv: string[],
  io = { out: (s: string) => process.stdout.write(s), err: (s: string) => process.stderr.write(s) },
): Promise<number> {
  try {
    await run(argv, io.out);
    return 0;
  } catch (e) {
    if (e instanceof VirshFailure) {
      io.err(e.message + '\n');
      return 1;
    }
    io.err(`error: internal error: ${(e as Error).message}\n`);
    return 1;
  }
}

function unreachable(): never {
  return fail(
    'failed to connect to the hypervisor',
    "Failed to connect socket to '/var/run/libvirt/virtqemud-sock': No such file or directory",
  );
}

async function run(argv: string[], out: (s: string) => void): Promise<void> {
  const args = [...argv];
  let uri: string | undefined;
  while (args[0]?.startsWith('-')) {
    const o = args.shift()!;
    if (o === '-c' || o === '--connect') uri = args.shift();
    else if (o === '-q' || o === '--quiet') continue;
    else fail(`unsupported option '${o}'`);
  }
  const dir = process.env.FAKE_VIRSH_STATE;
  if (!dir || !fs.existsSync(join(dir, 'platform.json')) || uri === 'qemu:///unreachable') unreachable();
  fs.appendFileSync(join(dir!, 'calls.log'), JSON.stringify(argv) + '\n');
  const cmd = args.shift();
  if (!cmd) fail('no command');
  const injected = join(dir!, `fail-${cmd}`);
  if (fs.existsSync(injected)) {
    const text = fs.readFileSync(injected, 'utf8').trim();
    fs.rmSync(injected);
    fail(text || `injected failure of ${cmd}`);
  }
  const s = new State(dir!);
  switch (cmd) {
    case 'nodesevinfo':
      return nodesevinfo(s, out);
    case 'domstate':
      out(`${s.run(domainArg(args)).state}\n\n`);
      return;
    case 'dumpxml':
      return dumpxml(s, args, out);
    case 'define':
      return define(s, args, out);
    case 'start':
      return start(s, args, out);
    case 'domlaunchsecinfo':
      return domlaunchsecinfo(s, args, out);
    case 'domsetlaunchsecstate':
      return domsetlaunchsecstate(s, args);
    case 'resume':
      return resume(s, args, out);
    case 'destroy':
      return destroy(s, args, out);
    default:
      fail(`unknown command: '${cmd}'`);
  }
}

function domainArg(args: string[]): string {
  const i = args.indexOf('--domain');
  const name = i >= 0 ? args[i + 1] : args.find((a) => !a.startsWith('--'));
  if (!name) fail("command requires the 'domain' option");
  return name!;
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

class State {
  constructor(readonly dir: string) {}

  platform(): SimulatedSevPlatform {
    return SimulatedSevPlatform.restore(
      JSON.parse(fs.readFileSync(join(this.dir, 'platform.json'), 'utf8')) as SimPlatformState,
    );
  }

  platformState(): SimPlatformState {
    return JSON.parse(fs.readFileSync(join(this.dir, 'platform.json'), 'utf8')) as SimPlatformState;
  }

  host(): FakeHostConfig {
    return JSON.parse(fs.readFileSync(join(this.dir, 'host.json'), 'utf8')) as FakeHostConfig;
  }

  xmlPath(name: string): string {
    return join(this.dir, 'domains', `${name}.xml`);
  }

  xml(name: string): Buffer {
    const p = this.xmlPath(name);
    if (!/^[\w.-]+$/.test(name) || !fs.existsSync(p)) {
      fail(`failed to get domain '${name}'`);
    }
    return fs.readFileSync(p);
  }

  run(name: string): DomainRun {
    this.xml(name);
    const p = join(this.dir, 'domains', `${name}.json`);
    return fs.existsSync(p)
      ? (JSON.parse(fs.readFileSync(p, 'utf8')) as DomainRun)
      : { state: 'shut off', history: [] };
  }

  save(name: string, r: DomainRun): void {
    fs.writeFileSync(join(this.dir, 'domains', `${name}.json`), JSON.stringify(r, null, 1));
  }
}

function nodesevinfo(s: State, out: (t: string) => void): void {
  const p = s.platformState();
  const fields: [string, string | number][] = [
    ['pdh', p.pdh],
    ['cert-chain', p.certChain],
    ['cpu0-id', p.chipId],
    ['cbitpos', 47],
    ['reduced-phys-bits', 1],
    ['max-guests', 15],
    ['max-es-guests', 494],
  ];
  for (const [k, v] of fields) out(`${k.padEnd(18)}: ${v}\n`);
}

function dumpxml(s: State, args: string[], out: (t: string) => void): void {
  const name = domainArg(args.filter((a) => a !== '--inactive' && a !== '--security-info'));
  let xml = s.xml(name);
  // Like libvirt: secrets such as a VNC password only with --security-info.
  if (!args.includes('--security-info')) {
    xml = Buffer.from(xml.toString('utf8').replace(/ passwd=(['"])[^'"]*\1/g, ''));
  }
  out(xml.toString('utf8'));
}

function define(s: State, args: string[], out: (t: string) => void): void {
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) fail("command requires the 'file' option");
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file!);
  } catch (e) {
    return fail(`Failed to open file '${file}': ${(e as Error).message}`);
  }
  let info;
  try {
    info = parseDomainXml(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes));
  } catch (e) {
    return fail(`(domain_definition):1: ${(e as Error).message}`);
  }
  const ls = info.launchSecurity;
  if (ls) {
    const child = (n: string) => ls.children.find((c) => c.name === n)?.text;
    const policy = child('policy');
    if (policy !== undefined && !/^(0x)?[0-9a-fA-F]+$/.test(policy)) {
      fail(`XML error: failed to get launch security policy for launch security type SEV`);
    }
  }
  fs.writeFileSync(s.xmlPath(info.name), bytes);
  out(`Domain '${info.name}' defined from ${file}\n\n`);
}

async function start(s: State, args: string[], out: (t: string) => void): Promise<void> {
  const paused = args.includes('--paused');
  const name = domainArg(args.filter((a) => a !== '--paused'));
  const r = s.run(name);
  if (r.state !== 'shut off') {
    fail(`Failed to start domain '${name}'`, 'Requested operation is not valid: domain is already running');
  }
  const info = parseDomainXml(s.xml(name).toString('utf8'));
  const ls = info.launchSecurity;
  if (ls) {
    const child = (n: string) => ls.children.find((c) => c.name === n)?.text;
    const attr = (n: string) => ls.attributes.find(([k]) => k === n)?.[1];
    const policy = Number.parseInt((child('policy') ?? '0x1').replace(/^0x/i, ''), 16);
    const dhCert = child('dhCert');
    const session = child('session');
    if (!info.loader) fail(`Failed to start domain '${name}'`, 'SEV: the domain has no <loader>');
    if (!dhCert || !session) fail(`Failed to start domain '${name}'`, 'SEV: no dhCert/session');
    const host = s.host();
    const platform = s.platform();
    let launch;
    try {
      const simHost = await SimulatedHost.create({
        platform,
        firmware: info.loader!.path,
        ...(info.kernel ? { kernel: info.kernel } : {}),
        ...(info.initrd ? { initrd: info.initrd } : {}),
        ...(info.cmdline !== undefined ? { cmdline: info.cmdline } : {}),
        kernelHashes: attr('kernelHashes') === 'yes',
        cpus: info.vcpus,
        cpuSignature: host.cpuSignature,
        vmsaVariant: host.vmsaVariant,
      });
      launch = simHost.launch({ policy, dhCert: dhCert!, session: session! });
    } catch (e) {
      return fail(
        `Failed to start domain '${name}'`,
        `internal error: qemu unexpectedly closed the monitor: ${(e as Error).message}`,
      );
    }
    r.launch = {
      policy,
      dhCert: dhCert!,
      session: session!,
      launchDigest: toHex(launch.guest.launchDigestForTest()),
      mnonce: toBase64(launch.measurement.subarray(32)),
      measurement: launch.measurementBase64,
      firmware: info.loader!.path,
    };
  }
  r.state = paused ? 'paused' : 'running';
  r.history.push(paused ? 'start --paused' : 'start');
  s.save(name, r);
  out(`Domain '${name}' started\n\n`);
}

function requireActive(s: State, name: string): DomainRun {
  const r = s.run(name);
  if (r.state === 'shut off') fail('Requested operation is not valid: domain is not running');
  return r;
}

function domlaunchsecinfo(s: State, args: string[], out: (t: string) => void): void {
  const name = domainArg(args);
  const r = requireActive(s, name);
  if (!r.launch) fail('Operation not supported: launch security is not enabled for this domain');
  const p = s.platformState();
  const fields: [string, string | number][] = [
    ['sev-measurement', r.launch!.measurement],
    ['sev-api-major', p.api.major],
    ['sev-api-minor', p.api.minor],
    ['sev-build-id', p.api.build],
    ['sev-policy', r.launch!.policy],
  ];
  for (const [k, v] of fields) out(`${k.padEnd(15)}: ${v}\n`);
  out('\n');
}

function domsetlaunchsecstate(s: State, args: string[]): void {
  const hdrFile = option(args, '--secrethdr');
  const secFile = option(args, '--secret');
  const name = domainArg(
    args.filter((a, i) => !(a.startsWith('--') || (i > 0 && args[i - 1]!.startsWith('--')))),
  );
  if (!hdrFile || !secFile) fail("command requires the 'secrethdr' and 'secret' options");
  const r = requireActive(s, name);
  if (r.state !== 'paused' || !r.launch) {
    fail('Requested operation is not valid: the domain must be paused in the SEV launch state');
  }
  const st = fs.statSync(hdrFile!);
  const header = fs.readFileSync(hdrFile!, 'utf8').trim();
  const secret = fs.readFileSync(secFile!, 'utf8').trim();
  const l = r.launch!;
  // Replay the firmware's guest context (see the file comment), then LAUNCH_SECRET.
  const platform = s.platform();
  const guest = platform.launchStart({
    policy: l.policy,
    ownerCert: fromBase64(l.dhCert),
    session: fromBase64(l.session),
  });
  guest.setLaunchDigestForTest(Buffer.from(l.launchDigest, 'hex'));
  const m = guest.launchMeasure({ mnonceForTest: fromBase64(l.mnonce) });
  if (toBase64(m) !== l.measurement) fail('internal error: the replayed launch does not measure the same');
  const footer = parseOvmfFooter(new Uint8Array(fs.readFileSync(l.firmware)));
  const cap = hasSecretArea(footer);
  if (!cap.ok)
    fail(`internal error: unable to execute QEMU command 'sev-inject-launch-secret': ${cap.reason}`);
  let entries;
  try {
    const payload = fromBase64(secret);
    if (payload.length > footer.secretArea!.size) throw new Error('the secret does not fit the secret area');
    entries = guest.launchSecret({ header: fromBase64(header), payload }).entries;
  } catch (e) {
    return fail(
      `internal error: unable to execute QEMU command 'sev-inject-launch-secret': SEV: Failed to inject launch secret: ${(e as Error).message}`,
    );
  }
  const file = join(s.dir, 'received', `${name}.json`);
  const prior = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as unknown[]) : [];
  prior.push({
    fileModes: [st.mode & 0o777, fs.statSync(secFile!).mode & 0o777],
    entries: entries.map((e) => ({ guid: e.guid, data: toBase64(e.data) })),
  });
  fs.writeFileSync(file, JSON.stringify(prior, null, 1));
  r.history.push('domsetlaunchsecstate');
  s.save(name, r);
}

function resume(s: State, args: string[], out: (t: string) => void): void {
  const name = domainArg(args);
  const r = requireActive(s, name);
  if (r.state !== 'paused') fail('Requested operation is not valid: domain is not paused');
  r.state = 'running';
  delete r.launch; // LAUNCH_FINISH: the transport keys are gone
  r.history.push('resume');
  s.save(name, r);
  out(`Domain '${name}' resumed\n\n`);
}

function destroy(s: State, args: string[], out: (t: string) => void): void {
  const name = domainArg(args);
  const r = requireActive(s, name);
  r.state = 'shut off';
  delete r.launch;
  r.history.push('destroy');
  s.save(name, r);
  out(`Domain '${name}' destroyed\n\n`);
}
