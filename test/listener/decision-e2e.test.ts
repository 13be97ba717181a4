/**
 * Issue 10 through real HTTP: the points of the decision path a hostile host could use to get a secret or
 * to learn the owner's rules. Each case was written before its fix and failed against the old service.
 *
 * - a claimed cpu-id must be proven (the chain's CEK is the one AMD's key server, or an owner-pinned CEK,
 *   gives for that chip);
 * - the key server's "unknown chip" is a refusal, its outage a 502 with Retry-After;
 * - a VM-path validate is bound to the client that launched;
 * - a connection is bound to the profile revision it was launched for;
 * - an approval is bound to the cpu-id and the CEK;
 * - refusals tell a host the code and a generic sentence, never the owner's rules.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { fromBase64, toBase64, toHex } from '../../app/sev/bytes';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import {
  hostFlow,
  launchBody,
  platform,
  registerVm,
  request,
  runGuestLaunch,
  startHarness,
  tmpDir,
  type Harness,
  type HttpResult,
} from '../helpers/listener-harness';

/** The attacker's own chip: a genuine platform (trusted ASK) whose id is not on any allow list. */
const other = SimulatedSevPlatform.create({ generation: 'naples', seed: 'decision-attacker-chip' });
const chipA = () => toHex(platform().chipId);
const chipB = () => toHex(other.chipId);

/** A stand-in for AMD's key server that knows both chips (and counts its hits). */
async function startKds(
  known: SimulatedSevPlatform[],
): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    const p = known.find((k) => req.url === `/cek/id/${toHex(k.chipId).toUpperCase()}`);
    if (p) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from(p.signedCek));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A harness trusting both simulated platforms' ASK||ARK. */
async function startTwoChipHarness(opts: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const dir = tmpDir('sev-decision-');
  const a = join(dir, 'sim-a.cert');
  const b = join(dir, 'sim-b.cert');
  fs.writeFileSync(a, platform().askArk);
  fs.writeFileSync(b, other.askArk);
  return startHarness({ dataDir: dir, trustCa: [a, b], ...opts });
}

/** The attacker's launch body: its own genuine chain and signed CEK, and a claimed cpu-id. */
function forgedClaim(claimedChip: Uint8Array, policy = 1): Record<string, unknown> {
  return {
    pdh: toBase64(other.pdh),
    'cert-chain': toBase64(other.certChain),
    cek: toBase64(other.signedCek),
    'cpu-id': toBase64(claimedChip),
    policy,
  };
}

/** Runs the simulated guest on a launch answer; returns the base64 LAUNCH_MEASURE blob. */
async function measuredGuest(launch: HttpResult): Promise<string> {
  const guest = platform().launchStart({
    policy: launch.json.policy,
    ownerCert: fromBase64(launch.json['owner-cert']),
    session: fromBase64(launch.json.session),
  });
  await runGuestLaunch(guest, { sevEs: false });
  return toBase64(guest.launchMeasure());
}

function validateBodyFor(measurement: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'api-major': platform().apiMajor,
    'api-minor': platform().apiMinor,
    'build-id': platform().build,
    policy: 1,
    measurement,
    ...extra,
  };
}

const events = async (h: Harness, q: string) =>
  (await request(h.svc.url, 'GET', `/v1/events?${q}`)).json.events;

describe('issue 10.1: a claimed cpu-id must be proven', () => {
  let kds: Awaited<ReturnType<typeof startKds>>;
  let h: Harness;
  beforeAll(async () => {
    kds = await startKds([platform(), other]);
    h = await startTwoChipHarness({ kdsUrl: kds.url });
    const allowed = { 'allowed-cpu-ids': [chipA()] };
    expect((await registerVm(h, { id: 'pinned-vm', passphrase: 'only chip A', extra: allowed })).status).toBe(
      200,
    );
  });
  afterAll(async () => {
    await h.close();
    await kds.close();
  });

  it('a genuine chain of another chip claiming an allowed cpu-id: 403 cpu-id-unproven, audited as unproven', async () => {
    const r = await request(h.svc.url, 'POST', '/v1/vm/pinned-vm/launch', {
      body: forgedClaim(platform().chipId),
      token: null,
    });
    expect({ status: r.status, error: r.json?.error }).toEqual({ status: 403, error: 'cpu-id-unproven' });
    const e = (await events(h, 'type=launch&vm=pinned-vm&result=refused')).at(-1);
    expect(e.reason).toBe('cpu-id-unproven');
    expect(e.chipId).toBeUndefined();
    expect(e.details.chip).toMatchObject({ claimed: chipA(), proven: false });
  });

  it('the same attack on /v1/launch: refused', async () => {
    const r = await request(h.svc.url, 'POST', '/v1/launch', {
      body: forgedClaim(platform().chipId),
      token: null,
    });
    expect(r.status).toBe(403);
    expect(r.json.error).toBe('cpu-id-unproven');
  });

  it('the honest chip with its host-supplied CEK is proven against the key server and gets its secret', async () => {
    const r = await hostFlow(h, {
      vmId: 'pinned-vm',
      launchExtra: { 'cpu-id': toBase64(platform().chipId) },
    });
    expect(r.launch.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('only chip A');
    const e = (await events(h, 'type=launch&vm=pinned-vm&result=ok')).at(-1);
    expect(e.chipId).toBe(chipA());
    expect(e.details.chip).toMatchObject({ proven: true });
  });

  it('offline: an owner-pinned CEK proves the chip without a key server; the attack stays refused', async () => {
    const off = await startTwoChipHarness({ kdsUrl: 'http://127.0.0.1:9' });
    try {
      expect(
        (
          await registerVm(off, {
            id: 'pinned-vm',
            passphrase: 'offline A',
            extra: { 'allowed-cpu-ids': [chipA()] },
          })
        ).status,
      ).toBe(200);
      // Without a pin and without the key server the chip cannot be proven: an outage, with Retry-After.
      const before = await request(off.svc.url, 'POST', '/v1/vm/pinned-vm/launch', {
        body: launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) }),
        token: null,
      });
      expect(before.status).toBe(502);
      expect(before.json.error).toBe('kds-unavailable');
      expect(before.headers['retry-after']).toMatch(/^\d+$/);
      // The owner pins chip A's key-server CEK (REST).
      const pin = await request(off.svc.url, 'PUT', `/v1/chips/${chipA()}/cek`, {
        body: { cek: toBase64(platform().signedCek) },
      });
      expect(pin.status).toBe(200);
      expect(pin.json['chip-id']).toBe(chipA());
      const list = await request(off.svc.url, 'GET', '/v1/chips');
      expect(list.json.chips.map((c: { 'chip-id': string }) => c['chip-id'])).toEqual([chipA()]);
      // A pin of a CEK that is not ASK-signed is refused.
      const bad = await request(off.svc.url, 'PUT', `/v1/chips/${chipB()}/cek`, {
        body: { cek: toBase64(other.certChain.subarray(2 * 2084)) },
      });
      expect(bad.status).toBe(400);
      const honest = await hostFlow(off, {
        vmId: 'pinned-vm',
        launchExtra: { 'cpu-id': toBase64(platform().chipId) },
      });
      expect(honest.launch.status).toBe(200);
      expect(honest.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('offline A');
      const attack = await request(off.svc.url, 'POST', '/v1/vm/pinned-vm/launch', {
        body: forgedClaim(platform().chipId),
        token: null,
      });
      expect(attack.status).toBe(403);
      expect(attack.json.error).toBe('cpu-id-unproven');
    } finally {
      await off.close();
    }
  });
});

describe('issue 10.1 on /v1/launch: an unprovable claim drops only the allow-listed candidates', () => {
  it('key server down: the launch goes on for the VMs that admit any chip', async () => {
    const h = await startTwoChipHarness({ kdsUrl: 'http://127.0.0.1:9' });
    try {
      await registerVm(h, { id: 'listed', extra: { 'allowed-cpu-ids': [chipA()] } });
      await registerVm(h, { id: 'open', passphrase: 'any chip' });
      const r = await hostFlow(h, { policy: 1, launchExtra: { 'cpu-id': toBase64(platform().chipId) } });
      expect(r.launch.status).toBe(200);
      expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('any chip');
      const e = (await events(h, 'type=launch&result=ok')).at(-1);
      expect(e.details.candidates).toEqual(['open']);
      expect(e.details.chip).toMatchObject({ claimed: chipA(), proven: false });
    } finally {
      await h.close();
    }
  });
});

describe("issue 10.12: the key server's unknown chip is a refusal, its outage a 502", () => {
  it('404 from the key server: 403 cek-unknown-chip; down: 502 kds-unavailable with Retry-After', async () => {
    const kds = await startKds([platform()]);
    const h = await startTwoChipHarness({ kdsUrl: kds.url });
    try {
      await registerVm(h, { id: 'vm1' });
      const unsigned = { ...launchBody({ policy: 1, 'cpu-id': toBase64(other.chipId) }) };
      delete unsigned.cek;
      unsigned.pdh = toBase64(other.pdh);
      unsigned['cert-chain'] = toBase64(other.certChain);
      const r = await request(h.svc.url, 'POST', '/v1/vm/vm1/launch', { body: unsigned, token: null });
      expect({ status: r.status, error: r.json?.error }).toEqual({ status: 403, error: 'cek-unknown-chip' });
    } finally {
      await h.close();
      await kds.close();
    }
    const down = await startTwoChipHarness({ kdsUrl: 'http://127.0.0.1:9' });
    try {
      await registerVm(down, { id: 'vm1' });
      const b = launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) });
      delete b.cek;
      const r = await request(down.svc.url, 'POST', '/v1/vm/vm1/launch', { body: b, token: null });
      expect({ status: r.status, error: r.json?.error }).toEqual({ status: 502, error: 'kds-unavailable' });
      expect(r.headers['retry-after']).toMatch(/^\d+$/);
    } finally {
      await down.close();
    }
  });
});

describe('issue 10.5: a VM-path validate is bound to the client that launched', () => {
  let h: Harness;
  /** A second client on this machine: same listener, another loopback source address. */
  const stranger = new http.Agent({ localAddress: '127.0.0.2' });
  beforeAll(async () => {
    h = await startHarness({ connectionTtlSeconds: 600 });
    expect((await registerVm(h, { id: 'bound', passphrase: 'bound secret' })).status).toBe(200);
  });
  afterAll(async () => {
    stranger.destroy();
    await h.close();
  });

  const vmValidate = (measurement: string, agent?: http.Agent) =>
    request(h.svc.url, 'POST', '/v1/vm/bound/validate', {
      token: null,
      agent,
      body: validateBodyFor(measurement),
    });
  const launchVm = (agent?: http.Agent) =>
    request(h.svc.url, 'POST', '/v1/vm/bound/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
      agent,
    });

  it("a junk validate from another client neither spends nor answers for the honest host's launch", async () => {
    const launch = await launchVm();
    expect(launch.status).toBe(200);
    const measurement = await measuredGuest(launch);
    const junk = await vmValidate(toBase64(new Uint8Array(48)), stranger);
    expect(junk.status).toBe(404);
    expect(junk.json.error).toBe('unknown-connection');
    const v = await vmValidate(measurement);
    expect(v.status).toBe(200);
  });

  it('a third party that launches the same VM with the replayed public chain does not shadow the honest launch', async () => {
    const honest = await launchVm();
    expect(honest.status).toBe(200);
    const replay = await launchVm(stranger);
    expect(replay.status).toBe(200);
    const v = await vmValidate(await measuredGuest(honest));
    expect(v.status).toBe(200);
    // The stranger's validate by VM id reaches its own connection only (and it cannot measure it).
    const junk = await vmValidate(toBase64(new Uint8Array(48)), stranger);
    expect(junk.json.error).toBe('measurement-mismatch');
  });
});

describe('issue 10.6: a connection is bound to the profile revision it was launched for', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ connectionTtlSeconds: 600 });
  });
  afterAll(async () => {
    await h.close();
  });

  it("a launch of the old VM does not release the re-registered VM's secret", async () => {
    expect((await registerVm(h, { id: 'reused', passphrase: 'old VM' })).status).toBe(200);
    const launch = await request(h.svc.url, 'POST', '/v1/vm/reused/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
    });
    expect(launch.status).toBe(200);
    expect((await request(h.svc.url, 'DELETE', '/v1/vm/reused')).status).toBe(204);
    expect((await registerVm(h, { id: 'reused', passphrase: 'NEW VM' })).status).toBe(200);
    const v = await request(h.svc.url, 'POST', `/v1/connections/${launch.json.connection}/validate`, {
      token: null,
      body: validateBodyFor(await measuredGuest(launch)),
    });
    expect(v.status).toBe(403);
    expect(v.json.error).toBe('denied');
    expect(v.text).not.toContain('NEW VM');
    // A launch after the re-registration works.
    const fresh = await hostFlow(h, { vmId: 'reused' });
    expect(fresh.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('NEW VM');
  });

  it('a profile replaced (PUT) after the launch refuses that launch too', async () => {
    expect((await registerVm(h, { id: 'updated', passphrase: 'v1' })).status).toBe(200);
    const launch = await request(h.svc.url, 'POST', '/v1/vm/updated/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
    });
    expect((await registerVm(h, { id: 'updated', passphrase: 'v2' })).status).toBe(200);
    const v = await request(h.svc.url, 'POST', `/v1/connections/${launch.json.connection}/validate`, {
      token: null,
      body: validateBodyFor(await measuredGuest(launch)),
    });
    expect(v.status).toBe(403);
    expect(v.json.error).toBe('denied');
  });
});

describe('issue 10.7: an approval is bound to the cpu-id and the CEK', () => {
  it('an approval given for one chip claim does not admit a launch with another', async () => {
    const h = await startHarness({ approvalTimeoutSeconds: 60 });
    try {
      expect((await registerVm(h, { id: 'manual', approval: 'manual' })).status).toBe(200);
      const first = launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) });
      const pending = await request(h.svc.url, 'POST', '/v1/vm/manual/launch', { body: first, token: null });
      expect(pending.status).toBe(202);
      const decided = await request(h.svc.url, 'POST', `/v1/approvals/${pending.json.approval}`, {
        body: { decision: 'approve' },
      });
      expect(decided.status).toBe(200);
      // Same request, another cpu-id: a new approval, not the approved one.
      const otherId = launchBody({ policy: 1, 'cpu-id': toBase64(other.chipId) });
      const second = await request(h.svc.url, 'POST', '/v1/vm/manual/launch', { body: otherId, token: null });
      expect(second.status).toBe(202);
      expect(second.json.approval).not.toBe(pending.json.approval);
      // The approved one is still there for the exact request it was given for.
      const approved = await request(h.svc.url, 'POST', '/v1/vm/manual/launch', { body: first, token: null });
      expect(approved.status).toBe(200);
    } finally {
      await h.close();
    }
  });
});

describe('issue 10.8: a host learns the code and a generic sentence, never the owner rules', () => {
  let h: Harness;
  let kds: Awaited<ReturnType<typeof startKds>>;
  const results: Array<{ what: string; r: HttpResult; vm?: string }> = [];
  beforeAll(async () => {
    kds = await startKds([platform(), other]);
    h = await startTwoChipHarness({ kdsUrl: kds.url, connectionTtlSeconds: 600 });
    const reg = async (id: string, extra: Record<string, unknown> = {}, more: Record<string, unknown> = {}) =>
      expect((await registerVm(h, { id, extra, ...more })).status).toBe(200);
    await reg('plain');
    await reg('es-secret-vm', {}, { sevEs: true });
    await reg('old-api', { 'min-api': { major: 9, minor: 9 } });
    await reg('builds', { 'allowed-build-ids': [200] });
    await reg('chips', { 'allowed-cpu-ids': ['ab'.repeat(64)] });
    await reg('proven', { 'allowed-cpu-ids': [chipA()] });
    await reg('manual', {}, { approval: 'manual' });
    await reg('nosecret', { secrets: [] });
  });
  afterAll(async () => {
    await h.close();
    await kds.close();
  });

  const launch = (vm: string | undefined, body: unknown) =>
    request(h.svc.url, 'POST', vm ? `/v1/vm/${vm}/launch` : '/v1/launch', { body, token: null });
  const validateBody = (m = toBase64(new Uint8Array(48)), extra: Record<string, unknown> = {}) => ({
    'api-major': platform().apiMajor,
    'api-minor': platform().apiMinor,
    'build-id': platform().build,
    policy: 1,
    measurement: m,
    ...extra,
  });
  const validateConn = (c: string, body: unknown) =>
    request(h.svc.url, 'POST', `/v1/connections/${c}/validate`, { body, token: null });

  it('collects every refusal a host can provoke', async () => {
    const add = (what: string, r: HttpResult, vm?: string) =>
      results.push({ what, r, ...(vm ? { vm } : {}) });
    add('unknown-vm', await launch('nope', launchBody({ policy: 1 })), 'nope');
    add('policy-not-allowed (vm)', await launch('plain', launchBody({ policy: 0 })), 'plain');
    add('policy-not-allowed (/v1/launch)', await launch(undefined, launchBody({ policy: 0x03 })));
    add(
      'cpu-id-not-allowed',
      await launch('chips', launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) })),
      'chips',
    );
    add('cpu-id-not-allowed (no id)', await launch('chips', launchBody({ policy: 1 })), 'chips');
    add('cpu-id-unproven', await launch('proven', forgedClaim(platform().chipId)), 'proven');
    const untrusted = SimulatedSevPlatform.create({ generation: 'naples', seed: 'untrusted-decision' });
    add(
      'chain-not-trusted',
      await launch('plain', {
        pdh: toBase64(untrusted.pdh),
        'cert-chain': toBase64(untrusted.certChain),
        cek: toBase64(untrusted.signedCek),
        policy: 1,
      }),
      'plain',
    );
    const unknownChip = launchBody({ policy: 1, 'cpu-id': toBase64(new Uint8Array(64).fill(7)) });
    delete unknownChip.cek;
    add('cek-unknown-chip', await launch('plain', unknownChip), 'plain');
    const noCek = launchBody({ policy: 1 });
    delete noCek.cek;
    add('chain-not-trusted (unsigned, no cpu-id)', await launch('plain', noCek), 'plain');
    const denied = await launch('manual', launchBody({ policy: 1 }));
    await request(h.svc.url, 'POST', `/v1/approvals/${denied.json.approval}`, { body: { decision: 'deny' } });
    add('denied', await launch('manual', launchBody({ policy: 1 })), 'manual');

    // Validate refusals.
    const conn = async (vm: string | undefined, policy = 1) => {
      const r = await launch(vm, launchBody({ policy }));
      expect(r.status).toBe(200);
      return r.json.connection as string;
    };
    add('unknown-connection', await validateConn('00000000-0000-4000-8000-000000000000', validateBody()));
    add('measurement-mismatch', await validateConn(await conn('plain'), validateBody()), 'plain');
    // Policy 5 on /v1/launch: es-secret-vm is its only (auto-approved) candidate.
    add(
      'measurement-mismatch (/v1/launch)',
      await validateConn(await conn(undefined, 5), validateBody(undefined, { policy: 5 })),
    );
    add(
      'policy-mismatch',
      await validateConn(await conn('plain'), validateBody(undefined, { policy: 5 })),
      'plain',
    );
    add('api-too-old', await validateConn(await conn('old-api'), validateBody()), 'old-api');
    add('build-not-allowed', await validateConn(await conn('builds'), validateBody()), 'builds');
    const used = await conn('plain');
    await validateConn(used, validateBody());
    add('connection-used', await validateConn(used, validateBody()), 'plain');
    const ok = await hostFlow(h, { vmId: 'nosecret' });
    add('denied (no secrets)', ok.validate!, 'nosecret');
    add(
      'unknown-connection (vm path)',
      await request(h.svc.url, 'POST', '/v1/vm/es-secret-vm/validate', { body: validateBody(), token: null }),
      'es-secret-vm',
    );

    const codes = new Set(results.map((x) => x.r.json?.error));
    for (const c of [
      'unknown-vm',
      'policy-not-allowed',
      'cpu-id-not-allowed',
      'cpu-id-unproven',
      'chain-not-trusted',
      'cek-unknown-chip',
      'denied',
      'unknown-connection',
      'measurement-mismatch',
      'policy-mismatch',
      'api-too-old',
      'build-not-allowed',
      'connection-used',
    ]) {
      expect(codes, c).toContain(c);
    }
  });

  it('no body names a policy, another VM, a file path or an allow list', () => {
    const vmIds = ['plain', 'es-secret-vm', 'old-api', 'builds', 'chips', 'proven', 'manual', 'nosecret'];
    for (const { what, r, vm } of results) {
      expect(r.status, what).toBeGreaterThanOrEqual(400);
      const text = r.text;
      expect(text, what).not.toMatch(/0x[0-9a-f]+/i);
      expect(text, what).not.toMatch(/allow(ed)? list|allow-list|allowed builds|minimum/i);
      expect(text, what).not.toMatch(/\/(tmp|home|etc|var)\b|\.cert\b|sev-decision-/);
      expect(text, what).not.toContain(h.dataDir);
      for (const id of vmIds) if (id !== vm) expect(text, `${what} names ${id}`).not.toContain(id);
      expect(text, what).not.toMatch(/\bVMs?\b.*\bpolicy\b/);
    }
  });

  it('the owner sees the details in the audit log', async () => {
    const e = (await events(h, 'type=launch&vm=plain&result=refused')).find(
      (x: { reason: string }) => x.reason === 'policy-not-allowed',
    );
    expect(e.message).toMatch(/0x0*1\b/);
  });
});
