/**
 * The simulated guest's HTTP behaviour against a scripted KBS on 127.0.0.1 (the real service is tested in
 * test/kbs/): what it sends, its cookie handling, guest-components' retries, typed errors, TLS pinning.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_SNP_POLICY, sha384, SimulatedSnpFirmware, type SimulatedSnpGuest } from './snp-firmware';
import { KbsClientError, SnpGuestClient } from './snp-guest';
import { makeKbsJwe } from '../../test/helpers/kbs-jwe';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}
type Handler = (req: Seen, res: ServerResponse, client: SnpGuestClient) => void;

let guest: SimulatedSnpGuest;
let server: Server;
let base: string;
let handler: Handler;
let current: SnpGuestClient;
const seen: Seen[] = [];

const kbsError = (res: ServerResponse, status: number, kind: string, detail: string) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ type: `https://github.com/confidential-containers/kbs/errors/${kind}`, detail }));
};
const jwt = (claims: object) =>
  `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;

/** A well-behaved KBS: auth sets a cookie, attest answers a JWT, resources need the cookie. */
const honest: Handler = (req, res, client) => {
  if (req.url === '/kbs/v0/auth') {
    res.writeHead(200, {
      'content-type': 'application/json',
      'set-cookie': 'kbs-session-id=s1; Path=/kbs/v0; HttpOnly',
    });
    return res.end(JSON.stringify({ nonce: 'bm9uY2U=', 'extra-params': '' }));
  }
  if (req.url === '/kbs/v0/attest') {
    if (req.headers.cookie !== 'kbs-session-id=s1') return kbsError(res, 401, 'Unauthorized', 'no session');
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ token: jwt({ exp: Math.floor(Date.now() / 1000) + 300 }) }));
  }
  if (req.url?.startsWith('/kbs/v0/resource/')) {
    if (req.headers.cookie !== 'kbs-session-id=s1') return kbsError(res, 401, 'Unauthorized', 'no session');
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(makeKbsJwe(client, new TextEncoder().encode('secret'))));
  }
  kbsError(res, 404, 'NotFound', 'no such path');
};

function serve(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const s = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
    };
    seen.push(s);
    handler(s, res, current);
  });
}

beforeAll(async () => {
  const fw = await SimulatedSnpFirmware.create({ product: 'Genoa', rsaModulusBits: 2048 });
  guest = fw.launch({ measurement: sha384('g'), policy: DEFAULT_SNP_POLICY });
  server = createHttpServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
afterEach(() => {
  seen.length = 0;
  current?.close();
});

const newClient = (opts: Partial<ConstructorParameters<typeof SnpGuestClient>[0]> = {}) => {
  current = new SnpGuestClient({ baseUrl: base, guest, handshakeRetryDelayMs: 10, ...opts });
  return current;
};

describe('the simulated guest over HTTP', () => {
  it('sends what guest-components sends and fetches with the cookie only', async () => {
    handler = honest;
    const c = newClient();
    const value = await c.getResource('default/key/disk');
    expect(new TextDecoder().decode(value)).toBe('secret');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'POST /kbs/v0/auth',
      'POST /kbs/v0/attest',
      'GET /kbs/v0/resource/default/key/disk',
    ]);
    const auth = JSON.parse(seen[0]!.body) as Record<string, unknown>;
    expect(auth).toMatchObject({ version: '0.4.0', tee: 'snp' });
    expect(auth['extra-params']).toBeTypeOf('object');
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(seen[2]!.headers.cookie).toBe('kbs-session-id=s1');
    expect(seen[2]!.headers.authorization).toBeUndefined();
    expect(c.token?.claims.exp).toBeTypeOf('number');
  });

  it('retries the handshake 5 times, then surfaces the typed error', async () => {
    handler = (req, res) =>
      req.url === '/kbs/v0/auth' ? kbsError(res, 401, 'AttestationFailed', 'no') : honest(req, res, current);
    const c = newClient();
    const err = await c.getResource('a/b/c').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KbsClientError);
    expect(err).toMatchObject({ stage: 'auth', status: 401, kind: 'AttestationFailed', detail: 'no' });
    expect(seen.filter((s) => s.url === '/kbs/v0/auth')).toHaveLength(5);
  });

  it('a 401 on the resource re-handshakes; three 401s in a row give up', async () => {
    let resourceCalls = 0;
    handler = (req, res, client) => {
      if (req.url.startsWith('/kbs/v0/resource/')) {
        resourceCalls++;
        if (resourceCalls === 1) return kbsError(res, 401, 'Unauthorized', 'expired');
      }
      honest(req, res, client);
    };
    const c = newClient();
    expect(new TextDecoder().decode(await c.getResource('a/b/c'))).toBe('secret');
    expect(seen.filter((s) => s.url === '/kbs/v0/auth')).toHaveLength(2);

    seen.length = 0;
    handler = (req, res, client) =>
      req.url.startsWith('/kbs/v0/resource/')
        ? kbsError(res, 401, 'Unauthorized', 'never')
        : honest(req, res, client);
    const err = await c.getResource('a/b/c').catch((e: unknown) => e);
    expect(err).toMatchObject({ stage: 'resource', status: 401 });
    expect(seen.filter((s) => s.url.startsWith('/kbs/v0/resource/'))).toHaveLength(3);
  });

  it('a 404 is not retried; a token that is not a JWT fails like Token::new', async () => {
    handler = (req, res, client) =>
      req.url.startsWith('/kbs/v0/resource/')
        ? kbsError(res, 404, 'ResourceNotFound', 'none')
        : honest(req, res, client);
    const c = newClient();
    await expect(c.getResource('x/y/z')).rejects.toMatchObject({ status: 404, kind: 'ResourceNotFound' });
    expect(seen.filter((s) => s.url.startsWith('/kbs/v0/resource/'))).toHaveLength(1);

    handler = (req, res, client) => {
      if (req.url !== '/kbs/v0/attest') return honest(req, res, client);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"token":"opaque"}');
    };
    const d = newClient({ handshakeAttempts: 1 });
    await expect(d.handshakeWithRetries()).rejects.toThrow(/not a JWT/);
  });

  it('an auth reply without extra-params is refused as the real client would', async () => {
    handler = (req, res, client) => {
      if (req.url !== '/kbs/v0/auth') return honest(req, res, client);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"nonce":"x"}');
    };
    await expect(newClient().auth()).rejects.toThrow(/extra-params/);
  });
});

describe('TLS with a pinned certificate', () => {
  let dir: string;
  let tlsServer: Server;
  let cert: string;
  let tlsBase: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'snp-guest-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=kbs.test',
        '-addext',
        'subjectAltName=DNS:kbs.test',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    tlsServer = createHttpsServer({ key: readFileSync(path.join(dir, 'key.pem')), cert }, serve);
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    tlsServer.closeAllConnections();
    await new Promise((r) => tlsServer.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('talks to the pinned certificate; refuses another fingerprint and an unknown CA', async () => {
    handler = honest;
    const fp = new X509Certificate(cert).fingerprint256;
    const ok = newClient({ baseUrl: tlsBase, tls: { ca: cert, pinnedSha256: fp } });
    expect(new TextDecoder().decode(await ok.getResource('a/b/c'))).toBe('secret');
    ok.close();

    const wrongPin = createHash('sha256').update('other').digest('hex');
    const bad = newClient({
      baseUrl: tlsBase,
      tls: { ca: cert, pinnedSha256: wrongPin },
      handshakeAttempts: 1,
    });
    await expect(bad.auth()).rejects.toMatchObject({ stage: 'transport' });
    bad.close();

    const untrusted = newClient({ baseUrl: tlsBase, handshakeAttempts: 1 });
    await expect(untrusted.auth()).rejects.toMatchObject({ stage: 'transport' });
  });
});
