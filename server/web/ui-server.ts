/**
 * The browser bridge for `sev-attest serve --ui`: serves the built renderer (out/renderer) and implements
 * the IPC contract over HTTP on its own loopback port (never on the host-facing listener, which may be
 * bound wider or tunnelled):
 *   POST /ui/api/<channel>  JSON argument list → IpcResponse (same zod schemas as Electron IPC, dispatch.ts)
 *   GET  /ui/events         server-sent events, one `event:` per EventChannels name
 *   PUT  /ui/upload         artifact bytes (browser import), `?importId&kind&name` (name: the file's name,
 *                           checked by uploadName); at most maxUploadBytes (413 payload-too-large)
 * Authentication: the owner token (login form) or a one-time login link, exchanged once for an HttpOnly,
 * SameSite=Strict session cookie. CSRF: that cookie, a required custom header and an Origin check.
 * DNS rebinding: the Host header must name the loopback address we listen on.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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

export const UI_CSRF_HEADER = 'x-sev-attest-ui';
export const UI_SESSION_COOKIE = 'sev_attest_ui';
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

function loginPage(message?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SEV Attest: sign in</title></head>
<body><main>
<h1>SEV Attest</h1>
<p>Paste the owner token (printed by <code>sev-attest serve</code>, or in its data directory as <code>owner-token</code>).</p>
${message ? `<p role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/ui/login">
<label for="token">Owner token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button>
</form>
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

  constructor(private readonly opts: UiServerOptions) {
    this.host = opts.host ?? '127.0.0.1';
    if (!LOOPBACK.has(this.host)) {
      throw new HttpError(0, 'ui-not-loopback', `the browser UI only listens on loopback, not ${this.host}`);
    }
    this.rendererDir = path.resolve(opts.rendererDir);
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((e: unknown) => this.fail(res, e));
    });
    this.server.headersTimeout = 15_000;
    this.server.requestTimeout = 0; // uploads and SSE are long; bodies are bounded separately
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
      if (method === 'GET') return this.loginWithLink(url, res);
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

  private loginWithLink(url: URL, res: ServerResponse): void {
    const t = url.searchParams.get('t');
    if (t !== null) {
      const expires = this.loginLinks.get(t);
      this.loginLinks.delete(t); // one use, valid or not
      if (expires !== undefined && expires >= Date.now()) return this.startSession(res);
      return this.html(res, 401, loginPage('That sign-in link was already used or has expired.'));
    }
    this.html(res, 200, loginPage());
  }

  private async loginWithToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.checkOrigin(req);
    const raw = (await this.readBody(req, 16 * 1024)).toString('utf8');
    const token = new URLSearchParams(raw).get('token') ?? '';
    if (token.length === 0 || !sameSecret(token.trim(), this.opts.ownerToken)) {
      this.opts.log?.('ui: a sign-in with a wrong owner token was refused');
      return this.html(res, 401, loginPage('That is not the owner token.'));
    }
    this.startSession(res);
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

  private async readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) throw new HttpError(413, 'too-large', `the body is limited to ${limit} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw new HttpError(413, 'too-large', `the body is limited to ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
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

  private html(res: ServerResponse, status: number, body: string): void {
    res
      .writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': UI_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
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

  private fail(res: ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof HttpError) {
      this.json(res, e.status, { ok: false, error: e.code, message: e.message });
      return;
    }
    const r = errorResponse(e, 'ui server');
    this.json(res, 500, r);
  }
}
