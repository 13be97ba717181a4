/**
 * SEV-SNP guests against the real listener, with the simulated platform and guest of app/sim (written from
 * the documents, independent of the service's code): SimulatedSnpFirmware signs the reports, its key-server
 * stand-in serves the VCEKs and the CRL, SnpGuestClient speaks RCAR as guest-components does (cookie jar,
 * report_data over the RFC 8785 runtime data, the JSON report form, the JWE with the real client's AAD
 * rebuild). Every refusal goes through real HTTP and is checked to release nothing: no secret-release audit
 * event and no resource readable by the guest.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretAccount, VmProfileSchema } from '../../app/profile';
import { SnpKdsClient } from '../../app/snp/kds';
import {
  DEFAULT_SNP_POLICY,
  sha384,
  SimulatedSnpFirmware,
  type SnpLaunchOptions,
} from '../../app/sim/snp-firmware';
import type { SnpKdsStandIn } from '../../app/sim/snp-kds-stand-in';
import {
  KbsClientError,
  SnpGuestClient,
  type SnpGuestClientOptions,
  type TeeKeyAlgorithm,
} from '../../app/sim/snp-guest';
import { startService, type RunningService, type ServeOptions } from '../../server/serve/serve';
import { InMemorySecretStore } from '../../server/services/secret-store';
import { OWNER_TOKEN, request } from '../helpers/http';

const M_WEB = sha384('web image');
const M_DB = sha384('db image');
const HOST_WEB = new Uint8Array(32).fill(0xa1);
const HOST_DB = new Uint8Array(32).fill(0xb2);
const GUID_WEB = '3f1b6e2a-9c4d-4e5f-8a7b-1c2d3e4f5a6b';
const GUID_DB = '7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d';
const VALUE_WEB = `web disk key ${randomBytes(8).toString('hex')}`;
const VALUE_DB = `db disk key ${randomBytes(8).toString('hex')}`;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let fw: SimulatedSnpFirmware;
let kds: SnpKdsStandIn & { url: string };
let svc: RunningService;
const running: RunningService[] = [];
const dirs: string[] = [];
const clients: SnpGuestClient[] = [];

async function serve(kbs: Partial<NonNullable<ServeOptions['kbs']>> = {}): Promise<RunningService> {
  const dataDir = fs.mkdtempSync(join(os.tmpdir(), 'kbs-sim-'));
  dirs.push(dataDir);
  const s = await startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    secretStore: new InMemorySecretStore(),
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    // Every refusal logged on its own (the default coalesces a client's repeated refusals for 10 s).
    audit: { aggregateWindowMs: 0 },
    kdsUrl: kds.url,
    kbs: {
      keys: new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1, timeoutMs: 5000 }),
      trust: fw.trustStore(),
      approvalWaitSeconds: 20,
      ...kbs,
    },
  });
  running.push(s);
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
  s.profiles.put(profile('web', 'auto', M_WEB, HOST_WEB, GUID_WEB, 'default/key/web'));
  s.profiles.put(profile('db', 'manual', M_DB, HOST_DB, GUID_DB, 'default/key/db'));
  await s.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
  await s.secretStore.set(secretAccount('db', GUID_DB), Buffer.from(VALUE_DB));
  return s;
}

beforeAll(async () => {
  // RSA-2048 roots for test speed; the product's shape is otherwise AMD's (app/sim/snp-firmware.slow.test.ts).
  fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
  kds = await fw.kdsStandIn();
  svc = await serve();
});

afterAll(async () => {
  clients.forEach((c) => c.close());
  for (const s of running) await s.close();
  await kds.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A simulated guest launched as `web` (override any launch value) with its KBS client. */
function guest(
  launch: Partial<SnpLaunchOptions> = {},
  opts: Partial<SnpGuestClientOptions> = {},
  s: RunningService = svc,
): SnpGuestClient {
  const g = fw.launch({ measurement: M_WEB, policy: DEFAULT_SNP_POLICY, hostData: HOST_WEB, ...launch });
  const c = new SnpGuestClient({ baseUrl: s.url, guest: g, handshakeAttempts: 1, ...opts });
  clients.push(c);
  return c;
}

const releases = (s: RunningService = svc) => s.audit.list().filter((e) => e.type === 'secret-release');

/**
 * Runs a hostile attempt and checks the service released nothing: no new secret-release event, and the
 * guest's session reads no resource.
 */
async function refusedWithoutRelease(
  c: SnpGuestClient,
  attempt: () => Promise<unknown>,
  resource = 'default/key/web',
  s: RunningService = svc,
): Promise<KbsClientError> {
  const before = releases(s).length;
  const err = await attempt().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the attempt must be refused').toBeInstanceOf(KbsClientError);
  const r = await c.fetchResourceOnce(resource);
  expect(r.value).toBeUndefined();
  expect([401, 403]).toContain(r.status);
  expect(releases(s).length).toBe(before);
  return err as KbsClientError;
}

const lastSeq = (s: RunningService = svc) => s.audit.list().at(-1)?.seq ?? 0;

/**
 * The refused appraisal (an attest refusal naming each profile's failed rules) logged after `seq`. A
 * refusal is answered before its audit event is appended, so this waits for it (bounded).
 */
async function refusalAfter(seq: number, s: RunningService = svc) {
  for (let i = 0; i < 100; i++) {
    const e = s.audit
      .list()
      .find(
        (x) =>
          x.seq > seq &&
          x.type === 'snp-attest' &&
          x.result === 'refused' &&
          x.details?.profiles !== undefined,
      );
    if (e) return e;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `no refused appraisal logged after seq ${seq}: ${JSON.stringify(
      s.audit
        .list()
        .slice(-6)
        .map((e) => [e.seq, e.reason, (e.message ?? '').slice(0, 60)]),
    )}`,
  );
}

describe('the whole flow through the listener', () => {
  it.each(['ECDH-ES+A256KW-P256', 'ECDH-ES+A256KW-P521', 'RSA-OAEP-256'] as TeeKeyAlgorithm[])(
    '%s: auth, attest, resource; the secret decrypts to what the owner stored',
    async (keyAlgorithm) => {
      const c = guest({}, { keyAlgorithm });
      const before = releases().length;
      const value = await c.getResource('default/key/web');
      expect(Buffer.from(value).toString()).toBe(VALUE_WEB);
      const claims = c.token!.claims;
      expect(typeof claims.exp).toBe('number');
      expect(typeof claims.nbf).toBe('number');
      expect(c.tokenValid()).toBe(true);
      const rel = releases().slice(before);
      expect(rel).toHaveLength(1);
      expect(rel[0]).toMatchObject({ vmId: 'web', chipId: hex(fw.chipId) });
      expect(rel[0]!.details).toMatchObject({ resource: 'default/key/web' });
      expect(JSON.stringify(svc.audit.list())).not.toContain(VALUE_WEB);
    },
  );

  it('a guest sending init-data (TOML, as guest-components with an initdata file) is served the same', async () => {
    const c = guest({}, { initData: 'version = "0.1.0"\nalgorithm = "sha384"\n[data]\n' });
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    expect(JSON.parse(c.lastAttestBody!)['init-data']).toMatchObject({ format: 'toml' });
  });

  it('the host supplies ARK, ASK and VCEK with the report (cert_chain): accepted the same', async () => {
    const before = kds.requests.length;
    const c = guest({ hostCertificates: 'chain' });
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    const vcekFetches = kds.requests.slice(before).filter((q) => q.path.includes('?'));
    expect(vcekFetches).toEqual([]);
  });

  it('a version 5 report (mitigation vectors in its JSON form) is accepted; a version 2 one is refused by default', async () => {
    const v5 = guest({ reportVersion: 5 });
    expect(Buffer.from(await v5.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    expect(v5.lastEvidence?.jsonText).toContain('"launch_mit_vector":0');
    // Without its VCEK in the evidence a v2 report names no product (no CPUID): refused as evidence.
    const bare = guest({ reportVersion: 2 });
    await refusedWithoutRelease(bare, () => bare.handshakeWithRetries());
    // With it, the product is known and the profile's minimum report version (3) refuses it.
    const v2 = guest({ reportVersion: 2, hostCertificates: 'vcek' });
    const seq = lastSeq();
    await refusedWithoutRelease(v2, () => v2.handshakeWithRetries());
    expect(JSON.stringify((await refusalAfter(seq)).details)).toMatch(/"rule":"[^"]*version[^"]*"/);
  });

  it('the owner edits the profile after the attestation: 401, the guest re-handshakes as guest-components does', async () => {
    const s = await serve();
    const c = guest({}, {}, s);
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    const firstToken = c.token!.token;
    s.profiles.put({ ...s.profiles.get('web')!, name: 'SNP web (edited)' });
    const before = releases(s).length;
    expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    expect(c.token!.token).not.toBe(firstToken);
    expect(releases(s).length).toBe(before + 1);
  });

  it('the manual profile: the attest waits, the owner approves through the owner API, the secret is released', async () => {
    const c = guest({ measurement: M_DB, hostData: HOST_DB });
    const pending = c.getResource('default/key/db');
    const approval = await pendingApproval(svc, 'db');
    const d = await request(svc.url, 'POST', `/v1/approvals/${approval.id}`, {
      body: { decision: 'approve' },
    });
    expect(d.status, d.text).toBe(200);
    expect(Buffer.from(await pending).toString()).toBe(VALUE_DB);
  });
});

async function pendingApproval(s: RunningService, vmId: string): Promise<{ id: string }> {
  for (let i = 0; i < 300; i++) {
    const r = await request(s.url, 'GET', '/v1/approvals');
    const a = (r.json.approvals as { id: string; 'vm-id'?: string; state: string }[]).find(
      (x) => x['vm-id'] === vmId && x.state === 'pending',
    );
    if (a) return a;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`no pending approval for ${vmId}`);
}

describe('refused, nothing released', () => {
  it('a report with one bit flipped after signing', async () => {
    const c = guest(
      {},
      {
        hooks: {
          report: (raw) => {
            const b = Uint8Array.from(raw);
            b[0x90 + 17]! ^= 0x08; // one bit of the measurement
            return b;
          },
        },
      },
    );
    const err = await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(err).toMatchObject({ stage: 'attest', status: 401, kind: 'AttestationError' });
  });

  it('a report bound to another nonce', async () => {
    const c = guest({}, { hooks: { nonce: () => randomBytes(32).toString('base64') } });
    const err = await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(err).toMatchObject({ status: 401, kind: 'AttestationError' });
  });

  it('a report whose report_data is not the hash of the runtime data', async () => {
    const c = guest({}, { hooks: { reportData: () => new Uint8Array(randomBytes(64)) } });
    const seq = lastSeq();
    await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(JSON.stringify((await refusalAfter(seq)).details)).toContain('"rule":"report_data"');
  });

  it('replayed evidence: a valid attest body sent again on a new session', async () => {
    const victim = guest();
    await victim.handshake();
    const replayer = guest();
    await replayer.auth();
    await refusedWithoutRelease(replayer, () => replayer.attest(victim.lastAttestBody));
    // With the new session's nonce put in, report_data no longer matches the signed report.
    const again = guest();
    await again.auth();
    const text = victim.lastAttestBody!.replace(
      JSON.stringify(victim.lastNonce),
      JSON.stringify(again.lastNonce),
    );
    expect(text).toContain(again.lastNonce!);
    await refusedWithoutRelease(again, () => again.attest(text));
  });

  it('a measurement no profile allows', async () => {
    const c = guest({ measurement: sha384('some other image') });
    const seq = lastSeq();
    await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(JSON.stringify((await refusalAfter(seq)).details)).toContain('"rule":"measurement"');
  });

  it('a TCB below the profile minimum (the VCEK for that TCB from the key server)', async () => {
    const low = { ...fw.tcb, snp: fw.tcb.snp - 1 };
    const c = guest({ tcb: low });
    const seq = lastSeq();
    await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    const details = JSON.stringify((await refusalAfter(seq)).details);
    expect(details).toMatch(/"rule":"[^"]*tcb[^"]*"/i);
  });

  it('a debug policy', async () => {
    const c = guest({ policy: DEFAULT_SNP_POLICY | (1n << 19n) });
    const seq = lastSeq();
    await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(JSON.stringify((await refusalAfter(seq)).details)).toMatch(/"rule":"[^"]*(policy|debug)[^"]*"/);
  });

  it('a report from VMPL 2 (not the guest kernel)', async () => {
    const c = guest({}, { vmpl: 2 });
    const seq = lastSeq();
    await refusedWithoutRelease(c, () => c.handshakeWithRetries());
    expect(JSON.stringify((await refusalAfter(seq)).details)).toContain('"rule":"vmpl"');
  });

  it('an expired session cookie (the challenge outlived its time)', async () => {
    const s = await serve({ challengeTtlSeconds: 1 });
    let stale: string | undefined;
    const c = guest(
      {},
      {
        // Send the old cookie even after the jar dropped it (Max-Age): the service must refuse it itself.
        hooks: { cookie: (honest) => (stale ??= honest) },
      },
      s,
    );
    await c.auth();
    await new Promise((r) => setTimeout(r, 1300));
    const err = await refusedWithoutRelease(c, () => c.attest(), 'default/key/web', s);
    expect(err).toMatchObject({ status: 401 });
  });

  it('a forged cookie, and no cookie at all', async () => {
    const forged = guest(
      {},
      { hooks: { cookie: () => `kbs-session-id=${randomBytes(32).toString('base64url')}` } },
    );
    await forged.auth();
    await refusedWithoutRelease(forged, () => forged.attest());
    const none = guest({}, { hooks: { cookie: () => undefined } });
    await none.auth();
    await refusedWithoutRelease(none, () => none.attest());
  });

  it("another guest's cookie: what is sent is encrypted to that guest's key, unreadable by the cookie holder", async () => {
    const owner = guest();
    await owner.handshake();
    const sessionCookie = owner.jar.header()!;
    const thief = guest({}, { hooks: { cookie: () => sessionCookie } });
    // The session's resource is encrypted to the key the report bound, not to whoever holds the cookie.
    await expect(thief.fetchResourceOnce('default/key/web')).rejects.toMatchObject({
      stage: 'decrypt',
      detail: expect.stringMatching(/decryption failed/),
    });
    expect(Buffer.from((await owner.fetchResourceOnce('default/key/web')).value!).toString()).toBe(VALUE_WEB);
  });

  it('a resource the profile does not hold', async () => {
    const c = guest();
    await c.handshake();
    const before = releases().length;
    for (const path of ['default/key/db', 'default/key/nothing']) {
      const r = await c.fetchResourceOnce(path);
      expect(r.value).toBeUndefined();
      expect(r.error).toMatchObject({ status: 403, kind: 'PolicyDeny' });
    }
    expect(releases().length).toBe(before);
  });

  it('the owner denies through the owner API while the attest waits', async () => {
    const c = guest({ measurement: M_DB, hostData: HOST_DB });
    await c.auth();
    const before = releases().length;
    const pending = c.attest().catch((e: unknown) => e);
    const approval = await pendingApproval(svc, 'db');
    const d = await request(svc.url, 'POST', `/v1/approvals/${approval.id}`, { body: { decision: 'deny' } });
    expect(d.status, d.text).toBe(200);
    const err = await pending;
    expect(err).toMatchObject({ stage: 'attest', status: 401, kind: 'AttestationError' });
    const r = await c.fetchResourceOnce('default/key/db');
    expect(r.value).toBeUndefined();
    expect(releases().length).toBe(before);
  });
});

describe('over TLS, the guest pinning the service certificate (as the docs tell guests to)', () => {
  it('fetches its secret through the pinned certificate; a guest pinning another certificate is refused', async () => {
    const dataDirTls = fs.mkdtempSync(join(os.tmpdir(), 'kbs-sim-tls-'));
    dirs.push(dataDirTls);
    const tls = await startService({
      host: '127.0.0.1',
      port: 0,
      dataDir: dataDirTls,
      secretStore: new InMemorySecretStore(),
      ownerToken: OWNER_TOKEN,
      rateLimit: false,
      tls: true,
      kdsUrl: kds.url,
      kbs: { keys: new SnpKdsClient({ baseUrl: kds.url, maxAttempts: 1 }), trust: fw.trustStore() },
    });
    running.push(tls);
    for (const p of svc.profiles.list()) tls.profiles.put(p);
    await tls.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
    expect(tls.url).toMatch(/^https:/);
    const ca = fs.readFileSync(tls.tlsCertFile!);
    const pinned = guest({}, { tls: { ca, pinnedSha256: tls.tlsFingerprint! } }, tls);
    expect(Buffer.from(await pinned.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
    const other = guest({}, { tls: { ca, pinnedSha256: 'ab'.repeat(32) } }, tls);
    await expect(other.auth()).rejects.toMatchObject({ stage: 'transport' });
    const plain = guest({}, {}, tls);
    await expect(plain.auth()).rejects.toMatchObject({ stage: 'transport' });
  });
});

describe('Genoa and Turin chips (Turin: FMC in the TCB, an 8-byte hwid)', () => {
  it.each(['Genoa', 'Turin'] as const)(
    '%s: the whole flow, and a TCB below the minimum refused',
    async (product) => {
      const chip = await SimulatedSnpFirmware.create({ product, rsaModulusBits: 2048 });
      const chipKds = await chip.kdsStandIn();
      try {
        const dataDir = fs.mkdtempSync(join(os.tmpdir(), `kbs-sim-${product}-`));
        dirs.push(dataDir);
        const s = await startService({
          host: '127.0.0.1',
          port: 0,
          dataDir,
          secretStore: new InMemorySecretStore(),
          ownerToken: OWNER_TOKEN,
          rateLimit: false,
          audit: { aggregateWindowMs: 0 },
          kdsUrl: chipKds.url,
          kbs: {
            keys: new SnpKdsClient({ baseUrl: chipKds.url, maxAttempts: 1 }),
            trust: chip.trustStore(),
          },
        });
        running.push(s);
        s.profiles.put(
          VmProfileSchema.parse({
            id: 'web',
            name: 'SNP web',
            scheme: 'amd-sev-snp',
            policy: Number(DEFAULT_SNP_POLICY),
            cpuCounts: [1],
            firmware: { kind: 'digests', launchDigests: [hex(M_WEB)] },
            approval: 'auto',
            secrets: [{ guid: GUID_WEB, kind: 'luks-passphrase', resource: 'default/key/web' }],
            snp: { minimumTcb: { ...chip.tcb } },
          }),
        );
        await s.secretStore.set(secretAccount('web', GUID_WEB), Buffer.from(VALUE_WEB));
        const g = chip.launch({ measurement: M_WEB, policy: DEFAULT_SNP_POLICY });
        const c = new SnpGuestClient({ baseUrl: s.url, guest: g, handshakeAttempts: 1 });
        clients.push(c);
        expect(Buffer.from(await c.getResource('default/key/web')).toString()).toBe(VALUE_WEB);
        const vcekPath = chipKds.requests.find((q) => q.path.includes('?'))?.path ?? '';
        expect(vcekPath).toContain(`/vcek/v1/${product}/${Buffer.from(chip.hwid()).toString('hex')}?`);
        if (product === 'Turin') expect(vcekPath).toContain('fmcSPL=');

        const low = chip.launch({
          measurement: M_WEB,
          policy: DEFAULT_SNP_POLICY,
          tcb:
            product === 'Turin'
              ? { ...chip.tcb, fmc: 0 }
              : { ...chip.tcb, microcode: chip.tcb.microcode - 1 },
        });
        const lc = new SnpGuestClient({ baseUrl: s.url, guest: low, handshakeAttempts: 1 });
        clients.push(lc);
        const seq = lastSeq(s);
        await refusedWithoutRelease(lc, () => lc.handshakeWithRetries(), 'default/key/web', s);
        expect(JSON.stringify((await refusalAfter(seq, s)).details)).toMatch(
          product === 'Turin' ? /"rule":"reported_tcb.fmc"/ : /"rule":"reported_tcb.microcode"/,
        );
      } finally {
        await chipKds.stop();
      }
    },
  );
});
