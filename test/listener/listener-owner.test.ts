/**
 * Owner side of the listener: approvals (wait, approve, deny, timeout), VM registration rules and
 * warnings, secret values never returned, trust anchors, the OpenAPI document, SSE events and TLS.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import {
  FIRMWARE,
  hostFlow,
  launchBody,
  platform,
  registerVm,
  request,
  runGuestLaunch,
  startHarness,
  tmpDir,
  type Harness,
  OWNER_TOKEN,
} from '../helpers/listener-harness';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ approvalTimeoutSeconds: 1 });
  expect(
    (await registerVm(h, { id: 'manual', approval: 'manual', passphrase: 'approved secret' })).status,
  ).toBe(200);
});
afterAll(async () => {
  await h.close();
});

const launchManual = () =>
  request(h.svc.url, 'POST', '/v1/vm/manual/launch', { body: launchBody({ policy: 1 }), token: null });

describe('approval', () => {
  it('a manual VM waits (202, Retry-After); repeats wait on the same approval; approve releases', async () => {
    const first = await launchManual();
    expect(first.status).toBe(202);
    expect(Number(first.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const second = await launchManual();
    expect(second.status).toBe(202);
    expect(second.json.approval).toBe(first.json.approval);
    const list = await request(h.svc.url, 'GET', '/v1/approvals');
    expect(list.json.approvals.filter((a: { state: string }) => a.state === 'pending')).toHaveLength(1);
    const d = await request(h.svc.url, 'POST', `/v1/approvals/${first.json.approval}`, {
      body: { decision: 'approve' },
    });
    expect(d.status).toBe(200);
    expect(d.json.state).toBe('approved');
    const again = await request(h.svc.url, 'POST', `/v1/approvals/${first.json.approval}`, {
      body: { decision: 'deny' },
    });
    expect(again.json.error).toBe('approval-decided');
    // The approved request now gets its session, and the guest gets its secret.
    const launched = await launchManual();
    expect(launched.status).toBe(200);
    const p = platform();
    const guest = p.launchStart({
      policy: 1,
      ownerCert: fromBase64(launched.json['owner-cert']),
      session: fromBase64(launched.json.session),
    });
    await runGuestLaunch(guest, { sevEs: false });
    const v = await request(h.svc.url, 'POST', `/v1/connections/${launched.json.connection}/validate`, {
      token: null,
      body: {
        'api-major': p.apiMajor,
        'api-minor': p.apiMinor,
        'build-id': p.build,
        policy: 1,
        measurement: toBase64(guest.launchMeasure()),
      },
    });
    expect(v.status).toBe(200);
    const out = guest.launchSecret({
      header: fromBase64(v.json['secret-header']),
      payload: fromBase64(v.json['secret-table']),
    });
    expect(Buffer.from(out.entries[0]!.data).toString()).toBe('approved secret');
    // The approval was spent: the same request asks the owner again.
    const next = await launchManual();
    expect(next.status).toBe(202);
    expect(next.json.approval).not.toBe(first.json.approval);
    await request(h.svc.url, 'POST', `/v1/approvals/${next.json.approval}`, { body: { decision: 'deny' } });
  });

  it('deny refuses with 403 denied (and keeps refusing the same request)', async () => {
    const w = await launchManual();
    expect(w.status).toBe(403); // still denied from the previous test's decision
    expect(w.json.error).toBe('denied');
    const ev = await request(h.svc.url, 'GET', '/v1/events?type=decision');
    expect(ev.json.events.some((e: { reason: string }) => e.reason === 'denied')).toBe(true);
  });

  it('the timeout denies', async () => {
    expect((await registerVm(h, { id: 'manual2', approval: 'manual' })).status).toBe(200);
    const other = await request(h.svc.url, 'POST', '/v1/vm/manual2/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
    });
    expect(other.status).toBe(202);
    await new Promise((r) => setTimeout(r, 1300));
    const after = await request(h.svc.url, 'POST', '/v1/vm/manual2/launch', {
      body: launchBody({ policy: 1 }),
      token: null,
    });
    expect(after.status).toBe(403);
    expect(after.json.error).toBe('denied');
    const ev = await request(h.svc.url, 'GET', '/v1/events?type=decision&result=refused');
    expect(ev.json.events.some((e: { reason: string }) => e.reason === 'timeout')).toBe(true);
  });

  it('decisions on unknown approvals are 404', async () => {
    const r = await request(h.svc.url, 'POST', '/v1/approvals/00000000-0000-4000-8000-000000000000', {
      body: { decision: 'approve' },
    });
    expect(r.status).toBe(404);
    expect(r.json.error).toBe('unknown-approval');
  });
});

describe('owner API', () => {
  it('secret values are never returned', async () => {
    const one = await request(h.svc.url, 'GET', '/v1/vm/manual');
    expect(one.status).toBe(200);
    expect(one.json.secrets).toEqual([{ guid: LUKS_PASSPHRASE_GUID, type: 'luks-passphrase' }]);
    const all = await request(h.svc.url, 'GET', '/v1/vm');
    expect(all.text).not.toContain('approved secret');
    expect(fs.readFileSync(join(h.dataDir, 'profiles.json'), 'utf8')).not.toContain('approved secret');
    expect(fs.readFileSync(join(h.dataDir, 'audit.log'), 'utf8')).not.toContain('approved secret');
  });

  it('secrets for a firmware without a secret area answer with a warning', async () => {
    const ovmf = fs.readFileSync('/usr/share/ovmf/OVMF.fd');
    const up = await request(h.svc.url, 'PUT', '/v1/artifacts', {
      body: ovmf,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(up.status).toBe(200);
    const r = await request(h.svc.url, 'PUT', '/v1/vm/debian', {
      body: {
        name: 'Debian OVMF',
        scheme: 'amd-sev',
        policy: 1,
        'firmware-artifact': up.json.sha256,
        approval: 'auto',
        secrets: { type: 'luks-passphrase', passphrase: 'p' },
      },
    });
    expect(r.status).toBe(200);
    expect(r.json.warnings.join(' ')).toMatch(/secret area/);
  });

  it('registration rules: one firmware source, SEV-ES needs a CPU signature, kernel needs a hashes table', async () => {
    const base = { name: 'x', scheme: 'amd-sev', policy: 1, approval: 'auto' };
    const both = await request(h.svc.url, 'PUT', '/v1/vm/x', {
      body: { ...base, 'launch-digests': ['00'.repeat(32)], firmware: toBase64(FIRMWARE) },
    });
    expect(both.json.error).toBe('bad-request');
    const up = await request(h.svc.url, 'PUT', '/v1/artifacts', {
      body: Buffer.from(FIRMWARE),
      headers: { 'content-type': 'application/octet-stream' },
    });
    const es = await request(h.svc.url, 'PUT', '/v1/vm/x', {
      body: { ...base, scheme: 'amd-sev-es', policy: 5, 'firmware-artifact': up.json.sha256 },
    });
    expect(es.json).toMatchObject({ error: 'bad-request', message: expect.stringMatching(/cpu-signature/) });
    const x64 = fs.readFileSync('test/fixtures/vectors/virtee-sev/ovmf_OvmfX64_suffix.bin');
    const up2 = await request(h.svc.url, 'PUT', '/v1/artifacts', {
      body: x64,
      headers: { 'content-type': 'application/octet-stream' },
    });
    const k = await request(h.svc.url, 'PUT', '/v1/vm/x', {
      body: { ...base, 'firmware-artifact': up2.json.sha256, 'kernel-hash': 'ab'.repeat(32) },
    });
    expect(k.json).toMatchObject({ error: 'bad-request', message: expect.stringMatching(/kernel-hash/) });
    const missing = await request(h.svc.url, 'PUT', '/v1/vm/x', {
      body: { ...base, 'firmware-artifact': 'cd'.repeat(32) },
    });
    expect(missing.json.error).toBe('unknown-artifact');
    const inline = await request(h.svc.url, 'POST', '/v1/vm/inline', {
      body: {
        ...base,
        firmware: toBase64(FIRMWARE),
        secrets: [{ guid: '11111111-2222-3333-4444-555555555555', data: toBase64(Buffer.from('raw')) }],
      },
    });
    expect(inline.status).toBe(200);
    expect(inline.json.vm['firmware-artifact']).toBe(up.json.sha256);
  });

  it('a policy with reserved bits 6-15 set is refused at registration', async () => {
    const r = await request(h.svc.url, 'PUT', '/v1/vm/reserved', {
      body: {
        name: 'r',
        scheme: 'amd-sev',
        policy: 0x41,
        approval: 'auto',
        'launch-digests': ['00'.repeat(32)],
      },
    });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ error: 'bad-request', message: expect.stringMatching(/reserved/) });
    expect((await request(h.svc.url, 'GET', '/v1/vm/reserved')).status).toBe(404);
  });

  it('precomputed launch digests work without a firmware', async () => {
    const guestDigest = await (async () => {
      const g = platform().launchStart({ policy: 1, ...(await sessionFor()) });
      await runGuestLaunch(g, { sevEs: false });
      g.launchMeasure();
      return Buffer.from(g.launchDigestForTest()).toString('hex');
    })();
    const r = await request(h.svc.url, 'PUT', '/v1/vm/pre', {
      body: {
        name: 'pre',
        scheme: 'amd-sev',
        policy: 1,
        'launch-digests': [guestDigest],
        approval: 'auto',
        secrets: { type: 'luks-passphrase', passphrase: 'pre' },
      },
    });
    expect(r.status).toBe(200);
    const f = await hostFlow(h, { vmId: 'pre' });
    expect(f.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('pre');
  });

  it('GET /v1/openapi.json is an OpenAPI 3.1 document naming every route', async () => {
    const r = await request(h.svc.url, 'GET', '/v1/openapi.json', { token: null });
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe('3.1.0');
    for (const p of [
      '/v1/vm/{vmid}/launch',
      '/v1/launch',
      '/v1/vm/{vmid}/validate',
      '/v1/connections/{connection}/validate',
      '/v1/vm/{vmid}',
      '/v1/artifacts',
      '/v1/approvals/{id}',
      '/v1/events',
      '/v1/health',
    ]) {
      expect(r.json.paths[p], p).toBeDefined();
    }
    expect(r.json.components.schemas.LaunchRequest.properties.pdh.contentEncoding).toBe('base64');
    expect(JSON.stringify(r.json)).not.toContain('#/$defs/');
  });

  it('GET /v1/events streams live events as text/event-stream', async () => {
    const u = new URL('/v1/events?type=launch', h.svc.url);
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.get(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          headers: { accept: 'text/event-stream', authorization: `Bearer ${OWNER_TOKEN}` },
        },
        (res) => {
          expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
          let buf = '';
          res.on('data', (c) => {
            buf += c;
            if (buf.includes(': connected')) void launchManual();
            if (buf.includes('event: audit')) {
              req.destroy();
              resolve(buf);
            }
          });
        },
      );
      req.on('error', reject);
    });
    const data = JSON.parse(/data: (.*)\n/.exec(got)![1]!);
    expect(data.type).toBe('launch');
  });
});

async function sessionFor(): Promise<{ ownerCert: Uint8Array; session: Uint8Array }> {
  const { LaunchSession } = await import('../../app/sev/session');
  const s = LaunchSession.create({ pdh: platform().pdh, policy: 1 });
  return { ownerCert: s.ownerCert, session: s.sessionBlob };
}

describe('trust anchors and TLS', () => {
  it('without the simulated ASK||ARK the same chain is refused chain-not-trusted', async () => {
    const t = await startHarness({ trustSim: false });
    try {
      await registerVm(t, { id: 'vm1' });
      const r = await hostFlow(t, { vmId: 'vm1' });
      expect(r.launch.status).toBe(403);
      expect(r.launch.json.error).toBe('chain-not-trusted');
    } finally {
      await t.close();
    }
  });

  it('TLS: a generated self-signed certificate, its fingerprint in /v1/health, pinned by the host', async () => {
    const dataDir = tmpDir();
    const t = await startHarness({ tls: true, dataDir });
    try {
      expect(t.svc.url).toMatch(/^https:/);
      const certPem = fs.readFileSync(join(dataDir, 'tls-cert.pem'), 'utf8');
      expect(new X509Certificate(certPem).fingerprint256).toBe(t.svc.tlsFingerprint);
      expect((fs.statSync(join(dataDir, 'tls-key.pem')).mode & 0o777).toString(8)).toBe('600');
      const u = new URL('/v1/health', t.svc.url);
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get(
            {
              host: u.hostname,
              port: u.port,
              path: u.pathname,
              ca: certPem,
              headers: { authorization: `Bearer ${OWNER_TOKEN}` },
            },
            (res) => {
              let s = '';
              res.on('data', (c) => (s += c));
              res.on('end', () => resolve(s));
            },
          )
          .on('error', reject);
      });
      expect(JSON.parse(body).tls).toEqual({ enabled: true, fingerprint: t.svc.tlsFingerprint });
      // An unpinned client refuses the certificate.
      await expect(
        new Promise((resolve, reject) =>
          https
            .get({ host: u.hostname, port: u.port, path: '/v1/openapi.json' }, resolve)
            .on('error', reject),
        ),
      ).rejects.toThrow(/self-signed|certificate/i);
    } finally {
      await t.close();
    }
    // Reused on restart: same fingerprint.
    const again = await startHarness({ tls: true, dataDir });
    try {
      expect(again.svc.tlsFingerprint).toBe(t.svc.tlsFingerprint);
    } finally {
      await again.close();
    }
  });
});
