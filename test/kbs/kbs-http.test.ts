/**
 * The SEV-SNP attestation service through real HTTP (docs/api.md "SEV-SNP guests"): a headless service on
 * 127.0.0.1:0, a key-server stand-in for VCEKs and CRLs, and a minimal in-test guest (node:http with its
 * own cookie jar; Node's fetch is not used because it always sends Sec-Fetch-Mode, which the listener
 * refuses as a browser request). Reports are signed by test roots (test/helpers/snp-pki.ts) and sent in
 * virtee/sev's JSON form, as guest-components sends them.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';
import { decodeJwt, flattenedDecrypt, importJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kbsReportData } from '../../app/kbs/runtime-data';
import { secretAccount, VmProfileSchema } from '../../app/profile';
import { SnpKdsClient } from '../../app/snp/kds';
import { OFF } from '../../app/snp/report';
import { SnpTrustStore } from '../../app/snp/roots';
import { decodeTcb, type TcbParts } from '../../app/snp/tcb';
import { startService, type RunningService, type ServeOptions } from '../../server/serve/serve';
import { InMemorySecretStore } from '../../server/services/secret-store';
import { OWNER_TOKEN } from '../helpers/http';
import {
  chipId,
  makeCrl,
  makeKey,
  makeReport,
  makeTestRoots,
  type ReportSpec,
  type TestRoots,
} from '../helpers/snp-pki';

const TCB: TcbParts = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const CHIP = chipId(11);
const MEAS = Buffer.alloc(48, 0x3c);
const HOST_WEB = 'a1'.repeat(32);
const HOST_DB = 'b2'.repeat(32);
const GUID_WEB = '11111111-2222-4333-8444-555555555555';
const GUID_DB = '66666666-7777-4888-8999-aaaaaaaaaaaa';
const VALUE_WEB = 'web disk passphrase';
const ERR = 'https://github.com/confidential-containers/kbs/errors/';

// --- the key-server stand-in ------------------------------------------------------------------------------
let roots: TestRoots;
let vcek: { der: Buffer; key: KeyObject };
let vlek: { der: Buffer; key: KeyObject };
let kds: http.Server;
let kdsUrl: string;
const kdsRequests: string[] = [];
let crlDown = false;

// --- the services -----------------------------------------------------------------------------------------
const dirs: string[] = [];
const running: RunningService[] = [];

async function serve(
  extra: Partial<ServeOptions['kbs']> = {},
  more: Partial<ServeOptions> = {},
): Promise<RunningService> {
  const dataDir = fs.mkdtempSync(join(os.tmpdir(), 'kbs-http-'));
  dirs.push(dataDir);
  const svc = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    secretStore: new InMemorySecretStore(),
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    kbs: {
      keys: new SnpKdsClient({ baseUrl: kdsUrl, maxAttempts: 1, timeoutMs: 2000 }),
      trust: SnpTrustStore.of([roots.set]),
      approvalWaitSeconds: 3,
      maxSessionsPerClient: 12,
      ...extra,
    },
    ...more,
  });
  running.push(svc);
  svc.profiles.put(profileBody('web', 'auto', HOST_WEB, GUID_WEB, 'default/key/web'));
  svc.profiles.put(profileBody('db', 'manual', HOST_DB, GUID_DB, 'default/key/db'));
  await svc.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
  await svc.secretStore.set(secretAccount('db', GUID_DB), Buffer.from('db passphrase'));
  return svc;
}

function profileBody(id: string, approval: string, hostData: string, guid: string, resource: string) {
  return VmProfileSchema.parse({
    id,
    name: id,
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1],
    firmware: { kind: 'digests', launchDigests: [MEAS.toString('hex')] },
    approval,
    secrets: [{ guid, kind: 'raw', resource }],
    snp: { hostData },
  });
}

let svc: RunningService;

beforeAll(async () => {
  roots = makeTestRoots('Milan', 'kbs-http');
  vcek = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
  vlek = makeKey(roots, 'vlek', { product: 'Milan', tcb: TCB });
  const crl = makeCrl(roots);
  const hwid = Buffer.from(CHIP).toString('hex');
  kds = http.createServer((req, res) => {
    kdsRequests.push(req.url ?? '');
    if (req.url === `/vcek/v1/Milan/${hwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' });
      res.end(vcek.der);
    } else if (req.url === '/vcek/v1/Milan/crl' && !crlDown) {
      res.writeHead(200, { 'content-type': 'application/pkix-crl' });
      res.end(crl);
    } else if (req.url === '/vcek/v1/Milan/crl') {
      res.writeHead(503);
      res.end('down');
    } else {
      res.writeHead(404);
      res.end('not found');
    }
  });
  await new Promise<void>((r) => kds.listen(0, '127.0.0.1', r));
  kdsUrl = `http://127.0.0.1:${(kds.address() as AddressInfo).port}`;
  svc = await serve();
});

afterAll(async () => {
  for (const s of running) await s.close();
  kds.closeAllConnections();
  await new Promise((r) => kds.close(r));
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// --- the in-test guest ------------------------------------------------------------------------------------
interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** virtee/sev's JSON form of a Milan report (what guest-components sends), from its bytes. */
function reportJson(b: Uint8Array): Record<string, unknown> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const arr = (off: number, len: number) => Array.from(b.subarray(off, off + len));
  const tcb = (off: number) => ({ fmc: null, ...decodeTcb(b.subarray(off, off + 8), 'Milan') });
  const u64 = (off: number) => Number(dv.getBigUint64(off, true));
  const ver = (off: number) => ({ major: b[off + 2], minor: b[off + 1], build: b[off] });
  return {
    version: dv.getUint32(OFF.version, true),
    guest_svn: dv.getUint32(OFF.guestSvn, true),
    policy: u64(OFF.policy),
    family_id: arr(OFF.familyId, 16),
    image_id: arr(OFF.imageId, 16),
    vmpl: dv.getUint32(OFF.vmpl, true),
    sig_algo: dv.getUint32(OFF.signatureAlgo, true),
    current_tcb: tcb(OFF.currentTcb),
    plat_info: u64(OFF.platformInfo),
    key_info: dv.getUint32(OFF.signerInfo, true),
    report_data: arr(OFF.reportData, 64),
    measurement: arr(OFF.measurement, 48),
    host_data: arr(OFF.hostData, 32),
    id_key_digest: arr(OFF.idKeyDigest, 48),
    author_key_digest: arr(OFF.authorKeyDigest, 48),
    report_id: arr(OFF.reportId, 32),
    report_id_ma: arr(OFF.reportIdMa, 32),
    reported_tcb: tcb(OFF.reportedTcb),
    cpuid_fam_id: b[OFF.cpuidFamily],
    cpuid_mod_id: b[OFF.cpuidModel],
    cpuid_step: b[OFF.cpuidStepping],
    chip_id: arr(OFF.chipId, 64),
    committed_tcb: tcb(OFF.committedTcb),
    current: ver(OFF.currentBuild),
    committed: ver(OFF.committedBuild),
    launch_tcb: tcb(OFF.launchTcb),
    launch_mit_vector: null,
    current_mit_vector: null,
    signature: { r: arr(OFF.signatureR, 72), s: arr(OFF.signatureS, 72) },
  };
}

/** A guest: its key pair and its cookie jar (kbs-session-id only, as reqwest's store would keep it). */
class Guest {
  cookie: string | undefined;
  setCookie: string | undefined;
  readonly key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly jwk: Record<string, unknown>;
  nonce = '';

  constructor(private readonly base: () => string) {
    const { kty, crv, x, y } = this.key.publicKey.export({ format: 'jwk' });
    this.jwk = { kty, crv, alg: 'ECDH-ES+A256KW', x, y };
  }

  call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const url = new URL(path, this.base());
    const payload =
      body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h: Record<string, string> = { ...headers };
    if (payload) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = String(payload.length);
    }
    if (this.cookie !== undefined) h.cookie = `kbs-session-id=${this.cookie}`;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method, headers: h },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const sc = res.headers['set-cookie']?.find((c) => c.startsWith('kbs-session-id='));
            if (sc) {
              this.setCookie = sc;
              this.cookie = /^kbs-session-id=([^;]*)/.exec(sc)![1];
            }
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async auth(): Promise<Reply> {
    const r = await this.call('POST', '/kbs/v0/auth', {
      version: '0.4.0',
      tee: 'snp',
      'extra-params': { 'supported-hash-algorithms': ['sha384'] },
    });
    if (r.status === 200) this.nonce = r.json.nonce;
    return r;
  }

  /** The attest body for a report with the given fields (report_data bound to nonce and key by default). */
  attestBody(
    o: {
      spec?: Partial<ReportSpec>;
      nonce?: string;
      tamper?: (b: Uint8Array) => void;
      certChain?: boolean;
      /** Sign with the VLEK (and put it in cert_chain unless certChain is false). */
      vlek?: boolean;
    } = {},
  ): Record<string, unknown> {
    const nonce = o.nonce ?? this.nonce;
    const bytes = makeReport(
      {
        product: 'Milan',
        tcb: TCB,
        chipId: CHIP,
        measurement: MEAS,
        hostData: Buffer.from(HOST_WEB, 'hex'),
        reportData: kbsReportData(nonce, this.jwk, ''),
        ...(o.vlek ? { signer: 'vlek' as const } : {}),
        ...o.spec,
      },
      o.vlek ? vlek.key : vcek.key,
    );
    const entry = o.vlek
      ? { cert_type: 'VLEK', data: Array.from(vlek.der) }
      : { cert_type: 'VCEK', data: Array.from(vcek.der) };
    const withChain = o.certChain ?? o.vlek === true;
    o.tamper?.(bytes);
    return {
      'runtime-data': { nonce, 'tee-pubkey': this.jwk },
      'tee-evidence': {
        primary_evidence: {
          attestation_report: reportJson(bytes),
          cert_chain: withChain ? [{ cert_type: 'ARK', data: Array.from(roots.ark.der) }, entry] : null,
        },
        additional_evidence: '',
      },
    };
  }

  attest(o: Parameters<Guest['attestBody']>[0] = {}): Promise<Reply> {
    return this.call('POST', '/kbs/v0/attest', this.attestBody(o));
  }

  resource(path: string): Promise<Reply> {
    return this.call('GET', `/kbs/v0/resource/${path}`);
  }

  async open(jwe: Record<string, string>): Promise<string> {
    const key = await importJWK({ ...this.key.privateKey.export({ format: 'jwk' }), alg: 'ECDH-ES+A256KW' });
    const out = await flattenedDecrypt(jwe as unknown as Parameters<typeof flattenedDecrypt>[0], key);
    return new TextDecoder().decode(out.plaintext);
  }
}

const guest = (s: RunningService = svc) => new Guest(() => s.url);
const dbSpec = { hostData: Buffer.from(HOST_DB, 'hex') };

function kbsError(r: Reply, status: number, kind: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.json.type).toBe(`${ERR}${kind}`);
  expect(typeof r.json.detail).toBe('string');
  expect(Object.keys(r.json).sort()).toEqual(['detail', 'type']);
  expect(r.text).not.toMatch(/ at .*\.ts|Error:/);
}

async function waitForPending(s: RunningService, vmId: string) {
  for (let i = 0; i < 200; i++) {
    const a = s.approvals
      .list()
      .find((x) => x.kind === 'snp-attest' && x.vmId === vmId && x.state === 'pending');
    if (a) return a;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no pending snp-attest approval');
}

// --- the tests --------------------------------------------------------------------------------------------
describe('the full flow', () => {
  it('auth, attest (auto approval, VCEK from the key server), resource decrypted with the guest key', async () => {
    const g = guest();
    const a = await g.auth();
    expect(a.status, a.text).toBe(200);
    expect(Object.keys(a.json).sort()).toEqual(['extra-params', 'nonce']);
    expect(a.json['extra-params']).toBe('');
    expect(Buffer.from(a.json.nonce, 'base64')).toHaveLength(32);
    expect(g.cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(g.setCookie).toMatch(/; Path=\/kbs;/);
    expect(g.setCookie).toMatch(/; HttpOnly/);
    expect(g.setCookie).toMatch(/; SameSite=Strict/);
    expect(g.setCookie).not.toMatch(/Secure/);

    kdsRequests.length = 0;
    const t = await g.attest();
    expect(t.status, t.text).toBe(200);
    expect(Object.keys(t.json)).toEqual(['token']);
    const claims = decodeJwt(t.json.token);
    expect(claims.exp! - claims.nbf!).toBeGreaterThan(0);
    expect(claims).toMatchObject({ tee: 'snp', 'profile-id': 'web', measurement: MEAS.toString('hex') });
    expect(claims['tee-pubkey']).toEqual(g.jwk);
    expect(kdsRequests.some((u) => u.startsWith('/vcek/v1/Milan/'))).toBe(true);
    expect(kdsRequests).toContain('/vcek/v1/Milan/crl');

    const r = await g.resource('default/key/web');
    expect(r.status, r.text).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag']);
    expect(await g.open(r.json)).toBe(VALUE_WEB);
    // Again within the token's life: a session reads its resources as often as it likes.
    expect(await g.open((await g.resource('default/key/web')).json)).toBe(VALUE_WEB);

    const events = svc.audit.list();
    const release = events.filter((e) => e.type === 'secret-release' && e.vmId === 'web');
    expect(release.length).toBeGreaterThanOrEqual(2);
    expect(release[0]!.details).toMatchObject({ resource: 'default/key/web' });
    expect(JSON.stringify(events)).not.toContain(VALUE_WEB);
    const ok = events.find((e) => e.type === 'snp-attest' && e.result === 'ok' && e.vmId === 'web');
    expect(ok?.chipId).toBe(Buffer.from(CHIP).toString('hex'));
  });

  it('a VCEK in the evidence cert_chain is used without the key server', async () => {
    const g = guest();
    await g.auth();
    kdsRequests.length = 0;
    const t = await g.attest({ certChain: true });
    expect(t.status, t.text).toBe(200);
    expect(kdsRequests.filter((u) => u.includes('/vcek/v1/Milan/') && !u.endsWith('/crl'))).toEqual([]);
  });
});

describe('VLEK-signed reports', () => {
  it('verify with the VLEK from cert_chain; without it they are refused (a VLEK is never on the key server)', async () => {
    const s = await serve();
    const g = guest(s);
    await g.auth();
    const t = await g.attest({ vlek: true });
    expect(t.status, t.text).toBe(200);
    expect(await g.open((await g.resource('default/key/web')).json)).toBe(VALUE_WEB);
    await g.auth();
    kbsError(await g.attest({ vlek: true, certChain: false }), 401, 'AttestationError');
    const last = s.audit
      .list()
      .filter((e) => e.type === 'snp-attest' && e.result === 'refused')
      .pop()!;
    expect(last.message).toMatch(/signed by a VLEK and the evidence carries none/);
  });
});

describe('manual approval at attest', () => {
  it('approved while the attest waits: token', async () => {
    const g = guest();
    await g.auth();
    const pending = g.attest({ spec: dbSpec });
    const a = await waitForPending(svc, 'db');
    expect(a.snp).toMatchObject({ product: 'Milan', measurement: MEAS.toString('hex'), signer: 'vcek' });
    expect(a.snp?.resources).toEqual(['default/key/db']);
    svc.approvals.decide(a.id, 'approve');
    const t = await pending;
    expect(t.status, t.text).toBe(200);
    expect(decodeJwt(t.json.token)['profile-id']).toBe('db');
    expect(await g.open((await g.resource('default/key/db')).json)).toBe('db passphrase');
  });

  it("the wait may outlast the listener's whole-request timeout (it bounds receiving, not answering)", async () => {
    const dataDir = fs.mkdtempSync(join(os.tmpdir(), 'kbs-http-'));
    dirs.push(dataDir);
    const s = await startService({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      secretStore: new InMemorySecretStore(),
      ownerToken: OWNER_TOKEN,
      rateLimit: false,
      limits: { requestTimeoutMs: 600, headersTimeoutMs: 400 },
      kbs: {
        keys: new SnpKdsClient({ baseUrl: kdsUrl, maxAttempts: 1, timeoutMs: 2000 }),
        trust: SnpTrustStore.of([roots.set]),
        approvalWaitSeconds: 5,
      },
    });
    running.push(s);
    s.profiles.put(profileBody('db', 'manual', HOST_DB, GUID_DB, 'default/key/db'));
    const g = guest(s);
    await g.auth();
    const pending = g.attest({ spec: dbSpec });
    const a = await waitForPending(s, 'db');
    await new Promise((r) => setTimeout(r, 1500));
    s.approvals.decide(a.id, 'approve');
    const t = await pending;
    expect(t.status, t.text).toBe(200);
  });

  it('a guest that hangs up while waiting ends the wait (the approval stays for the owner)', async () => {
    const s = await serve({ approvalWaitSeconds: 30 });
    const g = guest(s);
    await g.auth();
    const body = JSON.stringify(g.attestBody({ spec: dbSpec }));
    const url = new URL('/kbs/v0/attest', s.url);
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-length': String(body.length),
        cookie: `kbs-session-id=${g.cookie!}`,
      },
    });
    req.on('error', () => {});
    req.end(body);
    const a = await waitForPending(s, 'db');
    req.destroy();
    let gone;
    for (let i = 0; i < 100 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 20));
      gone = s.audit.list().find((e) => e.reason === 'approval-pending');
    }
    expect(gone?.message).toMatch(/hung up/);
    expect(s.approvals.get(a.id)?.state).toBe('pending');
  });

  it('denied while the attest waits: 401; the next identical attest is refused at once', async () => {
    const g = guest(await serve());
    await g.auth();
    const s = running[running.length - 1]!;
    const pending = g.attest({ spec: dbSpec });
    const a = await waitForPending(s, 'db');
    s.approvals.decide(a.id, 'deny');
    const t = await pending;
    kbsError(t, 401, 'AttestationError');
    expect(t.json.detail).toBe('the owner denied this attestation');
    await g.auth();
    const again = await g.attest({ spec: dbSpec });
    kbsError(again, 401, 'AttestationError');
    expect(again.json.detail).toBe('the owner denied this attestation');
  });

  it('not decided within the wait: 401 "try again"; a retry with a new session joins the same approval', async () => {
    const s = await serve({ approvalWaitSeconds: 1 });
    const g = guest(s);
    await g.auth();
    const t = await g.attest({ spec: dbSpec });
    kbsError(t, 401, 'AttestationError');
    expect(t.json.detail).toBe('the owner has not decided; try again');
    const first = await waitForPending(s, 'db');
    await g.auth();
    const retry = g.attest({ spec: dbSpec });
    await new Promise((r) => setTimeout(r, 100));
    expect(s.approvals.list().filter((x) => x.kind === 'snp-attest' && x.state === 'pending')).toHaveLength(
      1,
    );
    s.approvals.decide(first.id, 'approve');
    expect((await retry).status).toBe(200);
  });
});

describe('refusals', () => {
  it('wrong nonce', async () => {
    const g = guest();
    await g.auth();
    const other = randomBytes(32).toString('base64');
    kbsError(await g.attest({ nonce: other }), 401, 'AttestationError');
  });

  it('report_data bound to another key', async () => {
    const s = await serve();
    const g = guest(s);
    await g.auth();
    const body = g.attestBody();
    const stranger = guest(s);
    (body['runtime-data'] as Record<string, unknown>)['tee-pubkey'] = stranger.jwk;
    const r = await g.call('POST', '/kbs/v0/attest', body);
    kbsError(r, 401, 'AttestationError');
    expect(r.json.detail).toBe('the owner does not accept this guest');
    const ev = s.audit.list().filter((e) => e.type === 'snp-attest' && e.reason === 'not-accepted');
    const rules = JSON.stringify(ev[ev.length - 1]!.details);
    expect(rules).toContain('"rule":"report_data"');
  });

  it('tampered report (a measured byte changed after signing)', async () => {
    const g = guest();
    await g.auth();
    const r = await g.attest({ tamper: (b) => (b[OFF.hostData + 1]! ^= 1) });
    kbsError(r, 401, 'AttestationError');
    expect(r.json.detail).toBe('the attestation report did not verify');
  });

  it("a VCEK of another chip in cert_chain: its hwid is not the report's chip id", async () => {
    const other = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: chipId(12) });
    // A service of its own: refusals are aggregated per client and reason, so the first must be this one.
    const s = await serve();
    const g = guest(s);
    await g.auth();
    const body = g.attestBody({ certChain: true });
    const ev = (body['tee-evidence'] as { primary_evidence: { cert_chain: unknown[] } }).primary_evidence;
    ev.cert_chain = [{ cert_type: 'VCEK', data: Array.from(other.der) }];
    kbsError(await g.call('POST', '/kbs/v0/attest', body), 401, 'AttestationError');
    const last = s.audit
      .list()
      .filter((e) => e.type === 'snp-attest' && e.result === 'refused')
      .pop()!;
    expect(last.details?.coreCode).toBe('hwid-mismatch');
  });

  it('a guest no profile accepts (measurement) and one two profiles accept (ambiguous)', async () => {
    const g = guest();
    await g.auth();
    kbsError(await g.attest({ spec: { measurement: Buffer.alloc(48, 1) } }), 401, 'AttestationError');
    const s = await serve();
    s.profiles.put(profileBody('web2', 'auto', HOST_WEB, GUID_WEB, 'default/key/web'));
    const h = guest(s);
    await h.auth();
    const r = await h.attest();
    kbsError(r, 401, 'AttestationError');
    const last = s.audit
      .list()
      .filter((e) => e.type === 'snp-attest' && e.result === 'refused')
      .pop()!;
    expect(last.message).toMatch(/ambiguous|2 profiles/);
  });

  it('no session cookie, a foreign cookie, an expired session', async () => {
    const g = guest();
    await g.auth();
    const body = g.attestBody();
    g.cookie = undefined;
    kbsError(await g.call('POST', '/kbs/v0/attest', body), 401, 'AttestationError');
    kbsError(await g.resource('default/key/web'), 401, 'TokenNotFound');
    g.cookie = randomBytes(32).toString('base64url');
    kbsError(await g.call('POST', '/kbs/v0/attest', body), 401, 'AttestationError');
    kbsError(await g.resource('default/key/web'), 401, 'TokenNotFound');

    const s = await serve({ challengeTtlSeconds: 1 });
    const e = guest(s);
    await e.auth();
    const late = e.attestBody();
    await new Promise((r) => setTimeout(r, 1100));
    const r = await e.call('POST', '/kbs/v0/attest', late);
    kbsError(r, 401, 'AttestationError');
    expect(r.json.detail).toMatch(/expired|unknown/);
  });

  it('a second attest on one session is refused, even with a fresh report', async () => {
    const g = guest();
    await g.auth();
    expect((await g.attest()).status).toBe(200);
    const r = await g.attest();
    kbsError(r, 401, 'AttestationError');
    expect(r.json.detail).toMatch(/already attested/);
    // A failed attest spends the session too.
    await g.auth();
    kbsError(await g.attest({ nonce: 'x' }), 401, 'AttestationError');
    kbsError(await g.attest(), 401, 'AttestationError');
  });

  it('a session that has not attested reads no resource', async () => {
    const g = guest();
    await g.auth();
    kbsError(await g.resource('default/key/web'), 401, 'TokenNotFound');
  });

  it("a resource the profile does not hold (another profile's, or none) is a policy deny", async () => {
    const g = guest();
    await g.auth();
    expect((await g.attest()).status).toBe(200);
    kbsError(await g.resource('default/key/db'), 403, 'PolicyDeny');
    kbsError(await g.resource('default/key/nothing'), 403, 'PolicyDeny');
    const denied = svc.audit.list().filter((e) => e.reason === 'resource-not-allowed');
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.every((e) => e.type === 'snp-attest')).toBe(true);
  });

  it('the profile changed after the attestation: 401 (the guest re-attests)', async () => {
    const s = await serve();
    const g = guest(s);
    await g.auth();
    expect((await g.attest()).status).toBe(200);
    s.profiles.put(profileBody('web', 'auto', HOST_WEB, GUID_WEB, 'default/key/web'));
    kbsError(await g.resource('default/key/web'), 401, 'TokenVerifierError');
  });

  it('the CRL unreachable: refused, unless the owner allows a missing CRL', async () => {
    const s = await serve();
    crlDown = true;
    try {
      const g = guest(s);
      await g.auth();
      const r = await g.attest();
      kbsError(r, 401, 'AttestationError');
      s.settings.update({ snpAllowMissingCrl: true });
      await g.auth();
      const ok = await g.attest();
      expect(ok.status, ok.text).toBe(200);
      const ev = s.audit
        .list()
        .filter((e) => e.type === 'snp-attest' && e.result === 'ok')
        .pop()!;
      expect(String(ev.details?.revocation)).toMatch(/^not checked/);
    } finally {
      crlDown = false;
    }
  });

  it('a value missing from the secret store: 503, nothing released', async () => {
    const s = await serve();
    await s.secretStore.delete(secretAccount('web', GUID_WEB));
    const g = guest(s);
    await g.auth();
    expect((await g.attest()).status).toBe(200);
    const r = await g.resource('default/key/web');
    kbsError(r, 503, 'ServiceUnavailable');
    expect(r.headers['retry-after']).toBe('30');
    expect(s.audit.list().filter((e) => e.type === 'secret-release')).toEqual([]);
  });

  it('the audit log at its retained budget: releases refused (503), every release before is retained', async () => {
    const s = await serve();
    await s.close();
    running.pop();
    const full = await startService({
      host: '127.0.0.1',
      port: 0,
      dataDir: s.dataDir,
      secretStore: new InMemorySecretStore(),
      ownerToken: OWNER_TOKEN,
      rateLimit: false,
      audit: { retainedBudgetBytes: 6000, segmentBytes: 2048 },
      kbs: {
        keys: new SnpKdsClient({ baseUrl: kdsUrl, maxAttempts: 1, timeoutMs: 2000 }),
        trust: SnpTrustStore.of([roots.set]),
      },
    });
    running.push(full);
    await full.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
    const g = guest(full);
    await g.auth();
    expect((await g.attest()).status).toBe(200);
    let released = 0;
    let refused: Reply | undefined;
    for (let i = 0; i < 60 && !refused; i++) {
      const r = await g.resource('default/key/web');
      if (r.status === 200) released++;
      else refused = r;
    }
    expect(released).toBeGreaterThan(2);
    kbsError(refused!, 503, 'ServiceUnavailable');
    expect(refused!.json.detail).toMatch(/audit log/);
    const retained = full.audit.list().filter((e) => e.type === 'secret-release');
    expect(retained).toHaveLength(released);
  });

  it('an /auth flood is capped per client group: 429 with Retry-After, refusals aggregated in the audit', async () => {
    const s = await serve({ maxSessionsPerClient: 5 });
    const g = guest(s);
    for (let i = 0; i < 5; i++) expect((await g.auth()).status).toBe(200);
    const replies = await Promise.all(Array.from({ length: 20 }, () => g.auth()));
    for (const r of replies) {
      expect(r.status).toBe(429);
      expect(r.json.type).toBe(`${ERR}TooManyRequests`);
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(s.kbs.sessionCount).toBe(5);
    const refused = s.audit.list().filter((e) => e.type === 'snp-attest' && e.reason === 'rate-limited');
    expect(refused.length).toBeLessThan(5);
  });

  it('sessions opened by one client are audited once per window, then counted in one summary', async () => {
    const s = await serve({ maxSessionsPerClient: 100 }, { audit: { aggregateWindowMs: 400 } });
    const g = guest(s);
    for (let i = 0; i < 30; i++) expect((await g.auth()).status).toBe(200);
    const opened = () => s.audit.list().filter((e) => e.reason === 'session-opened');
    expect(opened()).toHaveLength(1);
    let summary;
    for (let i = 0; i < 100 && !summary; i++) {
      await new Promise((r) => setTimeout(r, 20));
      summary = opened().find((e) => e.details?.aggregated !== undefined);
    }
    expect(summary?.details?.aggregated).toBe(29);
    expect(summary?.result).toBe('info');
  });

  it('the session cap in all: 429 across client groups too', async () => {
    const s = await serve({ maxSessions: 3, maxSessionsPerClient: 10 });
    const g = guest(s);
    for (let i = 0; i < 3; i++) expect((await g.auth()).status).toBe(200);
    const r = await g.auth();
    kbsError(r, 429, 'TooManyRequests');
    // The oldest session expires in at most 5 minutes: that is when to come back.
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(290);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(300);
  });

  it('pending approvals are budgeted per client group: the fifth manual guest waiting is 429', async () => {
    const s = await serve();
    const hosts = ['c1', 'c2', 'c3', 'c4', 'c5'].map((id, i) => {
      const hd = (i + 1).toString(16).padStart(2, '0').repeat(32);
      s.profiles.put(profileBody(id, 'manual', hd, GUID_DB, `default/key/${id}`));
      return hd;
    });
    const guests = hosts.map(() => guest(s));
    for (const g of guests) await g.auth();
    const waiting = guests
      .slice(0, 4)
      .map((g, i) => g.attest({ spec: { hostData: Buffer.from(hosts[i]!, 'hex') } }));
    for (let i = 0; i < 200 && s.approvals.pendingCount < 4; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.approvals.pendingCount).toBe(4);
    const fifth = await guests[4]!.attest({ spec: { hostData: Buffer.from(hosts[4]!, 'hex') } });
    kbsError(fifth, 429, 'TooManyRequests');
    expect(fifth.headers['retry-after']).toBe('30');
    for (const a of s.approvals.list().filter((x) => x.state === 'pending'))
      s.approvals.decide(a.id, 'deny-once');
    for (const r of await Promise.all(waiting)) kbsError(r, 401, 'AttestationError');
  });

  it('over TLS the cookie is Secure', async () => {
    const s = await serve({}, { tls: true });
    const url = new URL('/kbs/v0/auth', s.url);
    expect(url.protocol).toBe('https:');
    const body = JSON.stringify({ version: '0.4.0', tee: 'snp', 'extra-params': {} });
    const cookie = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          rejectUnauthorized: false,
          headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
        },
        (res) => {
          res.resume();
          resolve(res.headers['set-cookie']?.[0] ?? '');
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(cookie).toMatch(
      /^kbs-session-id=[A-Za-z0-9_-]{43}; Path=\/kbs; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/,
    );
  });

  it('malformed bodies, wrong paths and methods answer in the Trustee shape', async () => {
    const g = guest();
    kbsError(await g.call('POST', '/kbs/v0/auth', '{"version": "0.4.0", '), 401, 'AttestationError');
    kbsError(
      await g.call('POST', '/kbs/v0/auth', { version: '0.4.0', tee: 'tdx', 'extra-params': {} }),
      401,
      'AttestationError',
    );
    kbsError(await g.call('GET', '/kbs/v0/auth'), 404, 'InvalidRequestPath');
    kbsError(await g.call('GET', '/kbs/v0/nothing/here'), 404, 'PluginNotFound');
    kbsError(await g.call('GET', '/kbs/v0/resource/a/b'), 404, 'InvalidRequestPath');
    kbsError(await g.call('GET', '/kbs/v0/resource/a/b/c%2Fd'), 404, 'InvalidRequestPath');
    const big = await g.call('POST', '/kbs/v0/attest', 'x'.repeat(70 * 1024));
    expect(big.status).toBe(413);
    expect(big.json.type).toBe(`${ERR}PayloadTooLarge`);
  });

  it('the listener answers a browser request itself, before the KBS route (its own error shape)', async () => {
    const g = guest();
    const r = await g.call(
      'POST',
      '/kbs/v0/auth',
      { version: '0.4.0', tee: 'snp', 'extra-params': {} },
      {
        'sec-fetch-mode': 'cors',
      },
    );
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ error: 'origin-not-allowed' });
  });
});
