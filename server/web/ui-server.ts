/**
 * The browser bridge for `sev-attest serve --ui`: serves the built renderer (out/renderer) and implements
 * the IPC contract over HTTP on its own loopback port (never on the host-facing listener, which may be
 * bound wider or tunnelled):
 *   POST /ui/api/<channel>  JSON argument list → IpcResponse (same zod schemas as Electron IPC, dispatch.ts)
 *   GET  /ui/events         server-sent events, one `event:` per EventChannels name
 *   PUT  /ui/upload         artifact bytes (browser import), `?importId&kind&name` (name: the file's name,
 *                           checked by uploadName); at most maxUploadBytes (413 payload-too-large)
 * Authentication: the owner token (login form) or a one-time login link, exchanged once for an HttpOnly,
 * SameSite=Strict session cookie. CSRF: that cookie, a required custom header and an Origin check. The
 * sign-in form carries its own CSRF token (double submit: a hidden field and a SameSite=Strict cookie set
 * with the page), because Chromium posts a form from a no-referrer page with `Origin: null`; wrong tokens
 * back off per client and overall (429, Retry-After, said on the page). Errors of page routes are pages.
 * DNS rebinding: the Host header must name the loopback address we listen on.
 * Slow or silent clients: header, request and keep-alive timeouts, a cap on open connections per address,
 * sockets destroyed after an error reply; one log line per refused client, never a stack.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import {
  ARTIFACT_KINDS,
  type ArtifactInspection,
  type ArtifactKind,
  type InvokeHandlers,
  type IpcResponse,
} from '../../app/contract/ipc';
import { describeBytes, MAX_ARTIFACT_BYTES } from '../services/owner-service';
import { dispatch } from '../owner-api/dispatch';
import { errorResponse } from '../owner-api/errors';
import type { UiEventBus } from '../owner-api/event-bus';
import { ConnectionCap, normalizeAddress, rawError } from '../listener/server';

export const UI_CSRF_HEADER = 'x-sev-attest-ui';
export const UI_SESSION_COOKIE = 'sev_attest_ui';
export const UI_LOGIN_CSRF_COOKIE = 'sev_attest_login';
const MAX_JSON_BODY = 1024 * 1024;
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const LOGIN_LINK_TTL_MS = 10 * 60 * 1000;
const SSE_HEARTBEAT_MS = 25_000;

/** The page policy: only our own scripts, styles and fetches; no framing, no plugins, no base tricks. */
export const UI_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface UploadMeta {
  importId: string;
  kind: ArtifactKind;
  /** The browser file's name (display only; see uploadName). */
  name: string;
  /** Content-Length, when the browser sent one. */
  size?: number;
}

export interface UiServerOptions {
  /** The same handlers Electron IPC registers (browser-specific overrides applied by the caller). */
  handlers: InvokeHandlers;
  events: UiEventBus;
  /** The built renderer (electron-vite's out/renderer). */
  rendererDir: string;
  /** The owner token; the login form compares against it in constant time. */
  ownerToken: string;
  /**
   * Stores an uploaded artifact (hashing, progress events, cancellation by importId). Stopping early
   * (too large, cancelled) must not destroy the request: the server still answers with the reason.
   */
  importUpload(body: AsyncIterable<Uint8Array>, meta: UploadMeta): Promise<ArtifactInspection>;
  /** Largest upload (default MAX_ARTIFACT_BYTES, 2 GiB); larger ones are answered 413 payload-too-large. */
  maxUploadBytes?: number;
  /** Loopback only: 127.0.0.1 (default), ::1 or localhost. */
  host?: string;
  port?: number;
  log?: (line: string) => void;
  /** Time to receive request headers (default 10 s). */
  headersTimeoutMs?: number;
  /** Time to receive a whole request other than an upload (default 30 s; sign-in bodies: 10 s). */
  requestTimeoutMs?: number;
  /** Idle keep-alive sockets are closed after this (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Open connections per client address (default 64). */
  maxConnectionsPerAddress?: number;
  /** Sign-in back-off (defaults: 5 wrong tokens per client, 20 overall, then doubling waits). */
  signInBackoff?: Partial<SignInBackoffOptions>;
}

export interface SignInBackoffOptions {
  /** Wrong tokens a client may send before it must wait. */
  perClientFree: number;
  /** Wrong tokens from all clients together before everyone must wait. */
  overallFree: number;
  /** The first wait (seconds); it doubles with each further wrong token, up to maxWaitSeconds. */
  firstWaitSeconds: number;
  maxWaitSeconds: number;
  /** Failures are forgotten after this long without one (ms). */
  forgetAfterMs: number;
}

const DEFAULT_BACKOFF: SignInBackoffOptions = {
  perClientFree: 5,
  overallFree: 20,
  firstWaitSeconds: 1,
  maxWaitSeconds: 60,
  forgetAfterMs: 15 * 60_000,
};

interface Failures {
  count: number;
  last: number;
  blockedUntil: number;
}

/** Wrong sign-in tokens per client address and overall; a client (or everyone) waits once over budget. */
export class SignInBackoff {
  private readonly opts: SignInBackoffOptions;
  private readonly perClient = new Map<string, Failures>();
  private readonly overall: Failures = { count: 0, last: 0, blockedUntil: 0 };
  constructor(
    opts: Partial<SignInBackoffOptions> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_BACKOFF, ...opts };
  }

  /** Seconds this client must still wait (0: it may try). */
  waitSeconds(client: string): number {
    const now = this.now();
    const f = this.perClient.get(client);
    const until = Math.max(f?.blockedUntil ?? 0, this.overall.blockedUntil);
    return until > now ? Math.ceil((until - now) / 1000) : 0;
  }

  failed(client: string): void {
    const now = this.now();
    if (this.perClient.size > 10_000) this.perClient.clear();
    const f = this.perClient.get(client) ?? { count: 0, last: 0, blockedUntil: 0 };
    this.perClient.set(client, f);
    for (const [x, free] of [
      [f, this.opts.perClientFree],
      [this.overall, this.opts.overallFree],
    ] as const) {
      if (now - x.last > this.opts.forgetAfterMs) x.count = 0;
      x.count++;
      x.last = now;
      if (x.count >= free) {
        const wait = Math.min(this.opts.maxWaitSeconds, this.opts.firstWaitSeconds * 2 ** (x.count - free));
        x.blockedUntil = now + wait * 1000;
      }
    }
  }

  succeeded(client: string): void {
    this.perClient.delete(client);
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time string comparison (hashing first makes the lengths equal). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(csrf: string, message?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SEV Attest: sign in</title></head>
<body><main>
<h1>SEV Attest</h1>
<p>Paste the owner token (printed by <code>sev-attest serve</code>, or in its data directory as <code>owner-token</code>).</p>
${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/ui/login">
<input type="hidden" name="csrf" value="${escapeHtml(csrf)}">
<label for="token">Owner token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
</main></body></html>`;
}

function errorPage(title: string, message: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SEV Attest: ${escapeHtml(title)}</title></head>
<body><main>
<h1>${escapeHtml(title)}</h1>
<p role="alert">${escapeHtml(message)}</p>
<p><a href="/ui/login">Sign in</a></p>
</main></body></html>`;
}

/** Longest upload name kept (characters). */
export const MAX_UPLOAD_NAME = 255;

/**
 * The name an upload is stored under: the file's base name without control characters or path
 * separators, trimmed and at most MAX_UPLOAD_NAME characters; 'upload' when nothing is left.
 */
export function uploadName(raw: string | null | undefined): string {
  const base = (raw ?? '').split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '').trim();
  const short = Array.from(clean).slice(0, MAX_UPLOAD_NAME).join('');
  return short === '' || short === '.' || short === '..' ? 'upload' : short;
}

/** The client aborted, or its body did not arrive in time. */
class ClientGone extends Error {}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class UiServer {
  private readonly server: http.Server;
  private readonly sessions = new Map<string, number>();
  private readonly loginLinks = new Map<string, number>();
  private readonly sseClients = new Set<ServerResponse>();
  private readonly unsubscribe: () => void;
  private readonly rendererDir: string;
  private port = 0;
  private readonly host: string;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly backoff: SignInBackoff;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: UiServerOptions) {
    this.log = opts.log ?? (() => {});
    this.backoff = new SignInBackoff(opts.signInBackoff);
    this.host = opts.host ?? '127.0.0.1';
    if (!LOOPBACK.has(this.host)) {
      throw new HttpError(0, 'ui-not-loopback', `the browser UI only listens on loopback, not ${this.host}`);
    }
    this.rendererDir = path.resolve(opts.rendererDir);
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((e: unknown) => this.fail(req, res, e));
    });
    const headersTimeout = opts.headersTimeoutMs ?? 10_000;
    // Whole requests: Node's own timer does not know uploads (which may take long), so readBody times
    // the other bodies (requestTimeoutMs) and the sign-in's (at most 10 s) itself.
    this.server.headersTimeout = headersTimeout;
    this.server.requestTimeout = 0;
    this.server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5_000;
    (this.server as unknown as { connectionsCheckingInterval?: number }).connectionsCheckingInterval =
      Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4)));
    const cap = new ConnectionCap(opts.maxConnectionsPerAddress ?? 64, this.log, (a) => a, 'ui');
    this.server.on('connection', (socket: Socket) => cap.admit(socket));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable || err.code === 'ECONNRESET') socket.destroy();
      else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
        rawError(socket, 408, 'request-timeout', 'the request was not received in time');
      else rawError(socket, 400, 'bad-request', 'malformed HTTP request');
    });
    this.unsubscribe = opts.events.subscribe((channel, payload) => {
      const frame = `event: ${channel}\ndata: ${JSON.stringify(payload)}\n\n`;
      for (const res of this.sseClients) res.write(frame);
    });
  }

  /** Starts listening; resolves with the base URL. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.heartbeat = setInterval(() => {
      for (const res of this.sseClients) res.write(': keep-alive\n\n');
    }, SSE_HEARTBEAT_MS);
    this.heartbeat.unref();
    return this.url;
  }

  get url(): string {
    const h = this.host === '::1' ? '[::1]' : this.host;
    return `http://${h}:${this.port}`;
  }

  /** A one-time login link (valid 10 minutes) to print for the owner. */
  createLoginUrl(): string {
    const t = randomBytes(24).toString('base64url');
    this.loginLinks.set(t, Date.now() + LOGIN_LINK_TTL_MS);
    return `${this.url}/ui/login?t=${t}`;
  }

  /** Stops accepting, ends event streams, and waits for open requests. */
  async close(): Promise<void> {
    this.unsubscribe();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const res of this.sseClients) res.end();
    this.sseClients.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private get allowedHosts(): Set<string> {
    const p = this.port;
    return new Set([`127.0.0.1:${p}`, `localhost:${p}`, `[::1]:${p}`]);
  }

  private allowedOrigins(): Set<string> {
    return new Set([...this.allowedHosts].map((h) => `http://${h}`));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 still sends Host: evil.example.
    if (!this.allowedHosts.has(req.headers.host ?? '')) {
      throw new HttpError(421, 'bad-host', 'this service answers only to its loopback address');
    }
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';

    if (url.pathname === '/ui/login') {
      if (method === 'GET') return this.loginWithLink(req, url, res);
      if (method === 'POST') return this.loginWithToken(req, res);
      throw new HttpError(405, 'method-not-allowed', 'GET or POST');
    }

    const session = this.sessionOf(req);
    const isApi = url.pathname.startsWith('/ui/');
    if (!session) {
      if (isApi) throw new HttpError(401, 'unauthorized', 'sign in with the owner token first');
      res.writeHead(303, { location: '/ui/login', 'cache-control': 'no-store' }).end();
      return;
    }

    if (url.pathname.startsWith('/ui/api/') && method === 'POST') {
      this.checkCsrf(req);
      const channel = decodeURIComponent(url.pathname.slice('/ui/api/'.length));
      const body = await this.readJson(req);
      const result = await dispatch(this.opts.handlers, channel, body);
      const status = result.ok
        ? 200
        : result.error === 'bad-arguments'
          ? 400
          : result.error === 'unknown-channel'
            ? 404
            : 200;
      return this.json(res, status, result);
    }
    if (url.pathname === '/ui/events' && method === 'GET') return this.openEvents(req, res);
    if (url.pathname === '/ui/upload' && method === 'PUT') {
      this.checkCsrf(req);
      return this.upload(url, req, res);
    }
    if (url.pathname === '/ui/logout' && method === 'POST') {
      this.checkCsrf(req);
      this.sessions.delete(session);
      res.writeHead(204, { 'set-cookie': this.cookie('', 0) }).end();
      return;
    }
    if (isApi) throw new HttpError(404, 'not-found', `no route ${method} ${url.pathname}`);
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method-not-allowed', 'GET only');
    return this.serveStatic(url.pathname, res);
  }

  private sessionOf(req: IncomingMessage): string | undefined {
    const id = parseCookies(req.headers.cookie).get(UI_SESSION_COOKIE);
    if (!id) return undefined;
    const expires = this.sessions.get(id);
    if (expires === undefined) return undefined;
    if (expires < Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return id;
  }

  private cookie(value: string, maxAgeS: number): string {
    // No Secure: the bridge is plain HTTP on loopback. HttpOnly keeps it from page scripts.
    return `${UI_SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeS}`;
  }

  private startSession(res: ServerResponse): void {
    const id = randomBytes(32).toString('base64url');
    this.sessions.set(id, Date.now() + SESSION_TTL_MS);
    res
      .writeHead(303, {
        location: '/',
        'set-cookie': this.cookie(id, SESSION_TTL_MS / 1000),
        'cache-control': 'no-store',
      })
      .end();
  }

  private loginWithLink(req: IncomingMessage, url: URL, res: ServerResponse): void {
    const t = url.searchParams.get('t');
    if (t !== null) {
      const expires = this.loginLinks.get(t);
      this.loginLinks.delete(t); // one use, valid or not
      if (expires !== undefined && expires >= Date.now()) return this.startSession(res);
      return this.loginForm(
        req,
        res,
        401,
        'That sign-in link was already used or has expired. Paste the owner token below instead.',
      );
    }
    this.loginForm(req, res, 200);
  }

  /** The sign-in page with a fresh form CSRF token (also set as a SameSite=Strict cookie). */
  private loginForm(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    message?: string,
    headers: Record<string, string> = {},
  ): void {
    void req;
    const csrf = randomBytes(24).toString('base64url');
    this.html(res, status, loginPage(csrf, message), {
      ...headers,
      'set-cookie': `${UI_LOGIN_CSRF_COOKIE}=${csrf}; HttpOnly; SameSite=Strict; Path=/ui/login; Max-Age=3600`,
    });
  }

  private async loginWithToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = normalizeAddress(req.socket.remoteAddress);
    const wait = this.backoff.waitSeconds(client);
    if (wait > 0) {
      req.resume();
      return this.loginForm(
        req,
        res,
        429,
        `Too many wrong owner tokens were tried. Wait ${wait} second${wait === 1 ? '' : 's'}, then try again.`,
        { 'retry-after': String(wait), connection: 'close' },
      );
    }
    const raw = (await this.readBody(req, 16 * 1024, 10_000)).toString('utf8');
    const form = new URLSearchParams(raw);
    this.checkLoginCsrf(req, form.get('csrf'));
    const token = form.get('token') ?? '';
    if (token.length === 0 || !sameSecret(token.trim(), this.opts.ownerToken)) {
      this.backoff.failed(client);
      this.log(`ui: a sign-in from ${client} with a wrong owner token was refused`);
      return this.loginForm(req, res, 401, 'That is not the owner token. Check it and paste it again.');
    }
    this.backoff.succeeded(client);
    this.startSession(res);
  }

  /**
   * The sign-in form's CSRF check: a browser must say the post is same-origin (Sec-Fetch-Site), and
   * either send one of our origins or (Chromium's `Origin: null` from a no-referrer page) the form's token
   * matching its cookie.
   */
  private checkLoginCsrf(req: IncomingMessage, formToken: string | null): void {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') {
      throw new HttpError(403, 'bad-origin', 'the sign-in form must be sent from this page');
    }
    const origin = req.headers.origin;
    if (origin !== undefined && this.allowedOrigins().has(origin)) return;
    if (origin !== undefined && origin !== 'null') {
      throw new HttpError(403, 'bad-origin', 'cross-origin requests are refused');
    }
    const cookie = parseCookies(req.headers.cookie).get(UI_LOGIN_CSRF_COOKIE);
    if (!cookie || !formToken || !sameSecret(cookie, formToken)) {
      throw new HttpError(
        403,
        'bad-origin',
        'the sign-in form expired or was not sent from this page: reload the sign-in page and try again',
      );
    }
  }

  /** CSRF: SameSite=Strict already keeps the cookie off cross-site requests; these are belt and braces. */
  private checkCsrf(req: IncomingMessage): void {
    if (req.headers[UI_CSRF_HEADER] !== '1') {
      throw new HttpError(403, 'csrf', `requests must carry the ${UI_CSRF_HEADER} header`);
    }
    this.checkOrigin(req);
  }

  private checkOrigin(req: IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined || !this.allowedOrigins().has(origin)) {
      throw new HttpError(403, 'bad-origin', 'cross-origin requests are refused');
    }
  }

  private async readBody(req: IncomingMessage, limit: number, timeoutMs?: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) throw new HttpError(413, 'too-large', `the body is limited to ${limit} bytes`);
    const ms = Math.min(timeoutMs ?? Infinity, this.opts.requestTimeoutMs ?? 30_000);
    // A body that does not arrive in time: the socket is destroyed (the for-await below then ends).
    const timer = setTimeout(() => req.socket.destroy(), ms);
    timer.unref();
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > limit) throw new HttpError(413, 'too-large', `the body is limited to ${limit} bytes`);
        chunks.push(chunk as Buffer);
      }
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new ClientGone();
    } finally {
      clearTimeout(timer);
    }
    if (!req.complete) throw new ClientGone();
    return Buffer.concat(chunks);
  }

  private async readJson(req: IncomingMessage): Promise<unknown> {
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('application/json')) {
      throw new HttpError(415, 'bad-request', 'send the argument list as application/json');
    }
    const text = (await this.readBody(req, MAX_JSON_BODY)).toString('utf8');
    if (text.trim() === '') return [];
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HttpError(400, 'bad-request', 'the body is not valid JSON');
    }
  }

  private openEvents(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.write(': connected\n\n');
    this.sseClients.add(res);
    req.on('close', () => this.sseClients.delete(res));
  }

  private async upload(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const importId = url.searchParams.get('importId') ?? '';
    const kind = url.searchParams.get('kind') ?? '';
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(importId) || !(ARTIFACT_KINDS as readonly string[]).includes(kind)) {
      throw new HttpError(400, 'bad-arguments', 'importId (letters, digits, - and _) and kind are required');
    }
    const len = req.headers['content-length'];
    const meta: UploadMeta = {
      importId,
      kind: kind as ArtifactKind,
      name: uploadName(url.searchParams.get('name')),
    };
    if (len !== undefined && /^\d+$/.test(len)) meta.size = Number(len);
    const max = this.opts.maxUploadBytes ?? MAX_ARTIFACT_BYTES;
    if (meta.size !== undefined && meta.size > max) {
      // Answered before the body is read; Node discards the rest, so the browser still gets this reply.
      return this.json(res, 413, {
        ok: false,
        error: 'payload-too-large',
        message: `artifacts are limited to ${describeBytes(max)}; this file has ${meta.size} bytes`,
      });
    }
    let result: IpcResponse<unknown>;
    try {
      // Stopping early must leave the socket alone: the reply below says why.
      const body = req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>;
      result = { ok: true, value: await this.opts.importUpload(body, meta) };
    } catch (e) {
      result = errorResponse(e, 'ui upload');
      // Read and drop what the browser is still sending, so it gets to read the answer.
      if (!req.complete) req.resume();
    }
    this.json(res, !result.ok && result.error === 'payload-too-large' ? 413 : 200, result);
  }

  private async serveStatic(pathname: string, res: ServerResponse): Promise<void> {
    let rel: string;
    try {
      rel = decodeURIComponent(pathname);
    } catch {
      throw new HttpError(400, 'bad-request', 'bad path');
    }
    if (rel === '/' || rel === '') rel = '/index.html';
    const file = path.resolve(this.rendererDir, `.${rel}`);
    // No escape from the renderer directory (../, encoded or not).
    if (file !== this.rendererDir && !file.startsWith(this.rendererDir + path.sep)) {
      throw new HttpError(404, 'not-found', 'not found');
    }
    let stat;
    try {
      stat = await fsp.stat(file);
    } catch {
      throw new HttpError(404, 'not-found', 'not found');
    }
    if (!stat.isFile()) throw new HttpError(404, 'not-found', 'not found');
    const type = CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, {
      'content-type': type,
      'content-length': stat.size,
      'content-security-policy': UI_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': type.startsWith('text/html') ? 'no-store' : 'private, max-age=300',
    });
    await new Promise<void>((resolve, reject) => {
      createReadStream(file).on('error', reject).pipe(res).on('finish', resolve);
    });
  }

  private html(
    res: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string> = {},
  ): void {
    res
      .writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': UI_CSP,
        'x-content-type-options': 'nosniff',
        // same-origin: a form posted from our pages carries our Origin (no-referrer made it "null").
        'referrer-policy': 'same-origin',
        'cache-control': 'no-store',
        ...headers,
      })
      .end(body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res
      .writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      })
      .end(text);
  }

  private fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    if (e instanceof ClientGone) {
      // The client went away (or was too slow): one line, no stack, nothing to answer.
      this.log(
        `ui: ${req.method} ${(req.url ?? '').split('?')[0]} from ${normalizeAddress(req.socket.remoteAddress)} was aborted or timed out`,
      );
      res.destroy();
      return;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const page = !(req.url ?? '').startsWith('/ui/') || (req.url ?? '').startsWith('/ui/login');
    if (e instanceof HttpError) {
      if (page) {
        if ((req.url ?? '').startsWith('/ui/login') && e.status === 403) {
          return this.loginForm(req, res, 403, e.message);
        }
        return this.html(res, e.status, errorPage('SEV Attest', e.message), { connection: 'close' });
      }
      this.json(res, e.status, { ok: false, error: e.code, message: e.message });
      return;
    }
    const r = errorResponse(e, 'ui server');
    this.json(res, 500, r);
  }
}
