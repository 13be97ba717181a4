/**
 * Every 4xx of the contract, each from its own request, plus replay, forged chains, an unknown ASK, a
 * flipped measurement bit and a malformed-body corpus: a JSON error every time, and the service keeps
 * serving.
 */
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBase64 } from '../../app/sev/bytes';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import {
  hostFlow,
  launchBody,
  platform,
  registerVm,
  request,
  startHarness,
  type Harness,
  type HttpResult,
} from '../helpers/listener-harness';

function expectError(r: HttpResult | undefined, status: number, code: string): void {
  expect(r, 'response').toBeDefined();
  expect({ status: r!.status, error: r!.json?.error }).toEqual({ status, error: code });
  expect(typeof r!.json.message).toBe('string');
  expect(r!.headers['content-type']).toMatch(/^application\/json/);
  expect(r!.headers['access-control-allow-origin']).toBeUndefined();
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ connectionTtlSeconds: 600 });
  expect((await registerVm(h, { id: 'vm1' })).status).toBe(200);
  expect((await registerVm(h, { id: 'old-api', extra: { 'min-api': { major: 9, minor: 0 } } })).status).toBe(
    200,
  );
  expect((await registerVm(h, { id: 'builds', extra: { 'allowed-build-ids': [200] } })).status).toBe(200);
  const otherChip = 'ab'.repeat(64);
  expect((await registerVm(h, { id: 'chips', extra: { 'allowed-cpu-ids': [otherChip] } })).status).toBe(200);
  expect((await registerVm(h, { id: 'gone' })).status).toBe(200);
});
afterAll(async () => {
  await h.close();
});

const launch = (
  vm: string,
  body: unknown = launchBody({ policy: 1 }),
  extra: Parameters<typeof request>[3] = {},
) => request(h.svc.url, 'POST', `/v1/vm/${vm}/launch`, { body, token: null, ...extra });

/** A well-formed validate body (API 1.51, build 3, policy 1), by default with an all-zero measurement. */
const validateBody = (measurement = toBase64(new Uint8Array(48))) => ({
  'api-major': 1,
  'api-minor': 51,
  'build-id': 3,
  policy: 1,
  measurement,
});

/** The host's POST /v1/connections/{connection}/validate, on the shared harness unless `url` says. */
const validate = (connection: string, body: unknown = validateBody(), url = h.svc.url) =>
  request(url, 'POST', `/v1/connections/${connection}/validate`, { body, token: null });

describe('launch refusals', () => {
  it('404 unknown-vm', async () => expectError(await launch('nope'), 404, 'unknown-vm'));
  it('404 unknown-vm for an id that cannot exist', async () =>
    expectError(await launch('..%2F..%2Fetc'), 404, 'unknown-vm'));
  it('403 policy-not-allowed (debug allowed: policy 0 instead of the owner 0x1)', async () =>
    expectError(await launch('vm1', launchBody({ policy: 0 })), 403, 'policy-not-allowed'));
  it('403 policy-not-allowed on /v1/launch for a policy no VM uses', async () =>
    expectError(
      await request(h.svc.url, 'POST', '/v1/launch', { body: launchBody({ policy: 0x03 }), token: null }),
      403,
      'policy-not-allowed',
    ));
  it('400 bad-request on /v1/launch without a policy', async () =>
    expectError(
      await request(h.svc.url, 'POST', '/v1/launch', { body: launchBody(), token: null }),
      400,
      'bad-request',
    ));
  it('400 bad-request when scheme disagrees with the ES bit', async () =>
    expectError(await launch('vm1', launchBody({ policy: 1, scheme: 'amd-sev-es' })), 400, 'bad-request'));
  it('403 cpu-id-not-allowed', async () =>
    expectError(
      await launch('chips', launchBody({ policy: 1, 'cpu-id': toBase64(platform().chipId) })),
      403,
      'cpu-id-not-allowed',
    ));
  it('403 cpu-id-not-allowed without a cpu-id when the VM has an allow list', async () =>
    expectError(await launch('chips'), 403, 'cpu-id-not-allowed'));
  it('403 chain-not-trusted: a forged PDH (one flipped bit)', async () => {
    const pdh = Buffer.from(platform().pdh);
    pdh[0x20]! ^= 0x01;
    expectError(await launch('vm1', launchBody({ policy: 1, pdh: toBase64(pdh) })), 403, 'chain-not-trusted');
  });
  it('403 chain-not-trusted: a forged PEK in the chain', async () => {
    const chain = Buffer.from(platform().certChain);
    chain[0x500]! ^= 0x80;
    expectError(
      await launch('vm1', launchBody({ policy: 1, 'cert-chain': toBase64(chain) })),
      403,
      'chain-not-trusted',
    );
  });
  it('403 chain-not-trusted: a platform under an unknown ASK', async () => {
    const stranger = SimulatedSevPlatform.create({ generation: 'naples', seed: 'stranger' });
    const body = {
      policy: 1,
      pdh: toBase64(stranger.pdh),
      'cert-chain': toBase64(stranger.certChain),
      cek: toBase64(stranger.signedCek),
    };
    expectError(await launch('vm1', body), 403, 'chain-not-trusted');
  });
  it("403 chain-not-trusted: another chip's signed CEK", async () => {
    const stranger = SimulatedSevPlatform.create({ generation: 'naples', seed: 'stranger-2' });
    expectError(
      await launch('vm1', launchBody({ policy: 1, cek: toBase64(stranger.signedCek) })),
      403,
      'chain-not-trusted',
    );
  });
  it('403 chain-not-trusted: unsigned CEK, no cek and no cpu-id', async () => {
    const body = launchBody({ policy: 1 });
    delete body.cek;
    const r = await launch('vm1', body);
    expectError(r, 403, 'chain-not-trusted');
    expect(r.json.message).toMatch(/cek/i);
  });
});

describe('validate refusals', () => {
  it('403 measurement-mismatch: one flipped measurement bit', async () => {
    const r = await hostFlow(h, { vmId: 'vm1', tamperMeasurement: (m) => (m[5]! ^= 0x10) });
    expectError(r.validate, 403, 'measurement-mismatch');
  });
  it('403 measurement-mismatch: a flipped mnonce bit', async () => {
    const r = await hostFlow(h, { vmId: 'vm1', tamperMeasurement: (m) => (m[40]! ^= 0x01) });
    expectError(r.validate, 403, 'measurement-mismatch');
  });
  it('403 policy-mismatch', async () => {
    const r = await hostFlow(h, { vmId: 'vm1', validateExtra: { policy: 0x03 } });
    expectError(r.validate, 403, 'policy-mismatch');
  });
  it('403 api-too-old', async () =>
    expectError((await hostFlow(h, { vmId: 'old-api' })).validate, 403, 'api-too-old'));
  it('403 build-not-allowed', async () =>
    expectError((await hostFlow(h, { vmId: 'builds' })).validate, 403, 'build-not-allowed'));
  it('403 denied when the VM was deleted between launch and validate', async () => {
    const l = await launch('gone');
    expect(l.status).toBe(200);
    expect((await request(h.svc.url, 'DELETE', '/v1/vm/gone')).status).toBe(204);
    const v = await validate(l.json.connection);
    expectError(v, 403, 'denied');
  });
  it('404 unknown-connection', async () => {
    const v = await validate(randomUUID());
    expectError(v, 404, 'unknown-connection');
  });
  it('409 connection-used: a replayed validate gets no second secret', async () => {
    const r = await hostFlow(h, { vmId: 'vm1' });
    expect(r.validate?.status).toBe(200);
    const replay = await validate(r.launch.json.connection, validateBody(r.measurement));
    expectError(replay, 409, 'connection-used');
  });
  it('409 connection-used: two concurrent validates, exactly one releases', async () => {
    const l = await launch('vm1');
    const p = platform();
    const { fromBase64 } = await import('../../app/sev/bytes');
    const guest = p.launchStart({
      policy: 1,
      ownerCert: fromBase64(l.json['owner-cert']),
      session: fromBase64(l.json.session),
    });
    const { runGuestLaunch } = await import('../helpers/listener-harness');
    await runGuestLaunch(guest, { sevEs: false });
    const m = toBase64(guest.launchMeasure());
    const body = {
      'api-major': p.apiMajor,
      'api-minor': p.apiMinor,
      'build-id': p.build,
      policy: 1,
      measurement: m,
    };
    const path = `/v1/connections/${l.json.connection}/validate`;
    const rs = await Promise.all(
      [0, 1, 2].map(() => request(h.svc.url, 'POST', path, { token: null, body })),
    );
    expect(rs.map((r) => r.status).sort()).toEqual([200, 409, 409]);
  });
  it('410 connection-expired', async () => {
    const short = await startHarness({ connectionTtlSeconds: 0.2 });
    try {
      await registerVm(short, { id: 'vm1' });
      const l = await request(short.svc.url, 'POST', '/v1/vm/vm1/launch', {
        body: launchBody({ policy: 1 }),
        token: null,
      });
      expect(l.status).toBe(200);
      await new Promise((r) => setTimeout(r, 400));
      const v = await validate(l.json.connection, validateBody(), short.svc.url);
      expectError(v, 410, 'connection-expired');
    } finally {
      await short.close();
    }
  });
});

describe('transport refusals', () => {
  it('401 unauthorized on owner routes without or with a wrong token', async () => {
    expectError(await request(h.svc.url, 'GET', '/v1/vm', { token: null }), 401, 'unauthorized');
    expectError(await request(h.svc.url, 'GET', '/v1/vm', { token: 'x'.repeat(33) }), 401, 'unauthorized');
    expectError(
      await request(h.svc.url, 'GET', '/v1/vm', {
        token: null,
        headers: { authorization: 'Basic Zm9vOmJhcg==' },
      }),
      401,
      'unauthorized',
    );
  });
  it('401 unauthorized on host routes when a host token is set', async () => {
    const t = await startHarness({ hostToken: 'host-token-abcdefghijklmnop' });
    try {
      await registerVm(t, { id: 'vm1' });
      const p = '/v1/vm/vm1/launch';
      expectError(
        await request(t.svc.url, 'POST', p, { body: launchBody({ policy: 1 }), token: null }),
        401,
        'unauthorized',
      );
      const ok = await request(t.svc.url, 'POST', p, {
        body: launchBody({ policy: 1 }),
        token: 'host-token-abcdefghijklmnop',
      });
      expect(ok.status).toBe(200);
    } finally {
      await t.close();
    }
  });
  it('421 misdirected for a DNS name not allowed (rebinding)', async () =>
    expectError(
      await request(h.svc.url, 'GET', '/v1/health', { headers: { host: 'evil.example:8470' } }),
      421,
      'misdirected',
    ));
  it('Host localhost and IP literals are accepted', async () => {
    expect((await request(h.svc.url, 'GET', '/v1/health', { headers: { host: 'localhost:1' } })).status).toBe(
      200,
    );
    expect((await request(h.svc.url, 'GET', '/v1/health', { headers: { host: '[::1]:1' } })).status).toBe(
      200,
    );
  });
  it('403 origin-not-allowed for browser requests', async () =>
    expectError(
      await launch('vm1', launchBody({ policy: 1 }), { headers: { origin: 'http://evil.example' } }),
      403,
      'origin-not-allowed',
    ));
  it('405 method-not-allowed with Allow, and OPTIONS gets no CORS', async () => {
    const r = await request(h.svc.url, 'GET', '/v1/launch', { token: null });
    expectError(r, 405, 'method-not-allowed');
    expect(r.headers.allow).toBe('POST');
    expectError(
      await request(h.svc.url, 'OPTIONS', '/v1/launch', { token: null }),
      405,
      'method-not-allowed',
    );
  });
  it('404 not-found for unknown paths', async () =>
    expectError(await request(h.svc.url, 'GET', '/admin'), 404, 'not-found'));
  it('415 for a non-JSON content type', async () =>
    expectError(
      await launch('vm1', JSON.stringify(launchBody({ policy: 1 })), {
        headers: { 'content-type': 'text/plain' },
      }),
      415,
      'unsupported-media-type',
    ));
  it('413 payload-too-large (declared and streamed)', async () => {
    expectError(await launch('vm1', 'x'.repeat(200_000)), 413, 'payload-too-large');
    // Chunked, no Content-Length: counted while streaming.
    const r = await new Promise<HttpResult>((resolve, reject) => {
      const u = new URL('/v1/vm/vm1/launch', h.svc.url);
      const req = http.request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () =>
            resolve({ status: res.statusCode!, headers: res.headers, text, json: JSON.parse(text) }),
          );
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('y'.repeat(16_384));
      req.end();
    });
    expectError(r, 413, 'payload-too-large');
  });
  it('429 rate-limited with Retry-After', async () => {
    const t = await startHarness({ rateLimit: { capacity: 3, perSecond: 0.2 } });
    try {
      const rs: HttpResult[] = [];
      // Host requests without a token are limited; the owner (token) never is.
      for (let i = 0; i < 5; i++)
        rs.push(await request(t.svc.url, 'POST', '/v1/launch', { token: null, body: {} }));
      expect(rs.slice(0, 3).every((r) => r.status === 400)).toBe(true);
      expectError(rs[4], 429, 'rate-limited');
      expect(Number(rs[4]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect((await request(t.svc.url, 'GET', '/v1/health')).status).toBe(200);
    } finally {
      await t.close();
    }
  });
  it('408 request-timeout for a slow client, as JSON', async () => {
    const t = await startHarness({ limits: { headersTimeoutMs: 300, requestTimeoutMs: 300 } });
    try {
      const u = new URL(t.svc.url);
      const net = await import('node:net');
      const text = await new Promise<string>((resolve) => {
        const s = net.connect(Number(u.port), u.hostname, () =>
          s.write('POST /v1/launch HTTP/1.1\r\nHost: 127.0.0.1\r\n'),
        );
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('close', () => resolve(out));
        s.on('error', () => resolve(out));
      });
      expect(text).toMatch(/^HTTP\/1\.1 408/);
      expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({
        error: 'request-timeout',
      });
    } finally {
      await t.close();
    }
  });
});

describe('malformed body corpus', () => {
  const good = launchBody({ policy: 1 });
  const corpus: Array<[string, unknown]> = [
    ['non-JSON', '{"pdh":'],
    ['JSON null', 'null'],
    ['JSON array', '[]'],
    ['a number', '42'],
    ['empty body', ''],
    ['pdh wrong type', { ...good, pdh: 12 }],
    ['pdh bad base64', { ...good, pdh: '!'.repeat(2780) }],
    ['pdh url-safe base64', { ...good, pdh: (good.pdh as string).replace(/\+/g, '-').replace(/\//g, '_') }],
    ['pdh short', { ...good, pdh: toBase64(new Uint8Array(2083)) }],
    ['pdh long', { ...good, pdh: toBase64(new Uint8Array(2085)) }],
    ['cert-chain missing', { pdh: good.pdh, policy: 1 }],
    ['cert-chain short', { ...good, 'cert-chain': toBase64(new Uint8Array(6251)) }],
    ['cpu-id 63 bytes', { ...good, 'cpu-id': toBase64(new Uint8Array(63)) }],
    ['policy negative', { ...good, policy: -1 }],
    ['policy fraction', { ...good, policy: 1.5 }],
    ['policy too big', { ...good, policy: 2 ** 32 }],
    ['policy string', { ...good, policy: '1' }],
    ['unknown field', { ...good, extra: true }],
    ['scheme unknown', { ...good, scheme: 'amd-sev-snp' }],
    ['prototype pollution', JSON.parse('{"__proto__": {"admin": true}, "pdh": "x"}')],
    ['deep nesting', '['.repeat(5000) + ']'.repeat(5000)],
    ['all-zero PDH (not a point)', { ...good, pdh: toBase64(new Uint8Array(2084)) }],
  ];
  for (const [name, body] of corpus) {
    it(`launch: ${name}`, async () => {
      const r = await launch('vm1', typeof body === 'string' ? body : JSON.stringify(body));
      expect([400, 403]).toContain(r.status);
      expect(r.json).toEqual({
        error: expect.stringMatching(/^(bad-request|chain-not-trusted)$/),
        message: expect.any(String),
      });
    });
  }
  const vbody = validateBody();
  const vcorpus: Array<[string, unknown]> = [
    ['measurement 47 bytes', { ...vbody, measurement: toBase64(new Uint8Array(47)) }],
    ['measurement 32 bytes', { ...vbody, measurement: toBase64(new Uint8Array(32)) }],
    ['api-major 256', { ...vbody, 'api-major': 256 }],
    ['build-id missing', { ...vbody, 'build-id': undefined }],
    ['cpu-count 0', { ...vbody, 'cpu-count': 0 }],
    ['measurement with whitespace', { ...vbody, measurement: ' ' + vbody.measurement }],
  ];
  for (const [name, body] of vcorpus) {
    it(`validate: ${name}`, async () => {
      expectError(await validate(randomUUID(), body), 400, 'bad-request');
    });
  }
  it('the service still serves after the corpus', async () => {
    expect((await request(h.svc.url, 'GET', '/v1/health')).status).toBe(200);
    expect((await hostFlow(h, { vmId: 'vm1' })).validate?.status).toBe(200);
  });
});
