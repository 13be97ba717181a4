/**
 * The Trustee KBS routes SEV-SNP guests call (docs/protocol.md §15, docs/api.md "SEV-SNP guests"):
 *
 *   POST /kbs/v0/auth                                   {version, tee: "snp", extra-params} -> {nonce, extra-params} + cookie
 *   POST /kbs/v0/attest                                 {init-data?, runtime-data, tee-evidence} -> {token}
 *   GET  /kbs/v0/resource/{repository}/{type}/{tag}     -> flattened JWE for the guest's tee-pubkey
 *   any other /kbs/v0/... path                          -> 404 PluginNotFound / InvalidRequestPath
 *
 * Passed to the listener as extraRoutes with auth 'none' (a guest holds no host token), so the listener's
 * Host check, rate limit and Origin refusal come first (those answer in the listener's own
 * {"error", "message"} shape). Everything answered here is Trustee's error shape
 * {"type": ".../kbs/errors/<Kind>", "detail"} with the contract's status (app/contract/kbs.ts): never a
 * stack, never the owner's rules. The session travels in the `kbs-session-id` cookie only.
 */
import type * as http from 'node:http';
import { TLSSocket } from 'node:tls';
import {
  KBS_CHALLENGE_EXTRA_PARAMS,
  KBS_ERROR_TYPE_PREFIX,
  KBS_RESOURCE_SEGMENT,
  KBS_SESSION_COOKIE,
  kbsErrorBody,
  parseKbsAttestRequest,
  parseKbsAuthRequest,
  snpCertTypeName,
  type KbsAttestRequest,
} from '../../app/contract/kbs';
import {
  isKbsProtocolError,
  KBS_ERROR_KINDS,
  KbsProtocolError,
  type KbsErrorKind,
} from '../../app/kbs/errors';
import { KbsRefusal, type KbsAttestInput, type KbsService } from '../services/kbs-service';
import type { Ctx, Route } from './server';
import { BodyTooLarge, BodyUnreadable, readBodyLimited } from './body';

/** The body limit of the KBS routes: an attest with a VCEK, ASK and ARK as number arrays is ~25 KiB. */
export const KBS_ROUTE_BODY_BYTES = 64 * 1024;

const HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

function send(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  extra: Record<string, string | string[]> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { ...HEADERS, ...extra, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Our own kinds beyond Trustee's (docs/api.md lists them as deliberate differences). */
type ReplyKind =
  KbsErrorKind | 'TooManyRequests' | 'PayloadTooLarge' | 'ServiceUnavailable' | 'InternalError';

function sendKbsError(
  res: http.ServerResponse,
  kind: ReplyKind,
  detail: string,
  extra: Record<string, string> = {},
): void {
  if ((KBS_ERROR_KINDS as readonly string[]).includes(kind)) {
    const { status, body } = kbsErrorBody(kind as KbsErrorKind, detail);
    send(res, status, body, extra);
    return;
  }
  const status =
    kind === 'TooManyRequests'
      ? 429
      : kind === 'PayloadTooLarge'
        ? 413
        : kind === 'ServiceUnavailable'
          ? 503
          : 500;
  send(res, status, { type: `${KBS_ERROR_TYPE_PREFIX}/${kind}`, detail }, extra);
}

/** Reads the body up to the limit (a larger one is cut off and answered 413). */
async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return await readBodyLimited(req, limit);
  } catch (e) {
    if (e instanceof BodyUnreadable) throw new KbsProtocolError('AttestationError', e.message);
    throw e;
  }
}

/** The kbs-session-id cookie's value, if the request carries one. */
export function sessionCookie(req: http.IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== KBS_SESSION_COOKIE) continue;
    const v = part.slice(eq + 1).trim();
    // A session id is 43 base64url characters; anything else names no session.
    return /^[A-Za-z0-9_-]{1,128}$/.test(v) ? v : '';
  }
  return undefined;
}

function setCookie(req: http.IncomingMessage, id: string, maxAgeSeconds: number): string {
  const secure = req.socket instanceof TLSSocket ? '; Secure' : '';
  return `${KBS_SESSION_COOKIE}=${id}; Path=/kbs; Max-Age=${Math.max(1, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Strict${secure}`;
}

/** The contract's attest body as the service's domain input. */
function attestInputOf(b: KbsAttestRequest): KbsAttestInput {
  const ev = b['tee-evidence'];
  const chain = ev.primary_evidence.cert_chain;
  return {
    nonce: b['runtime-data'].nonce,
    teePubkey: b['runtime-data']['tee-pubkey'],
    additionalEvidence: ev.additional_evidence,
    report: ev.primary_evidence.attestation_report,
    certChain: chain
      ? chain.map((c) => ({
          certType: snpCertTypeName(c.cert_type),
          data: Uint8Array.from(c.data),
        }))
      : undefined,
  };
}

/** The routes over a KbsService (ListenerOptions.extraRoutes). */
export function kbsRoutes(service: KbsService, log: (line: string) => void = () => {}): Route[] {
  const guard =
    (fn: (ctx: Ctx) => Promise<void>) =>
    async (ctx: Ctx): Promise<void> => {
      try {
        await fn(ctx);
      } catch (e) {
        if (e instanceof KbsRefusal) {
          const extra: Record<string, string> = {};
          if (e.retryAfterSeconds !== undefined) extra['Retry-After'] = String(e.retryAfterSeconds);
          sendKbsError(ctx.res, e.kind === 'Internal' ? 'InternalError' : e.kind, e.guestDetail, extra);
        } else if (e instanceof BodyTooLarge) {
          sendKbsError(ctx.res, 'PayloadTooLarge', `the body is larger than ${KBS_ROUTE_BODY_BYTES} bytes`, {
            Connection: 'close',
          });
        } else if (isKbsProtocolError(e)) {
          // Parse errors of the guest's own body: plain words about what it sent.
          sendKbsError(ctx.res, e.kind, e.hostMessage);
        } else {
          log(`kbs: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          sendKbsError(ctx.res, 'InternalError', 'internal error');
        }
      }
    };
  const route = (method: string, pattern: RegExp, handle: (ctx: Ctx) => Promise<void>): Route => ({
    method,
    pattern,
    auth: 'none',
    handle: guard(handle),
  });
  const notFound = async (ctx: Ctx): Promise<void> => {
    ctx.req.resume();
    const path = ctx.url.pathname;
    const plugin = path.startsWith('/kbs/v0/') ? (path.slice('/kbs/v0/'.length).split('/')[0] ?? '') : '';
    if (plugin === 'resource' || plugin === 'auth' || plugin === 'attest' || plugin === '') {
      throw new KbsProtocolError(
        'InvalidRequestPath',
        `${ctx.req.method} ${ctx.url.pathname} is not a KBS route`,
      );
    }
    throw new KbsProtocolError('PluginNotFound', `no KBS plugin '${plugin.slice(0, 64)}'`);
  };
  const catchAll = /^\/kbs(?:\/.*)?$/;
  return [
    route('POST', /^\/kbs\/v0\/auth$/, async (ctx) => {
      parseKbsAuthRequest((await readBody(ctx.req, KBS_ROUTE_BODY_BYTES)).toString('utf8'));
      const out = await service.auth(ctx.client);
      send(
        ctx.res,
        200,
        // Trustee's challenge carries "" here; guests then hash with SHA-384, their default.
        { nonce: out.nonce, 'extra-params': KBS_CHALLENGE_EXTRA_PARAMS },
        { 'Set-Cookie': setCookie(ctx.req, out.sessionId, (out.expiresAt - Date.now()) / 1000) },
      );
    }),
    route('POST', /^\/kbs\/v0\/attest$/, async (ctx) => {
      const id = sessionCookie(ctx.req);
      const body = parseKbsAttestRequest((await readBody(ctx.req, KBS_ROUTE_BODY_BYTES)).toString('utf8'));
      // A guest that hangs up while the owner decides stops the wait.
      const gone = new AbortController();
      ctx.res.on('close', () => {
        if (!ctx.res.writableEnded) gone.abort();
      });
      const out = await service.attest(id, attestInputOf(body), ctx.client, gone.signal);
      send(
        ctx.res,
        200,
        { token: out.token },
        // The cookie lives as long as the token it now stands for.
        id ? { 'Set-Cookie': setCookie(ctx.req, id, (out.expiresAt - Date.now()) / 1000) } : {},
      );
    }),
    route('GET', /^\/kbs\/v0\/resource\/([^/]+)\/([^/]+)\/([^/]+)$/, async (ctx) => {
      const [repository, type, tag] = ctx.params as [string, string, string];
      if (![repository, type, tag].every((s) => KBS_RESOURCE_SEGMENT.test(s))) {
        throw new KbsProtocolError(
          'InvalidRequestPath',
          'a resource path is repository/type/tag of plain names',
        );
      }
      const jwe = await service.resource(sessionCookie(ctx.req), repository, type, tag, ctx.client);
      send(ctx.res, 200, jwe);
    }),
    // Every other /kbs path and method: Trustee's 404 shape, not the listener's.
    ...['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'].map((m) => route(m, catchAll, notFound)),
  ];
}
