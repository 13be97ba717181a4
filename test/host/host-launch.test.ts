/**
 * `sev-attest-host launch` end to end: a real `sev-attest serve` (the built CLI, spawned), the owner
 * registering VMs through the REST API, and the stand-in virsh (test/host/fake-virsh) backed by the simulated
 * SEV platform computing the real measurement of the domain's firmware, kernel hashes and vCPUs and
 * decrypting the injected secret. Everything listens on 127.0.0.1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { fromBase64, toHex } from '../../app/sev/bytes';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import { parseDomainXml } from '../../host/domain-xml';
import { runHostCli } from '../../host/cli';
import { initFakeVirshState } from './fake-virsh/fake-virsh';

const ROOT = process.cwd();
const SEVCTL = join(ROOT, 'test/fixtures/vectors/sevctl');
const FIRMWARE = join(SEVCTL, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const KERNEL = join(SEVCTL, 'measurement/vmlinuz-fake');
const INITRD = join(SEVCTL, 'measurement/initrd-fake');
const CMDLINE = 'console=ttyS0 root=/dev/mapper/root quiet';
const MILAN = { family: 25, model: 1, stepping: 1 };
const sha256 = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

const tmp = fs.mkdtempSync(join(os.tmpdir(), 'sev-host-e2e-'));
const stateDir = join(tmp, 'virsh-state');
const fakeBin = join(ROOT, 'test/host/fake-virsh');
let platform: SimulatedSevPlatform;
let bundle: string;
let kds: http.Server;
let kdsUrl: string;
const kdsHits: string[] = [];

interface Serve {
  proc: ChildProcess;
  url: string;
  ownerToken: string;
  fingerprint?: string;
  ca?: string;
}
let tlsServe: Serve;
let kdsServe: Serve;

/** Spawns the built `sev-attest serve` and reads its port and owner token from what it prints. */
async function startServe(extra: string[], name: string): Promise<Serve> {
  const dataDir = join(tmp, name);
  const proc = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/sev-attest.mjs'),
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--secret-store',
      'memory',
      '--trust-ca',
      join(tmp, 'sim-ask-ark.cert'),
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SEV_ATTEST_OWNER_TOKEN: '' } },
  );
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const lines = await new Promise<Map<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/^trust /m.test(out)) {
        clearTimeout(timer);
        resolve(new Map(out.split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)])));
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  const tls = lines.has('tls-fingerprint');
  return {
    proc,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${lines.get('port')}`,
    ownerToken: fs.readFileSync(lines.get('owner-token-file')!, 'utf8').trim(),
    ...(tls
      ? { fingerprint: lines.get('tls-fingerprint')!, ca: fs.readFileSync(lines.get('tls-cert')!, 'utf8') }
      : {}),
  };
}

/** An owner API request (the test plays the owner; TLS verified against the printed certificate). */
function owner(
  s: Serve,
  method: string,
  path: string,
  body?: unknown,
  type = 'application/json',
): Promise<{ status: number; json: { sha256?: string } & Record<string, unknown> }> {
  const payload =
    body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const url = new URL(path, s.url);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${s.ownerToken}`,
          ...(payload ? { 'content-type': type, 'content-length': String(payload.length) } : {}),
        },
        ...(s.ca ? { ca: s.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function registerVm(s: Serve, id: string, body: Record<string, unknown>): Promise<void> {
  const up = await owner(s, 'PUT', '/v1/artifacts', fs.readFileSync(FIRMWARE), 'application/octet-stream');
  expect(up.status).toBe(200);
  const r = await owner(s, 'PUT', `/v1/vm/${id}`, {
    name: id,
    'firmware-artifact': up.json.sha256,
    approval: 'auto',
    secrets: [{ type: 'luks-passphrase', passphrase: `passphrase of ${id}` }],
    ...body,
  });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
}

/** A realistic domain XML as `virsh dumpxml` prints it, written straight into the stand-in's state. */
function defineDomain(
  name: string,
  o: { loader?: string; vcpus?: number; direct?: boolean; launchSecurity?: string } = {},
): string {
  const xml = `<domain type='kvm'>
  <name>${name}</name>
  <uuid>0b7a8f3e-4c1d-4e2a-9f60-${toHex(createHash('sha256').update(name).digest()).slice(0, 12)}</uuid>
  <!-- owner: ops &amp; friends -->
  <description><![CDATA[SEV guest <${name}>]]></description>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement="static">${o.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='rom' stateless='yes'>${o.loader ?? FIRMWARE}</loader>
${o.direct ? `    <kernel>${KERNEL}</kernel>\n    <initrd>${INITRD}</initrd>\n    <cmdline>${CMDLINE}</cmdline>\n` : ''}  </os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' iommu='on'/>
      <source file='/var/lib/libvirt/images/${name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' port='-1' autoport='yes' passwd='vnc&amp;secret'/>
    <memballoon model='none'/>
  </devices>
${o.launchSecurity ?? ''}</domain>
`;
  fs.writeFileSync(join(stateDir, 'domains', `${name}.xml`), xml);
  return xml;
}

function hostEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${fakeBin}:${process.env.PATH}`,
    FAKE_VIRSH_STATE: stateDir,
    FAKE_VIRSH_BUNDLE: bundle,
    XDG_CACHE_HOME: join(tmp, 'cache'),
    SEV_ATTEST_HOST_TOKEN: '',
  };
}

/** Runs sev-attest-host in process (its virsh is the stand-in, found on PATH). */
async function host(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runHostCli(argv, {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: hostEnv(),
    cwd: tmp,
  });
  return { code, out, err };
}

const pin = () => ['--service', tlsServe.url, '--pin-sha256', tlsServe.fingerprint!];
const runState = (name: string) =>
  JSON.parse(fs.readFileSync(join(stateDir, 'domains', `${name}.json`), 'utf8')) as {
    state: string;
    history: string[];
  };
const received = (name: string) => {
  const f = join(stateDir, 'received', `${name}.json`);
  return fs.existsSync(f)
    ? (JSON.parse(fs.readFileSync(f, 'utf8')) as {
        fileModes: number[];
        entries: { guid: string; data: string }[];
      }[])
    : [];
};
const passphraseOf = (name: string) => {
  const e = received(name)
    .flatMap((r) => r.entries)
    .find((x) => x.guid === LUKS_PASSPHRASE_GUID);
  return e ? Buffer.from(fromBase64(e.data)).toString('utf8').replace(/\0$/, '') : undefined;
};
const calls = () =>
  fs
    .readFileSync(join(stateDir, 'calls.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as string[]);

/** The domain's temporary directory (where the edited XML and secret files lived) is gone after this run. */
function expectTempFilesGone(callsBefore: number): void {
  const mine = calls().slice(callsBefore);
  const define = mine.find((c) => c[0] === 'define');
  expect(define, 'this run defined the domain from a temporary file').toBeDefined();
  expect(fs.existsSync(define![1]!)).toBe(false);
  expect(fs.existsSync(dirname(define![1]!))).toBe(false);
  for (const inject of mine.filter((c) => c[0] === 'domsetlaunchsecstate')) {
    expect(fs.existsSync(inject[3]!)).toBe(false);
    expect(fs.existsSync(inject[5]!)).toBe(false);
  }
}

/** The defined XML differs from the original only inside <launchSecurity>. */
function expectOnlyLaunchSecurityChanged(before: string, name: string): void {
  const after = fs.readFileSync(join(stateDir, 'domains', `${name}.xml`), 'utf8');
  const a = parseDomainXml(after).launchSecurity!;
  const b = parseDomainXml(before).launchSecurity;
  if (b) {
    expect(after.slice(0, b.start)).toBe(before.slice(0, b.start));
    expect(after.slice(a.end)).toBe(before.slice(b.end));
    return;
  }
  // Inserted on its own line before </domain>.
  const lineStart = before.lastIndexOf('\n', before.lastIndexOf('</domain>')) + 1;
  expect(after.slice(0, lineStart)).toBe(before.slice(0, lineStart));
  expect(after.slice(a.end)).toBe('\n' + before.slice(lineStart));
}

beforeAll(async () => {
  const build = spawnSync(process.execPath, ['scripts/build-cli.mjs'], { cwd: ROOT, encoding: 'utf8' });
  expect(build.status, build.stderr).toBe(0);
  bundle = join(tmp, 'fake-virsh.cjs');
  buildSync({
    entryPoints: [join(ROOT, 'test/host/fake-virsh/fake-virsh.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
  });
  platform = SimulatedSevPlatform.create({ generation: 'naples', seed: 'host-e2e' });
  fs.writeFileSync(join(tmp, 'sim-ask-ark.cert'), platform.askArk);
  initFakeVirshState(stateDir, platform, { cpuSignature: MILAN, vmsaVariant: 'kvm-init2' });

  kds = http.createServer((req, res) => {
    kdsHits.push(req.url ?? '');
    if (req.url === `/cek/id/${toHex(platform.chipId).toUpperCase()}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from(platform.signedCek));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => kds.listen(0, '127.0.0.1', r));
  kdsUrl = `http://127.0.0.1:${(kds.address() as AddressInfo).port}`;

  // TLS listener whose key server is unreachable: the host must bring the CEK (--kds-url).
  tlsServe = await startServe(['--tls', '--kds-url', 'http://127.0.0.1:9'], 'serve-tls');
  // Plain listener (as through an SSH tunnel) that fetches the CEK itself from the stand-in KDS.
  kdsServe = await startServe(['--kds-url', kdsUrl], 'serve-kds');

  for (const s of [tlsServe, kdsServe]) {
    await registerVm(s, 'plain', { scheme: 'amd-sev', policy: 0x1 });
    await registerVm(s, 'direct', {
      scheme: 'amd-sev',
      policy: 0x3,
      'kernel-hash': sha256(KERNEL),
      'initrd-hash': sha256(INITRD),
      cmdline: CMDLINE,
    });
    await registerVm(s, 'es', {
      scheme: 'amd-sev-es',
      policy: 0x5,
      'cpu-count': 4,
      'cpu-signature': MILAN,
      'vmsa-variant': 'kvm-init2',
    });
  }
}, 120_000);

afterAll(async () => {
  for (const s of [tlsServe, kdsServe]) s?.proc.kill('SIGTERM');
  await new Promise((r) => kds?.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('sev-attest-host launch against a real sev-attest serve', () => {
  it('SEV: pinned TLS, CEK from the key server on the host, the passphrase reaches the guest', async () => {
    const xml = defineDomain('plain');
    const r = await host('launch', '--domain', 'plain', '--vm-id', 'plain', ...pin(), '--kds-url', kdsUrl);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^launched plain connection [0-9a-f-]{36}$/m);
    expect(passphraseOf('plain')).toBe('passphrase of plain');
    expect(runState('plain')).toEqual({
      state: 'running',
      history: ['start --paused', 'domsetlaunchsecstate', 'resume'],
    });
    expectOnlyLaunchSecurityChanged(xml, 'plain');
    const after = fs.readFileSync(join(stateDir, 'domains', 'plain.xml'), 'utf8');
    expect(after).toContain("passwd='vnc&amp;secret'"); // dumpxml --security-info kept it
    expect(after).toMatch(/<policy>0x0001<\/policy>/);
    expect(after).toMatch(/<cbitpos>47<\/cbitpos>/);
    // The secret files were 0600 while virsh read them, and are gone now.
    expect(received('plain')[0]!.fileModes).toEqual([0o600, 0o600]);
    const inject = calls().find((c) => c[0] === 'domsetlaunchsecstate')!;
    expect(inject.slice(0, 2)).toEqual(['domsetlaunchsecstate', 'plain']);
    expect(fs.existsSync(inject[3]!)).toBe(false);
    expect(fs.existsSync(inject[5]!)).toBe(false);
    expect(calls().some((c) => c.join(' ') === 'dumpxml --inactive --security-info plain')).toBe(true);
  });

  it('SEV measured direct boot (kernelHashes, AmdSev OVMF with hashes table and secret area)', async () => {
    const xml = defineDomain('direct', {
      direct: true,
      launchSecurity: "  <launchSecurity type='sev' kernelHashes='yes'/>\n",
    });
    const r = await host('launch', '--domain', 'direct', '--vm-id', 'direct', ...pin(), '--kds-url', kdsUrl);
    expect(r.code, r.err).toBe(0);
    expect(passphraseOf('direct')).toBe('passphrase of direct');
    expectOnlyLaunchSecurityChanged(xml, 'direct');
    expect(fs.readFileSync(join(stateDir, 'domains', 'direct.xml'), 'utf8')).toContain(
      "<launchSecurity type='sev' kernelHashes='yes'>",
    );
  });

  it('SEV-ES with 4 vCPUs (one VMSA each), through the built sev-attest-host binary', async () => {
    defineDomain('es', { vcpus: 4 });
    const p = spawnSync(
      process.execPath,
      [
        join(ROOT, 'dist/sev-attest-host.mjs'),
        'launch',
        '--domain',
        'es',
        '--vm-id',
        'es',
        ...pin(),
        '--kds-url',
        kdsUrl,
      ],
      { env: hostEnv(), encoding: 'utf8', timeout: 60_000 },
    );
    expect(p.status, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/policy 0x0005/);
    expect(passphraseOf('es')).toBe('passphrase of es');
    expect(runState('es').state).toBe('running');
  });

  it('wrong firmware on the host: validate refused (6), the VM is destroyed, no secret reaches it', async () => {
    const bad = join(tmp, 'OVMF.tampered.fd');
    const fw = Buffer.from(fs.readFileSync(FIRMWARE));
    fw.writeUInt8(fw.readUInt8(100) ^ 0x01, 100);
    fs.writeFileSync(bad, fw);
    defineDomain('plain', { loader: bad });
    fs.rmSync(join(stateDir, 'domains', 'plain.json'));
    fs.rmSync(join(stateDir, 'received', 'plain.json'));
    const before = calls().length;
    const r = await host('launch', '--domain', 'plain', '--vm-id', 'plain', ...pin(), '--kds-url', kdsUrl);
    expect(r.code).toBe(6);
    expect(r.err).toMatch(/measurement-mismatch/);
    expectTempFilesGone(before);
    expect(runState('plain')).toEqual({ state: 'shut off', history: ['start --paused', 'destroy'] });
    expect(received('plain')).toEqual([]);

    // --keep-paused-on-failure leaves it paused instead.
    fs.rmSync(join(stateDir, 'domains', 'plain.json'));
    const k = await host(
      'launch',
      '--domain',
      'plain',
      '--vm-id',
      'plain',
      ...pin(),
      '--kds-url',
      kdsUrl,
      '--keep-paused-on-failure',
    );
    expect(k.code).toBe(6);
    expect(runState('plain').state).toBe('paused');
    expect(received('plain')).toEqual([]);
  });

  it('the service fetches the CEK itself from the stand-in KDS when the host sends none', async () => {
    defineDomain('plain');
    fs.rmSync(join(stateDir, 'domains', 'plain.json'), { force: true });
    const before = kdsHits.length;
    const r = await host('launch', '--domain', 'plain', '--vm-id', 'plain', '--service', kdsServe.url);
    expect(r.code, r.err).toBe(0);
    expect(passphraseOf('plain')).toBe('passphrase of plain');
    expect(kdsHits.length).toBe(before + 1);
  });

  it('without a CEK and a service that cannot fetch one: launch refused (4), the domain never starts', async () => {
    defineDomain('plain');
    fs.rmSync(join(stateDir, 'domains', 'plain.json'), { force: true });
    const r = await host('launch', '--domain', 'plain', '--vm-id', 'plain', ...pin());
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/kds-unavailable|chain-not-trusted/);
    expect(fs.existsSync(join(stateDir, 'domains', 'plain.json'))).toBe(false);
  });

  it('a wrong certificate pin: refused before any request (4)', async () => {
    defineDomain('plain');
    const r = await host(
      'launch',
      '--domain',
      'plain',
      '--vm-id',
      'plain',
      '--service',
      tlsServe.url,
      '--pin-sha256',
      'AB'.repeat(32),
      '--kds-url',
      kdsUrl,
    );
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/does not match --pin-sha256/);
  });

  it('exit codes: injection failed (7) and resume failed (8) destroy the domain; unreachable libvirt (3); usage (2)', async () => {
    for (const [cmd, code] of [
      ['domsetlaunchsecstate', 7],
      ['resume', 8],
    ] as const) {
      defineDomain('plain');
      fs.rmSync(join(stateDir, 'domains', 'plain.json'), { force: true });
      fs.writeFileSync(join(stateDir, `fail-${cmd}`), `internal error: injected ${cmd} failure`);
      const before = calls().length;
      const r = await host('launch', '--domain', 'plain', '--vm-id', 'plain', ...pin(), '--kds-url', kdsUrl);
      expect(r.code, r.err).toBe(code);
      expect(r.err).toContain(`injected ${cmd} failure`);
      expectTempFilesGone(before);
      expect(runState('plain').state).toBe('shut off');
      expect(runState('plain').history.at(-1)).toBe('destroy');
    }
    // start --paused refused (5): nothing runs, the temporary files are gone all the same.
    defineDomain('plain');
    fs.rmSync(join(stateDir, 'domains', 'plain.json'), { force: true });
    fs.writeFileSync(join(stateDir, 'fail-start'), 'error: injected start failure');
    const beforeStart = calls().length;
    const s = await host('launch', '--domain', 'plain', '--vm-id', 'plain', ...pin(), '--kds-url', kdsUrl);
    expect(s.code, s.err).toBe(5);
    expect(s.err).toContain('injected start failure');
    expectTempFilesGone(beforeStart);
    const u = await host(
      'launch',
      '--domain',
      'plain',
      '--vm-id',
      'plain',
      ...pin(),
      '--connect',
      'qemu:///unreachable',
    );
    expect(u.code).toBe(3);
    expect(u.err).toMatch(/failed to connect to the hypervisor/);
    expect((await host('launch', '--service', tlsServe.url)).code).toBe(2);
    const missing = await host('launch', '--domain', 'nosuch', ...pin());
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no domain 'nosuch'/);
    const running = await host('launch', '--domain', 'es', '--vm-id', 'es', ...pin());
    expect(running.code).toBe(5);
    expect(running.err).toMatch(/is running/);
    expect(runState('es').state).toBe('running'); // not ours to destroy
  });

  it('manual approval: the host waits through 202 + Retry-After until the owner approves; --max-wait bounds it', async () => {
    await registerVm(kdsServe, 'manual', { scheme: 'amd-sev', policy: 0x1, approval: 'manual' });
    defineDomain('manual');
    const timedOut = await host(
      'launch',
      '--domain',
      'manual',
      '--vm-id',
      'manual',
      '--service',
      kdsServe.url,
      '--max-wait',
      '0',
    );
    expect(timedOut.code).toBe(4);
    expect(timedOut.err).toMatch(/did not decide within 0 s/);
    expect(fs.existsSync(join(stateDir, 'domains', 'manual.json'))).toBe(false);

    let liveErr = '';
    const run = runHostCli(['launch', '--domain', 'manual', '--vm-id', 'manual', '--service', kdsServe.url], {
      out: () => {},
      err: (t) => (liveErr += t),
      env: hostEnv(),
      cwd: tmp,
    });
    // Approve only once the host is visibly waiting (the first run's pending approval is the same one).
    for (let i = 0; i < 100 && !/waiting for the owner's approval/.test(liveErr); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const list = await owner(kdsServe, 'GET', '/v1/approvals');
    const pending = (list.json.approvals as { id: string; state: string; 'vm-id'?: string }[]).find(
      (a) => a.state === 'pending' && a['vm-id'] === 'manual',
    );
    expect(pending).toBeDefined();
    expect(
      (await owner(kdsServe, 'POST', `/v1/approvals/${pending!.id}`, { decision: 'approve' })).status,
    ).toBe(200);
    expect(await run, liveErr).toBe(0);
    expect(liveErr).toMatch(/waiting for the owner's approval/);
    expect(passphraseOf('manual')).toBe('passphrase of manual');
  }, 60_000);

  it('--dry-run prints the plan and runs nothing; info decodes nodesevinfo', async () => {
    const n = calls().length;
    const d = await host(
      'launch',
      '--domain',
      'plain',
      '--vm-id',
      'plain',
      '--connect',
      'qemu:///system',
      ...pin(),
      '--dry-run',
    );
    expect(d.code).toBe(0);
    expect(d.out).toContain('virsh -c qemu:///system start --paused plain');
    expect(d.out).toContain(`POST ${tlsServe.url}/v1/vm/plain/launch`);
    expect(calls().length).toBe(n);
    const i = await host('info');
    expect(i.code, i.err).toBe(0);
    expect(i.out).toContain(`chip-id           ${toHex(platform.chipId)}`);
    expect(i.out).toMatch(/cek-signed +no/);
    expect(i.out).toMatch(/api-version +1\.51/);
  });
});
