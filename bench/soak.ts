/**
 * `npm run bench soak`: 60 s against the built CLI's `serve` (a child process, so it can be killed -9):
 * honest simulated hosts (launch + validate with the host token, app/sim), anonymous floods from 16
 * loopback addresses, a "compromised host" flood (the host token, refused launches from 16 addresses,
 * which reach the audit log and are aggregated), silent sockets that send half a request and never read,
 * and a kill -9 + restart in the middle. Prints: honest round trips and their p99, refused requests,
 * the service's descriptors at the end vs the start, audit events kept (main log and retained stream),
 * and secrets released twice for one connection (must be 0; counted from the audit log).
 *
 * Traffic only to 127.0.0.1, from 127.0.0.0/8 source addresses; every loop is bounded in time.
 * Needs the built CLI (npm run build:cli). BENCH_SECONDS overrides the 60 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { fromBase64, toBase64 } from '../app/sev/bytes';
import { SimulatedSevPlatform } from '../app/sim/platform';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const HONEST = 4;
const FLOOD_ADDRESSES = 16;
const OWNER = 'soak-owner-token-0123456789abcdef-0123456789';
const HOST = 'soak-host-token-0123456789abcdef-0123456789';
const FIRMWARE = new Uint8Array(
  fs.readFileSync(join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin')),
);
const CLI = resolve(
  (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { bin: Record<string, string> }).bin['sev-attest']!,
);

interface Reply {
  status: number;
  json: Record<string, string>;
}

function call(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string; localAddress?: string; raw?: Buffer; type?: string } = {},
): Promise<Reply> {
  const data = opts.raw ?? (body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
  return new Promise((resolveReply, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        agent: false,
        localAddress: opts.localAddress,
        timeout: 15_000,
        headers: {
          ...(data
            ? { 'content-type': opts.type ?? 'application/json', 'content-length': String(data.length) }
            : {}),
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json = {};
          try {
            json = text ? (JSON.parse(text) as object) : {};
          } catch {
            // not JSON
          }
          resolveReply({ status: res.statusCode ?? 0, json: json as Record<string, string> });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

function fds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

async function startServe(dataDir: string, askArk: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      dataDir,
      '--trust-ca',
      askArk,
      '--secret-store',
      'memory',
    ],
    {
      env: { ...process.env, SEV_ATTEST_OWNER_TOKEN: OWNER, SEV_ATTEST_HOST_TOKEN: HOST },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 20_000;
  while (!/^trust /m.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

async function registerVm(port: number): Promise<void> {
  const up = await call(port, 'PUT', '/v1/artifacts', undefined, {
    token: OWNER,
    raw: Buffer.from(FIRMWARE),
    type: 'application/octet-stream',
  });
  if (up.status !== 200) throw new Error(`artifact upload: ${up.status}`);
  const r = await call(
    port,
    'PUT',
    '/v1/vm/soak',
    {
      name: 'soak',
      scheme: 'amd-sev',
      policy: 1,
      'firmware-artifact': up.json.sha256,
      approval: 'auto',
      secrets: [{ type: 'luks-passphrase', passphrase: 'soak secret' }],
    },
    { token: OWNER },
  );
  if (r.status !== 200) throw new Error(`registering the VM: ${r.status} ${JSON.stringify(r.json)}`);
}

type Ev = { seq: number; type: string; result?: string; connection?: string };

function readEvents(file: string): Ev[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Ev];
      } catch {
        return [];
      }
    });
}

async function main(): Promise<void> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build:cli first`);
  const dataDir = fs.mkdtempSync(join(os.tmpdir(), 'sev-soak-'));
  const platform = SimulatedSevPlatform.create({ generation: 'naples', seed: 'soak' });
  const askArk = join(dataDir, 'ask-ark.cert');
  fs.writeFileSync(askArk, platform.askArk);
  const port = await freePort();
  let child = await startServe(dataDir, askArk, port);
  await registerVm(port);
  await new Promise((r) => setTimeout(r, 300));
  const fdsStart = fds(child.pid!);
  const end = Date.now() + SECONDS * 1000;
  let restarting: Promise<void> | undefined;

  const launchBody = {
    pdh: toBase64(platform.pdh),
    'cert-chain': toBase64(platform.certChain),
    cek: toBase64(platform.signedCek),
    policy: 1,
  };
  const lat: number[] = [];
  let honestErrors = 0;
  let honestRetries = 0;
  /** Why honest round trips failed (status and code, or the socket error), for the figures. */
  const honestFailures = new Map<string, number>();
  const honest = async () => {
    while (Date.now() < end) {
      const t = performance.now();
      try {
        await restarting;
        const l = await call(port, 'POST', '/v1/vm/soak/launch', launchBody, { token: HOST });
        if (l.status === 429) {
          honestRetries++;
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        if (l.status !== 200) throw new Error(`launch ${l.status} ${l.json?.error ?? ''}`);
        const guest = platform.launchStart({
          policy: 1,
          ownerCert: fromBase64(l.json['owner-cert']!),
          session: fromBase64(l.json.session!),
        });
        guest.launchUpdateData(FIRMWARE);
        // A 429 is answered before the connection is touched: a host waits Retry-After and sends it again.
        const measurement = toBase64(guest.launchMeasure());
        const validate = () =>
          call(
            port,
            'POST',
            `/v1/connections/${l.json.connection}/validate`,
            {
              'api-major': platform.apiMajor,
              'api-minor': platform.apiMinor,
              'build-id': platform.build,
              policy: 1,
              measurement,
            },
            { token: HOST },
          );
        let v = await validate();
        for (let i = 0; v.status === 429 && i < 5; i++) {
          honestRetries++;
          await new Promise((r) => setTimeout(r, 1000));
          v = await validate();
        }
        if (v.status !== 200) throw new Error(`validate ${v.status} ${v.json?.error ?? ''}`);
        guest.launchSecret({
          header: fromBase64(v.json['secret-header']!),
          payload: fromBase64(v.json['secret-table']!),
        });
        lat.push(performance.now() - t);
      } catch (e) {
        honestErrors++;
        const why = e instanceof Error ? e.message : String(e);
        honestFailures.set(why, (honestFailures.get(why) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  let refused = 0;
  let floodSent = 0;
  const flood = async (i: number) => {
    const localAddress = `127.30.${i + 1}.1`;
    while (Date.now() < end) {
      try {
        // Anonymous (401/429), then a "compromised host" with the token launching a VM that does not exist.
        const anon = await call(port, 'POST', '/v1/vm/soak/launch', launchBody, { localAddress });
        const bad = await call(port, 'POST', '/v1/vm/nope/launch', launchBody, { localAddress, token: HOST });
        floodSent += 2;
        if (anon.status >= 400) refused++;
        if (bad.status >= 400) refused++;
        if (anon.status === 429 || bad.status === 429) await new Promise((r) => setTimeout(r, 20));
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const silent: net.Socket[] = [];
  const silentLoop = async () => {
    for (let round = 0; Date.now() < end; round++) {
      for (let k = 0; k < 20; k++) {
        const s = net.connect({
          host: '127.0.0.1',
          port,
          localAddress: `127.40.${round % 200}.${k + 1}`,
          allowHalfOpen: true,
        });
        s.on('error', () => {});
        s.on('connect', () => {
          s.write('POST /v1/launch HTTP/1.1\r\nHost: 127.0.0.1\r\n');
          s.pause();
        });
        silent.push(s);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  };

  const killer = (async () => {
    await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
    let done!: () => void;
    restarting = new Promise((r) => (done = r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    child = await startServe(dataDir, askArk, port);
    // The memory secret store starts empty: the owner registers the VM's secret again.
    await registerVm(port);
    done();
    restarting = undefined;
  })();

  await Promise.all([
    ...Array.from({ length: HONEST }, honest),
    ...Array.from({ length: FLOOD_ADDRESSES }, (_, i) => flood(i)),
    silentLoop(),
    killer,
  ]);
  const fdsAtEnd = fds(child.pid!);
  for (const s of silent) s.destroy();
  // Silent sockets opened in the last seconds are still within the 10 s header timeout: let it pass.
  await new Promise((r) => setTimeout(r, 11_000));
  const fdsSettled = fds(child.pid!);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));

  const mainLog = readEvents(join(dataDir, 'audit.log'));
  const retainedDir = join(dataDir, 'audit-retained');
  const retained = fs
    .readdirSync(retainedDir)
    .flatMap((f) => readEvents(join(retainedDir, f)))
    .sort((a, b) => a.seq - b.seq);
  const releases = new Map<string, number>();
  for (const e of retained)
    if (e.type === 'secret-release' && e.connection)
      releases.set(e.connection, (releases.get(e.connection) ?? 0) + 1);
  const twice = [...releases.values()].filter((n) => n > 1).length;
  const launchRefusedEvents = mainLog.filter((e) => e.type === 'launch' && e.result === 'refused').length;
  lat.sort((a, b) => a - b);
  const p = (q: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!.toFixed(1) : 'n/a';
  console.log(
    `soak: ${SECONDS} s, ${os.cpus().length} CPUs, node ${process.version}, kill -9 + restart at ${SECONDS / 2} s`,
  );
  console.log(
    `honest round trips completed   ${lat.length} (p50 ${p(0.5)} ms, p99 ${p(0.99)} ms; ${honestErrors} failed, ${honestRetries} told to retry)`,
  );
  console.log(
    `honest failures by cause         ${[...honestFailures].map(([k, n]) => `${k}: ${n}`).join('; ') || 'none'}`,
  );
  console.log(
    `flood requests refused         ${refused} of ${floodSent} (16 addresses, anonymous + host-token bad launches)`,
  );
  console.log(`silent sockets opened          ${silent.length}`);
  console.log(
    `service fds                    start ${fdsStart}, end ${fdsAtEnd} (after restart), after 11 s ${fdsSettled}`,
  );
  console.log(
    `audit events kept              main log ${mainLog.length} (refused-launch events ${launchRefusedEvents}, aggregated per client+reason per 10 s), retained stream ${retained.length} (${releases.size} releases)`,
  );
  console.log(`secrets released twice         ${twice}`);
  fs.rmSync(dataDir, { recursive: true, force: true });
  if (twice > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
