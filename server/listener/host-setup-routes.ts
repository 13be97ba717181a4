/**
 * Owner routes for host setup (extraRoutes, behind the owner token like the bundle routes):
 *
 *   GET  /v1/vm/{vmid}/host-setup?row=N&family-id=HEX&image-id=HEX&guest-svn=N&author-key=yes
 *        → HostSetup JSON: domainXml, hostCommand, notes and, for SEV-SNP, snp {rows, idKeyDigest, idBlock, files}
 *   POST /v1/vm/{vmid}/snp-keys  {"author-key"?: boolean, "replace"?: boolean}
 *        → the VM's ID key digest (created on first call; the key stays in the keychain), trusted by the profile
 *
 * Errors: 404 unknown-vm, 400 bad-request (a bad query, a row that is not the profile's, an SEV profile).
 */
import type * as http from 'node:http';
import { z } from 'zod';
import { ApiError, describeZodError } from '../../app/contract/rest';
import type { HostSetupOptions } from '../../app/host-setup';
import { VmIdSchema } from '../../app/profile';
import type { HostSetupService } from '../services/host-setup-service';
import type { Route } from './server';
import { BodyTooLarge, BodyUnreadable, mediaType, readBodyLimited } from './body';

const hex16 = /^[0-9a-f]{32}$/;
const MAX_BODY = 4096;

function sendJson(res: http.ServerResponse, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(200, {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The ID block options from the query string; anything malformed is a 400 that names it. */
export function hostSetupOptionsFromQuery(q: URLSearchParams): HostSetupOptions {
  const known = new Set(['row', 'family-id', 'image-id', 'guest-svn', 'author-key']);
  for (const k of q.keys()) {
    if (!known.has(k)) throw new ApiError('bad-request', `unknown query parameter '${k}'`);
  }
  const out: HostSetupOptions = {};
  const int = (name: string, max: number): number | undefined => {
    const v = q.get(name);
    if (v === null) return undefined;
    if (!/^\d{1,10}$/.test(v) || Number(v) > max) {
      throw new ApiError('bad-request', `${name} must be an integer in 0..${max}, got '${v.slice(0, 20)}'`);
    }
    return Number(v);
  };
  const row = int('row', 4095);
  if (row !== undefined) out.row = row;
  const svn = int('guest-svn', 0xffffffff);
  if (svn !== undefined) out.guestSvn = svn;
  for (const [name, key] of [
    ['family-id', 'familyId'],
    ['image-id', 'imageId'],
  ] as const) {
    const v = q.get(name);
    if (v === null) continue;
    if (!hex16.test(v))
      throw new ApiError('bad-request', `${name} must be 16 bytes in lower-case hex (32 digits)`);
    out[key] = v;
  }
  const author = q.get('author-key');
  if (author !== null) {
    if (author !== 'yes' && author !== 'no')
      throw new ApiError('bad-request', "author-key must be 'yes' or 'no'");
    out.authorKey = author === 'yes';
  }
  return out;
}

const SnpKeysBodySchema = z
  .object({ 'author-key': z.boolean().optional(), replace: z.boolean().optional() })
  .strict();

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  if (mediaType(req) !== 'application/json') {
    req.resume();
    throw new ApiError('unsupported-media-type', 'the body must be application/json');
  }
  let raw: Buffer;
  try {
    raw = await readBodyLimited(req, MAX_BODY);
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new ApiError('payload-too-large', e.message);
    if (e instanceof BodyUnreadable) throw new ApiError('bad-request', e.message);
    throw e;
  }
  const text = raw.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError('bad-request', 'the body is not valid JSON');
  }
}

function vmIdOf(raw: string): string {
  if (!VmIdSchema.safeParse(raw).success) throw new ApiError('unknown-vm', 'no VM with that id');
  return raw;
}

/** The host setup routes over a HostSetupService. */
export function hostSetupRoutes(service: HostSetupService): Route[] {
  return [
    {
      method: 'GET',
      pattern: /^\/v1\/vm\/([^/]+)\/host-setup$/,
      auth: 'owner',
      handle: async (ctx) => {
        const id = vmIdOf(ctx.params[0]!);
        sendJson(ctx.res, await service.get(id, hostSetupOptionsFromQuery(ctx.url.searchParams)));
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/vm\/([^/]+)\/snp-keys$/,
      auth: 'owner',
      handle: async (ctx) => {
        const id = vmIdOf(ctx.params[0]!);
        const parsed = SnpKeysBodySchema.safeParse(await readJson(ctx.req));
        if (!parsed.success) throw new ApiError('bad-request', describeZodError(parsed.error));
        const b = parsed.data;
        sendJson(
          ctx.res,
          await service.snpKeys(id, {
            ...(b['author-key'] !== undefined ? { authorKey: b['author-key'] } : {}),
            ...(b.replace !== undefined ? { replace: b.replace } : {}),
          }),
        );
      },
    },
  ];
}
