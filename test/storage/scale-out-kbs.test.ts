/**
 * SEV-SNP guests against serve --database replicas on real PostgreSQL: the simulated guest (app/sim)
 * sends /auth, /attest and /resource each to another replica, a manual approval is decided on a fourth,
 * the single-use attest holds across replicas, a session row's sealed value moved to another row does not
 * open, the session cap is counted in the database, and every replica signs tokens with the same key.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KbsTokenIssuer } from '../../app/kbs/jwt';
import { secretAccount, VmProfileSchema } from '../../app/profile';
import { SnpKdsClient } from '../../app/snp/kds';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware } from '../../app/sim/snp-firmware';
import type { SnpKdsStandIn } from '../../app/sim/snp-kds-stand-in';
import { SnpGuestClient, type SnpGuestClientOptions } from '../../app/sim/snp-guest';
import { startService, type RunningService } from '../../server/serve/serve';
import { Database } from '../../server/storage/pg/database';
import { kbsTokenKeyFrom, parseServiceKey } from '../../server/storage/pg/service-key';
import { OWNER_TOKEN, request } from '../helpers/http';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

const M_WEB = sha384('web image');
const M_DB = sha384('db image');
const HOST_WEB = new Uint8Array(32).fill(0xa1);
const HOST_DB = new Uint8Array(32).fill(0xb2);
const GUID_WEB = '3f1b6e2a-9c4d-4e5f-8a7b-1c2d3e4f5a6b';
const GUID_DB = '7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d';
const VALUE_WEB = `web disk key ${randomBytes(8).toString('hex')}`;
const VALUE_DB = `db disk key ${randomBytes(8).toString('hex')}`;
const MAX_PER_CLIENT = 40;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let cluster: PgCluster;
let url: string;
let keyText: string;
let keyFile: string;
let db: Database;
let fw: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };
const replicas: RunningService[] = [];
const dirs: string[] = [];
const clients: SnpGuestClient[] = [];

function tmp(prefix: string): string {
  const d = fs.mkdtempSync(join(os.tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function startReplica(): Promise<RunningService> {
  const s = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir: tmp('kbs-replica-'),
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    audit: { aggregateWindowMs: 0 },
    kdsUrl: kds.url,
    database: { url, serviceKeyFile: keyFile },
    kbs: {
      keys: new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, timeoutMs: 5000 }),
      trust: fw.trustStore(),
      approvalWaitSeconds: 30,
      maxSessionsPerClient: MAX_PER_CLIENT,
    },
  });
  replicas.push(s);
  return s;
}

const profile = (
  id: string,
  approval: string,
  m: Uint8Array,
  host: Uint8Array,
  guid: string,
  resource: string,
) =>
  VmProfileSchema.parse({
    id,
    name: `SNP ${id}`,
    scheme: 'amd-sev-snp',
    policy: Number(DEFAULT_SNP_POLICY),
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: [hex(m)] },
    approval,
    secrets: [{ guid, kind: 'luks-passphrase', resource }],
    snp: { hostData: hex(host), minimumTcb: { ...fw.tcb } },
  });

beforeAll(async () => {
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  keyText = randomBytes(32).toString('base64');
  keyFile = join(tmp('kbs-key-'), 'service.key');
  fs.writeFileSync(keyFile, keyText + '\n', { mode: 0o600 });
  db = new Database({ url });
  fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  kds = await fw.kdsStandIn();
  for (let i = 0; i < 4; i++) await startReplica();
  const [a] = replicas;
  a!.profiles.put(profile('web', 'auto', M_WEB, HOST_WEB, GUID_WEB, 'default/key/web'));
  a!.profiles.put(profile('db', 'manual', M_DB, HOST_DB, GUID_DB, 'default/key/db'));
  await a!.profiles.flushed();
  await a!.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
  await a!.secretStore.set(secretAccount('db', GUID_DB), Buffer.from(VALUE_DB));
  // Every replica sees the profiles (NOTIFY) before a guest comes.
  for (const r of replicas) {
    for (let i = 0; i < 200 && !(r.profiles.get('web') && r.profiles.get('db')); i++) {
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(r.profiles.get('db')).toBeDefined();
  }
}, 120_000);

afterAll(async () => {
  clients.forEach((c) => c.close());
  for (const r of replicas) await r.close().catch(() => {});
  await db?.close();
  await kds?.stop();
  await cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A guest whose auth goes to replica 0, attest to 1, resource to 2 (unless told otherwise). */
function guest(
  launch: { measurement: Uint8Array; hostData: Uint8Array },
  steps: { auth: number; attest: number; resource: number } = { auth: 0, attest: 1, resource: 2 },
  opts: Partial<SnpGuestClientOptions> = {},
): SnpGuestClient {
  const g = fw.launch({ ...launch, policy: DEFAULT_SNP_POLICY });
  const c = new SnpGuestClient({
    baseUrl: replicas[steps.auth]!.url,
    baseUrlFor: (step) => replicas[steps[step]]!.url,
    guest: g,
    handshakeAttempts: 1,
    // A 401 would re-handshake: one attempt makes a lost session a failure here.
    resourceAttempts: 1,
    ...opts,
  });
  clients.push(c);
  return c;
}

const releases = (s: RunningService) => s.audit.list().filter((e) => e.type === 'secret-release');
const cookieRowId = (c: SnpGuestClient) =>
  createHash('sha256')
    .update(/kbs-session-id=([^;]+)/.exec(c.jar.header() ?? '')![1]!, 'utf8')
    .digest('hex');

async function pendingApproval(s: RunningService, vmId: string): Promise<{ id: string }> {
  for (let i = 0; i < 500; i++) {
    const r = await request(s.url, 'GET', '/v1/approvals');
    const a = (r.json.approvals as { id: string; 'vm-id'?: string; state: string }[]).find(
      (x) => x['vm-id'] === vmId && x.state === 'pending',
    );
    if (a) return a;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`no pending approval for ${vmId} on ${s.url}`);
}

describe('the audit list and stream with serve --database', () => {
  it("each replica's /v1/events lists and streams every replica's events", async () => {
    // A live stream on replica 3, then a guest served by replicas 0, 1 and 2.
    const streamed: string[] = [];
    const target = new URL('/v1/events?types=secret-release', replicas[3]!.url);
    const req = http.get(target, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${OWNER_TOKEN}` },
    });
    const status = await new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => streamed.push(d));
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    expect(status).toBe(200);
    const c = guest({ measurement: M_WEB, hostData: HOST_WEB });
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    const releasedBy2 = releases(replicas[2]!).at(-1)!;
    for (let i = 0; i < 200 && !streamed.join('').includes('secret-release'); i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    req.destroy();
    expect(streamed.join('')).toContain(releasedBy2.message);
    // The list: replica 3 (which served nothing of it) shows replica 0's session opening, replica 1's
    // attestation and replica 2's release.
    const list = await request(replicas[3]!.url, 'GET', '/v1/events');
    expect(list.status).toBe(200);
    const events = list.json.events as Array<{
      type: string;
      result: string;
      reason?: string;
      message: string;
    }>;
    expect(events.some((e) => e.message === releasedBy2.message && e.type === 'secret-release')).toBe(true);
    expect(events.some((e) => e.type === 'snp-attest' && e.result === 'ok')).toBe(true);
    expect(events.some((e) => e.reason === 'session-opened')).toBe(true);
    expect(replicas[3]!.audit.list().some((e) => e.type === 'secret-release')).toBe(false);
  });
});

describe('KBS sessions shared by serve --database replicas', () => {
  it('auth on one replica, attest on a second, resource on a third', async () => {
    const c = guest({ measurement: M_WEB, hostData: HOST_WEB });
    const before = releases(replicas[2]!).length;
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    // Released by the third replica, audited there and on the shared chain.
    expect(releases(replicas[2]!).length).toBe(before + 1);
    const r = await db.query<{ state: string; sealed: Buffer }>(
      'SELECT state, sealed FROM kbs_sessions WHERE id = $1',
      [cookieRowId(c)],
    );
    expect(r.rows[0]?.state).toBe('attested');
    // Nothing of the session in clear: not the nonce, not the guest's key, not the profile id.
    const sealed = r.rows[0]!.sealed.toString('latin1');
    expect(sealed).not.toContain(c.lastNonce!);
    expect(sealed).not.toContain('"web"');
    // A second resource on the fourth replica with the same cookie, no new handshake.
    const again = guestOnSameCookie(c, 3);
    expect((await again.fetchResourceOnce('default/key/web')).status).toBe(200);
  });

  it('every replica signs tokens with the key derived from the service key', async () => {
    const verifier = new KbsTokenIssuer({ key: kbsTokenKeyFrom(parseServiceKey(keyText, 'test')) });
    for (const attest of [1, 2, 3]) {
      const c = guest({ measurement: M_WEB, hostData: HOST_WEB }, { auth: 0, attest, resource: 0 });
      const t = await c.handshake();
      expect(verifier.verify(t.token)['profile-id']).toBe('web');
    }
  });

  it('a session attests once across replicas: the same attest on three replicas at once gives one token', async () => {
    const c = guest({ measurement: M_WEB, hostData: HOST_WEB });
    const { nonce, extraParams } = await c.auth();
    const body = c.buildAttestBody(nonce, extraParams);
    const cookie = c.jar.header()!;
    const answers = await Promise.all(
      [1, 2, 3].map((i) =>
        guestOnSameCookie(c, i)
          .request('POST', '/kbs/v0/attest', body, { cookie })
          .then((r) => ({ status: r.status, json: JSON.parse(r.text) as Record<string, unknown> })),
      ),
    );
    const ok = answers.filter((a) => a.status === 200);
    expect(ok).toHaveLength(1);
    expect(typeof ok[0]!.json.token).toBe('string');
    for (const a of answers.filter((x) => x.status !== 200)) {
      expect(a.status).toBe(401);
      expect(a.json.type).toMatch(/AttestationError$/);
      expect(String(a.json.detail)).toMatch(/attests once/);
    }
  });

  it('manual approval: attest waits on one replica, the owner approves on a fourth, resource on a third', async () => {
    const c = guest({ measurement: M_DB, hostData: HOST_DB });
    const pending = c.getResource('default/key/db');
    // The owner's UI on replica 3 lists the request made on replica 1 and decides it there.
    const approval = await pendingApproval(replicas[3]!, 'db');
    const d = await request(replicas[3]!.url, 'POST', `/v1/approvals/${approval.id}`, {
      body: { decision: 'approve' },
    });
    expect(d.status, d.text).toBe(200);
    expect(Buffer.from(await pending).toString()).toBe(VALUE_DB);
  }, 60_000);

  it('manual approval denied on another replica: the waiting attest gets 401 denied, nothing released', async () => {
    const launch = { measurement: M_DB, hostData: HOST_DB };
    const c = guest(launch, { auth: 2, attest: 0, resource: 1 });
    const before = releases(replicas[1]!).length;
    const pending = c.handshake().then(
      () => undefined,
      (e: unknown) => e,
    );
    const approval = await pendingApproval(replicas[3]!, 'db');
    const d = await request(replicas[3]!.url, 'POST', `/v1/approvals/${approval.id}`, {
      body: { decision: 'deny' },
    });
    expect(d.status, d.text).toBe(200);
    const e = (await pending) as { status?: number; detail?: string };
    expect(e.status).toBe(401);
    expect(e.detail).toMatch(/denied/);
    expect(releases(replicas[1]!).length).toBe(before);
  }, 60_000);

  it("a session's sealed row moved to another session's id does not open: 401, nothing released", async () => {
    const x = guest({ measurement: M_WEB, hostData: HOST_WEB });
    const y = guest({ measurement: M_WEB, hostData: HOST_WEB });
    await x.handshake();
    await y.handshake();
    // Someone with write access to the database gives y's row x's sealed session.
    const moved = await db.query(
      `UPDATE kbs_sessions SET sealed = (SELECT sealed FROM kbs_sessions WHERE id = $1) WHERE id = $2`,
      [cookieRowId(x), cookieRowId(y)],
    );
    expect(moved.rowCount).toBe(1);
    const before = releases(replicas[2]!).length;
    const r = await y.fetchResourceOnce('default/key/web');
    expect(r.status).toBe(401);
    expect(r.error?.detail).toMatch(/unknown or expired KBS session/);
    expect(releases(replicas[2]!).length).toBe(before);
    const refusal = replicas[2]!.audit
      .list()
      .find((e) => e.type === 'snp-attest' && e.reason === 'session-undecryptable');
    expect(refusal?.message).toMatch(/does not open/);
    // x's own session is untouched.
    expect((await x.fetchResourceOnce('default/key/web')).status).toBe(200);
  });

  it('the per-client cap is counted in the database: auths spread over replicas stop at the cap', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < MAX_PER_CLIENT + 4; i++) {
      const c = guest({ measurement: M_WEB, hostData: HOST_WEB }, { auth: i % 4, attest: 0, resource: 0 });
      statuses.push(
        await c.auth().then(
          () => 200,
          (e: { status?: number }) => e.status ?? 0,
        ),
      );
    }
    expect(statuses).toContain(429);
    const open = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM kbs_sessions WHERE state <> 'spent' AND expires_at > now()`,
    );
    expect(open.rows[0]!.n).toBe(MAX_PER_CLIENT);
  });
});

describe('settings with serve --database', () => {
  it('a deployment-wide setting changed on one replica is read by the others; per-replica ones stay local', async () => {
    const [a, b, c] = replicas;
    const before = b!.settings.get();
    a!.settings.update({
      kbsApprovalWaitSeconds: 7,
      approvalTimeoutSeconds: 333,
      listener: { allowedHosts: ['only-a.example'] },
    });
    for (let i = 0; i < 200 && b!.settings.get().kbsApprovalWaitSeconds !== 7; i++) {
      await new Promise((res) => setTimeout(res, 10));
    }
    for (const r of [b!, c!]) {
      expect(r.settings.get().kbsApprovalWaitSeconds).toBe(7);
      expect(r.settings.get().approvalTimeoutSeconds).toBe(333);
      expect(r.settings.get().listener.allowedHosts).toEqual(before.listener.allowedHosts);
    }
    const row = await db.query<{ value: Record<string, unknown> }>(
      `SELECT value FROM kv_store WHERE store = 'settings' AND key = 'settings'`,
    );
    expect(row.rows[0]!.value.kbsApprovalWaitSeconds).toBe(7);
    expect(row.rows[0]!.value.listener).toBeUndefined();
    expect(a!.settings.get().listener.allowedHosts).toEqual(['only-a.example']);
  });
});

/** A second client holding the same cookie and key, pointed at one replica (the same guest's next request). */
function guestOnSameCookie(c: SnpGuestClient, replica: number): SnpGuestClient {
  const proxy = Object.create(c) as SnpGuestClient;
  Object.defineProperty(proxy, 'opts', {
    value: {
      ...(c as unknown as { opts: SnpGuestClientOptions }).opts,
      baseUrlFor: () => replicas[replica]!.url,
    },
  });
  return proxy;
}
