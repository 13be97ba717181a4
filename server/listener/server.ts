/**
 * The attestation listener: a node:http(s) server for the REST contract v1. Everything a caller sends is
 * hostile until checked, in this order: Host header (DNS rebinding), per-client rate limit, route,
 * browser Origin, bearer token (constant time), content type, body size, JSON, zod schema; then the
 * services decide. Every answer that is not a success is JSON {"error", "message"}; no CORS header is
 * ever sent; slow clients time out.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import type { z } from 'zod';
import { AuditFilterSchema, AUDIT_EVENT_TYPES, type AuditEvent } from '../../app/audit';
import { isDomainError } from '../../app/errors';
import { isSevError } from '../../app/sev/errors';
import { buildOpenApiDocument } from '../../app/contract/openapi';
import {
  ApiError,
  isApiErrorCode,
  DecisionRequestSchema,
  describeZodError,
  ERROR_STATUS,
  LaunchRequestSchema,
  PinCekRequestSchema,
  ValidateRequestSchema,
  VmPutRequestSchema,
  type ApiErrorCode,
} from '../../app/contract/rest';
import { VmIdSchema } from '../../app/profile';
import { fromBase64 } from '../../app/sev/bytes';
import type { AttestationService, ClientInfo } from '../services/attestation';
import { MAX_ARTIFACT_BYTES, type OwnerService } from '../services/owner-service';
import { isBundleError } from '../../app/bundle/errors';
import { BodyTooLarge, BodyUnreadable, discardBody, mediaType, readBodyLimited } from './body';
import { clientGroup, RateLimiter, type RateLimitOptions } from './rate-limit';
import { launchAnswerOf, launchEvidenceOf, launchReportOf, validateAnswerOf } from './host-mapping';
import {
  approvalToBody,
  healthResponseOf,
  pinnedCekToBody,
  profileToVmResponse,
  vmPutResponseOf,
  vmRegistrationOf,
} from './owner-mapping';

export interface ListenerLimits {
  /** Host routes: launch/validate bodies are a few KiB (default 64 KiB). */
  hostBodyBytes: number;
  /** Owner JSON bodies, which may carry an inline firmware (default 24 MiB). */
  ownerBodyBytes: number;
  /** PUT /v1/artifacts, an owner route (default MAX_ARTIFACT_BYTES, 2 GiB). */
  artifactBytes: number;
  /** Time to receive the request headers (default 10 s). */
  headersTimeoutMs: number;
  /** Time to receive a whole request, body included (default 60 s). */
  requestTimeoutMs: number;
  /** Idle keep-alive sockets are closed after this (default 5 s). */
  keepAliveTimeoutMs: number;
  /** Open connections per client group (IPv4 /24, IPv6 /64); more are closed at once (default 64). */
  maxConnectionsPerClient: number;
  /** Open connections in all (default 1024). */
  maxConnections: number;
}

export const DEFAULT_LIMITS: ListenerLimits = {
  hostBodyBytes: 64 * 1024,
  ownerBodyBytes: 24 * 1024 * 1024,
  artifactBytes: MAX_ARTIFACT_BYTES,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxConnectionsPerClient: 64,
  maxConnections: 1024,
};

/**
 * TLS 1.2 suites offered: forward-secret AEAD only (ECDHE with AES-GCM or ChaCha20-Poly1305); no CBC,
 * no SHA-1 MACs, no static RSA. TLS 1.3 keeps its defaults (all AEAD).
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
const TLS13_CIPHERS = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

export interface ListenerOptions {
  host: string;
  port: number;
  tls?: { keyPem: string; certPem: string; fingerprint: string };
  ownerToken: string;
  /** When set, host routes require `Authorization: Bearer <hostToken>`. */
  hostToken?: string;
  /** Host header names accepted besides IP literals and localhost. */
  allowedHosts?: string[];
  attestation: AttestationService;
  owner: OwnerService;
  limits?: Partial<ListenerLimits>;
  /**
   * Per client group (IPv4 /24, IPv6 /64) plus one global budget for unauthenticated host requests;
   * false disables (default 120 burst, 40/s per client; global 4x that). Requests with the owner token
   * are never limited; requests with the host token have their own per-client budget.
   */
  rateLimit?: Omit<RateLimitOptions, 'now'> | false;
  /** Operational log lines (never secrets). */
  log?: (line: string) => void;
  version?: string;
  /** More routes (e.g. bundleRoutes() from ./bundle-routes), checked like the built-in ones. */
  extraRoutes?: Route[];
}

type Auth = 'none' | 'host' | 'owner';
export interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: string[];
  client: ClientInfo;
  url: URL;
}
export interface Route {
  method: string;
  pattern: RegExp;
  auth: Auth;
  handle(ctx: Ctx): Promise<void>;
}

const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

function jsonBody(status: number, body: unknown): string {
  return status === 204 ? '' : JSON.stringify(body);
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = jsonBody(status, body);
  res.writeHead(status, { ...JSON_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(
  res: http.ServerResponse,
  code: ApiErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, ERROR_STATUS[code], { error: code, message }, headers);
}

/**
 * A raw HTTP/1.1 JSON error on a socket the parser gave up on (timeouts, malformed requests), then the
 * socket is destroyed: the server is allowHalfOpen, so end() alone would leave the descriptor open for as
 * long as a client that never reads nor closes wants.
 */
export function rawError(socket: Socket, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: code, message });
  const reason = http.STATUS_CODES[status] ?? 'Error';
  const kill = setTimeout(() => socket.destroy(), 1000);
  kill.unref();
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => {
      clearTimeout(kill);
      socket.destroy();
    },
  );
}

/**
 * Counts open sockets per client group and closes those over the cap at once (no reply: the client is
 * already holding too many). Logs one line per refused client and minute, never a stack.
 */
export class ConnectionCap {
  private readonly open = new Map<string, number>();
  private readonly logged = new Map<string, number>();
  constructor(
    private readonly perClient: number,
    private readonly log: (line: string) => void,
    private readonly group: (address: string) => string = clientGroup,
    private readonly what = 'listener',
  ) {}

  /** Call on 'connection'; destroys the socket when its client is over the cap. */
  admit(socket: Socket): void {
    const key = this.group(normalizeAddress(socket.remoteAddress));
    const n = this.open.get(key) ?? 0;
    if (n >= this.perClient) {
      socket.destroy();
      const now = Date.now();
      if ((this.logged.get(key) ?? 0) < now - 60_000) {
        if (this.logged.size > 10_000) this.logged.clear();
        this.logged.set(key, now);
        this.log(`${this.what}: refused connections from ${key}: over ${this.perClient} open connections`);
      }
      return;
    }
    this.open.set(key, n + 1);
    socket.once('close', () => {
      const m = (this.open.get(key) ?? 1) - 1;
      if (m <= 0) this.open.delete(key);
      else this.open.set(key, m);
    });
  }
}

function digestToken(t: string): Buffer {
  return createHash('sha256').update(t, 'utf8').digest();
}

export function normalizeAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/** The Host header's host part, without port and brackets; undefined when malformed. */
export function hostHeaderName(h: string): string | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(h.trim());
  if (!m) return undefined;
  return (m[1] ?? m[2]!).toLowerCase();
}

/** The listener. start() binds; close() drains in-flight requests and ends event streams. */
export class Listener {
  private server: http.Server | https.Server | undefined;
  private readonly routes: Route[];
  private readonly limits: ListenerLimits;
  private readonly limiter: RateLimiter | undefined;
  private readonly globalLimiter: RateLimiter | undefined;
  private readonly ownerTokenDigest: Buffer;
  private readonly hostTokenDigest: Buffer | undefined;
  private readonly allowedHosts: Set<string>;
  private readonly streams = new Set<http.ServerResponse>();
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private closing = false;
  private openapi: string | undefined;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: ListenerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    const rl = opts.rateLimit === false ? undefined : (opts.rateLimit ?? { capacity: 120, perSecond: 40 });
    this.limiter = rl ? new RateLimiter(rl) : undefined;
    const global = rl?.global ?? (rl ? { capacity: rl.capacity * 4, perSecond: rl.perSecond * 4 } : false);
    this.globalLimiter = global ? new RateLimiter(global) : undefined;
    if (opts.ownerToken.length < 16) throw new Error('the owner token must be at least 16 characters');
    this.ownerTokenDigest = digestToken(opts.ownerToken);
    this.hostTokenDigest = opts.hostToken ? digestToken(opts.hostToken) : undefined;
    this.allowedHosts = new Set([
      'localhost',
      opts.host.toLowerCase(),
      ...(opts.allowedHosts ?? []).map((h) => h.toLowerCase()),
    ]);
    this.log = opts.log ?? (() => {});
    this.routes = this.buildRoutes();
  }

  /** Binds and listens; resolves with the bound address and the base URL. */
  async start(): Promise<{ port: number; host: string; url: string }> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.dispatch(req, res);
    // Node checks header/request timeouts on this interval (default 30 s): keep it below the timeouts.
    const connectionsCheckingInterval = Math.max(
      50,
      Math.min(1000, Math.floor(Math.min(this.limits.headersTimeoutMs, this.limits.requestTimeoutMs) / 4)),
    );
    const server = this.opts.tls
      ? https.createServer(
          {
            key: this.opts.tls.keyPem,
            cert: this.opts.tls.certPem,
            minVersion: 'TLSv1.2',
            ciphers: `${TLS13_CIPHERS}:${TLS12_CIPHERS}`,
            honorCipherOrder: true,
            // A TLS client that never finishes its handshake: the HTTP timeouts do not cover it yet.
            handshakeTimeout: this.limits.headersTimeoutMs,
            connectionsCheckingInterval,
          },
          handler,
        )
      : http.createServer({ connectionsCheckingInterval }, handler);
    server.headersTimeout = this.limits.headersTimeoutMs;
    server.requestTimeout = this.limits.requestTimeoutMs;
    server.keepAliveTimeout = this.limits.keepAliveTimeoutMs;
    server.maxHeadersCount = 100;
    server.maxConnections = this.limits.maxConnections;
    const cap = new ConnectionCap(this.limits.maxConnectionsPerClient, this.log);
    server.on('connection', (socket: Socket) => cap.admit(socket));
    if (this.opts.tls) {
      (server as https.Server).on('tlsClientError', (_e: Error, socket: Socket) => socket.destroy());
    }
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
        rawError(socket, 408, 'request-timeout', 'the request was not received in time');
      else if (err.code === 'HPE_HEADER_OVERFLOW')
        rawError(socket, 431, 'bad-request', 'request headers too large');
      else rawError(socket, 400, 'bad-request', 'malformed HTTP request');
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    const hostForUrl = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return {
      port: a.port,
      host: a.address,
      url: `${this.opts.tls ? 'https' : 'http'}://${hostForUrl}:${a.port}`,
    };
  }

  /** Stops accepting, waits up to drainMs for in-flight requests, ends event streams, closes sockets. */
  async close(drainMs = 5_000): Promise<void> {
    const server = this.server;
    if (!server || this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.streams) s.end();
    this.streams.clear();
    server.closeIdleConnections();
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, drainMs).unref()),
      ]);
    }
    server.closeAllConnections();
    await closed;
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.inFlight++;
    try {
      await this.handle(req, res);
    } catch (e) {
      this.answerError(res, e);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const client: ClientInfo = {
      address: normalizeAddress(req.socket.remoteAddress),
      port: req.socket.remotePort,
      hostToken: false,
    };
    if (this.closing) res.setHeader('Connection', 'close');
    // 1. Host header: IP literals and known names only (a rebinding page carries its DNS name).
    const hostName = req.headers.host === undefined ? undefined : hostHeaderName(req.headers.host);
    if (hostName === undefined || (isIP(hostName) === 0 && !this.allowedHosts.has(hostName))) {
      sendError(res, 'misdirected', 'the Host header names no address this listener serves');
      return;
    }
    // 2. Rate limits: the owner is never limited; a host with the host token has its own budget per
    // client group; everyone else shares a per-group budget and one global budget.
    const bearer = this.bearerKind(req.headers.authorization);
    client.hostToken = bearer === 'host';
    if (this.limiter && bearer !== 'owner') {
      const group = clientGroup(client.address);
      let wait: number;
      if (bearer === 'host') wait = this.limiter.take(`host-token ${group}`);
      else {
        wait = this.limiter.peek(group);
        if (wait === 0 && this.globalLimiter) wait = this.globalLimiter.take('*');
        if (wait === 0) wait = this.limiter.take(group);
      }
      if (wait > 0) {
        req.resume();
        sendError(res, 'rate-limited', 'too many requests; slow down', {
          'Retry-After': String(wait),
          Connection: 'close',
        });
        return;
      }
    }
    // 3. Route.
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://listener');
    } catch {
      sendError(res, 'bad-request', 'malformed request target');
      return;
    }
    const matches = this.routes
      .map((r) => ({ r, m: r.pattern.exec(url.pathname) }))
      .filter((x): x is { r: Route; m: RegExpExecArray } => x.m !== null);
    if (matches.length === 0) {
      req.resume();
      sendError(res, 'not-found', `no route ${url.pathname}`);
      return;
    }
    const hit = matches.find((x) => x.r.method === req.method);
    if (!hit) {
      req.resume();
      sendError(res, 'method-not-allowed', `${req.method} is not allowed on ${url.pathname}`, {
        Allow: [...new Set(matches.map((x) => x.r.method))].join(', '),
      });
      return;
    }
    // 4. Browsers: a page may not drive the listener (no CORS, and requests with an Origin are refused).
    if (req.headers.origin !== undefined || req.headers['sec-fetch-mode'] !== undefined) {
      req.resume();
      sendError(res, 'origin-not-allowed', 'requests from web pages are refused');
      return;
    }
    // 5. Bearer token.
    if (!this.authorized(hit.r.auth, req.headers.authorization)) {
      req.resume();
      sendError(
        res,
        'unauthorized',
        hit.r.auth === 'owner' ? 'the owner token is required' : 'the host token is required',
        {
          'WWW-Authenticate': 'Bearer',
        },
      );
      return;
    }
    // A host route passed the host-token check with a token: the client is that token's holder.
    client.hostToken = hit.r.auth === 'host' && this.hostTokenDigest !== undefined;
    let params: string[];
    try {
      params = hit.m.slice(1).map((p) => decodeURIComponent(p));
    } catch {
      sendError(res, 'bad-request', 'malformed path parameter');
      return;
    }
    await hit.r.handle({ req, res, params, client, url });
  }

  /** Which token the Authorization header carries (both compared in constant time). */
  private bearerKind(header: string | undefined): 'owner' | 'host' | 'none' {
    const m = header === undefined ? null : /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (!m) return 'none';
    const given = digestToken(m[1]!);
    if (timingSafeEqual(given, this.ownerTokenDigest)) return 'owner';
    if (this.hostTokenDigest && timingSafeEqual(given, this.hostTokenDigest)) return 'host';
    return 'none';
  }

  private authorized(auth: Auth, header: string | undefined): boolean {
    if (auth === 'none') return true;
    const expected = auth === 'owner' ? this.ownerTokenDigest : this.hostTokenDigest;
    if (!expected) return true;
    const m = header === undefined ? null : /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    // Hash both sides so the comparison takes the same time whatever the lengths.
    const given = digestToken(m ? m[1]! : '');
    return timingSafeEqual(given, expected) && m !== null;
  }

  /**
   * The one place a failure becomes an HTTP status: a DomainError with a REST code answers with that
   * code's status and its host-safe message; a core error the schema let through (a malformed value) is a
   * bad request; anything else is a bug (500, logged here, never shown).
   */
  private answerError(res: http.ServerResponse, e: unknown): void {
    if (e instanceof BodyTooLarge) {
      sendError(res, 'payload-too-large', e.message, { Connection: 'close' });
    } else if (isDomainError(e) && isApiErrorCode(e.code)) {
      if (e.code === 'secret-store-unavailable') this.log(`secret store unavailable: ${e.message}`);
      const headers: Record<string, string> = e instanceof ApiError ? { ...e.headers } : {};
      if (e.retryAfterSeconds !== undefined) headers['Retry-After'] = String(e.retryAfterSeconds);
      sendError(res, e.code, e.hostMessage, headers);
    } else if (isDomainError(e) && (isSevError(e) || isBundleError(e) || e.code === 'bad-arguments')) {
      // A malformed value the schema let through, or an argument a service refused: the request's fault.
      sendError(res, 'bad-request', e.message);
    } else {
      this.log(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      sendError(res, 'internal', 'internal error');
    }
  }

  /** Reads and parses a JSON body with the size limit, then validates it with the schema. */
  private async readJson<S extends z.ZodType>(
    req: http.IncomingMessage,
    limit: number,
    schema: S,
  ): Promise<z.infer<S>> {
    const type = mediaType(req);
    if (type !== 'application/json') {
      req.resume();
      throw new ApiError('unsupported-media-type', 'the body must be application/json');
    }
    const raw = await this.readBody(req, limit);
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ApiError('bad-request', 'the body is not valid JSON');
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new ApiError('bad-request', describeZodError(parsed.error));
    return parsed.data;
  }

  private async readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
    try {
      return await readBodyLimited(req, limit);
    } catch (e) {
      if (e instanceof BodyUnreadable) throw new ApiError('bad-request', e.message);
      throw e;
    }
  }

  private buildRoutes(): Route[] {
    const a = this.opts.attestation;
    const o = this.opts.owner;
    const host = this.limits.hostBodyBytes;
    const own = this.limits.ownerBodyBytes;
    const vmIdOr404 = (id: string): string => {
      if (!VmIdSchema.safeParse(id).success) throw new ApiError('unknown-vm', 'no VM with that id');
      return id;
    };
    const seg = '([^/]+)';
    const r = (method: string, path: string, auth: Auth, handle: (ctx: Ctx) => Promise<void>): Route => ({
      method,
      pattern: new RegExp(`^${path}$`),
      auth,
      handle,
    });
    const launch = async (ctx: Ctx, vmId: string | undefined) => {
      const body = await this.readJson(ctx.req, host, LaunchRequestSchema);
      const out = launchAnswerOf(
        await a.launch(vmId === undefined ? {} : { vmId }, launchEvidenceOf(body), ctx.client),
      );
      if (out.status === 202) sendJson(ctx.res, 202, out.body, { 'Retry-After': String(out.retryAfter) });
      else sendJson(ctx.res, 200, out.body);
    };
    const putVm = async (ctx: Ctx) => {
      const body = await this.readJson(ctx.req, own, VmPutRequestSchema);
      sendJson(
        ctx.res,
        200,
        vmPutResponseOf(await o.registerVm(ctx.params[0]!, vmRegistrationOf(ctx.params[0]!, body))),
      );
    };
    return [
      r('GET', '/v1/openapi\\.json', 'none', async (ctx) => {
        this.openapi ??= JSON.stringify(buildOpenApiDocument(this.opts.version));
        ctx.res.writeHead(200, { ...JSON_HEADERS, 'Content-Length': Buffer.byteLength(this.openapi) });
        ctx.res.end(this.openapi);
      }),
      r('POST', `/v1/vm/${seg}/launch`, 'host', (ctx) => launch(ctx, vmIdOr404(ctx.params[0]!))),
      r('POST', '/v1/launch', 'host', (ctx) => launch(ctx, undefined)),
      r('POST', `/v1/vm/${seg}/validate`, 'host', async (ctx) => {
        const vmId = vmIdOr404(ctx.params[0]!);
        const body = await this.readJson(ctx.req, host, ValidateRequestSchema);
        sendJson(
          ctx.res,
          200,
          validateAnswerOf(await a.validate({ vmId }, launchReportOf(body), ctx.client)),
        );
      }),
      r('POST', `/v1/connections/${seg}/validate`, 'host', async (ctx) => {
        const body = await this.readJson(ctx.req, host, ValidateRequestSchema);
        sendJson(
          ctx.res,
          200,
          validateAnswerOf(
            await a.validate({ connection: ctx.params[0]! }, launchReportOf(body), ctx.client),
          ),
        );
      }),
      r('GET', '/v1/vm', 'owner', async (ctx) =>
        sendJson(ctx.res, 200, { vms: o.listVms().map(profileToVmResponse) }),
      ),
      r('PUT', `/v1/vm/${seg}`, 'owner', putVm),
      r('POST', `/v1/vm/${seg}`, 'owner', putVm),
      r('GET', `/v1/vm/${seg}`, 'owner', async (ctx) =>
        sendJson(ctx.res, 200, profileToVmResponse(o.getVm(ctx.params[0]!))),
      ),
      r('DELETE', `/v1/vm/${seg}`, 'owner', async (ctx) => {
        await o.deleteVm(ctx.params[0]!);
        ctx.res.writeHead(204, { 'Cache-Control': 'no-store' });
        ctx.res.end();
      }),
      r('PUT', '/v1/artifacts', 'owner', async (ctx) => {
        const type = mediaType(ctx.req);
        if (type !== 'application/octet-stream') {
          ctx.req.resume();
          throw new ApiError('unsupported-media-type', 'upload the image as application/octet-stream');
        }
        const max = this.limits.artifactBytes;
        const declared = ctx.req.headers['content-length'];
        if (declared !== undefined && Number(declared) > max) {
          discardBody(ctx.req);
          throw new BodyTooLarge(max, `artifacts are limited to ${max} bytes`);
        }
        sendJson(ctx.res, 200, await o.putArtifact(ctx.req, max));
      }),
      r('GET', '/v1/approvals', 'owner', async (ctx) =>
        sendJson(ctx.res, 200, { approvals: o.listApprovals().map(approvalToBody) }),
      ),
      r('POST', `/v1/approvals/${seg}`, 'owner', async (ctx) => {
        const body = await this.readJson(ctx.req, host, DecisionRequestSchema);
        sendJson(ctx.res, 200, approvalToBody(o.decide(ctx.params[0]!, body.decision)));
      }),
      r('GET', '/v1/chips', 'owner', async (ctx) =>
        sendJson(ctx.res, 200, { chips: o.listPinnedCeks().map(pinnedCekToBody) }),
      ),
      r('PUT', `/v1/chips/${seg}/cek`, 'owner', async (ctx) => {
        const body = await this.readJson(ctx.req, host, PinCekRequestSchema);
        sendJson(
          ctx.res,
          200,
          pinnedCekToBody(await o.pinCek(ctx.params[0]!, fromBase64(body.cek), body.label)),
        );
      }),
      r('DELETE', `/v1/chips/${seg}/cek`, 'owner', async (ctx) => {
        await o.unpinCek(ctx.params[0]!);
        ctx.res.writeHead(204, { 'Cache-Control': 'no-store' });
        ctx.res.end();
      }),
      r('GET', '/v1/events', 'owner', (ctx) => this.events(ctx)),
      r('GET', '/v1/health', 'owner', async (ctx) => sendJson(ctx.res, 200, healthResponseOf(o.health()))),
      ...(this.opts.extraRoutes ?? []),
    ];
  }

  /** GET /v1/events: the log as JSON, or live as text/event-stream (Last-Event-ID resumes). */
  private async events(ctx: Ctx): Promise<void> {
    const q = ctx.url.searchParams;
    const types = q.getAll('type');
    const filterInput: Record<string, unknown> = {};
    if (types.length) filterInput.types = types;
    if (q.has('vm')) filterInput.vmId = q.get('vm');
    if (q.has('result')) filterInput.result = q.get('result');
    if (q.has('since')) filterInput.since = q.get('since');
    if (q.has('limit')) filterInput.limit = Number(q.get('limit'));
    // serve --database lists every replica's events; scope=replica this replica's own log.
    const scope = q.get('scope') === 'replica' ? 'replica' : 'all';
    const parsed = AuditFilterSchema.safeParse(filterInput);
    if (!parsed.success) {
      throw new ApiError(
        'bad-request',
        `${describeZodError(parsed.error)} (types: ${AUDIT_EVENT_TYPES.join(', ')})`,
      );
    }
    const filter = parsed.data;
    const o = this.opts.owner;
    if (!(ctx.req.headers.accept ?? '').includes('text/event-stream')) {
      sendJson(ctx.res, 200, { events: o.events(filter, scope) });
      return;
    }
    const res = ctx.res;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'keep-alive',
    });
    const write = (e: AuditEvent) => res.write(`id: ${e.seq}\nevent: audit\ndata: ${JSON.stringify(e)}\n\n`);
    const last = Number(ctx.req.headers['last-event-id']);
    if (Number.isInteger(last) && last >= 0) {
      for (const e of o.events(filter, scope)) if (e.seq > last) write(e);
    }
    res.write(': connected\n\n');
    const { limit: _limit, ...live } = filter;
    const unsubscribe = o.subscribeEvents((e) => {
      const f = live;
      if (f.types?.length && !f.types.includes(e.type)) return;
      if (f.vmId !== undefined && e.vmId !== f.vmId) return;
      if (f.result !== undefined && e.result !== f.result) return;
      write(e);
    }, scope);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    this.streams.add(res);
    // The request itself is complete; the stream is not an in-flight request for draining.
    await new Promise<void>((resolve) => {
      res.on('close', () => {
        clearInterval(heartbeat);
        unsubscribe();
        this.streams.delete(res);
        resolve();
      });
      this.inFlight--;
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
    this.inFlight++;
  }
}
