/**
 * Owner routes for measurement bundles, kept apart from server.ts (owned by the listener engineer) until
 * they are wired in. Each route has the shape of the listener's own routes (method, pattern, auth, handle
 * with {req, res, params, url, client}); the composition root passes them as ListenerOptions.extraRoutes
 * (`extraRoutes: bundleRoutes(bundleService)`), so they get the listener's Host check, rate limit, origin
 * refusal and owner token check first.
 *
 *   GET  /v1/vm/{vmid}/bundle?cpus=1-8&cpu-signature=milan,genoa&vmsa-variant=both&format=native
 *        format: native (default) | vqsv | simple-kbs | simple-kbs-sql | csv; the body is the file itself.
 *   POST /v1/bundles   {"bundle": {...}, "vm-id"?, "name"?, "approval"?, "secrets"?} or the bundle itself
 *        200: {"vm", "warnings", "signer": {"fingerprint", "label"?}, "rows"}.
 * Bundle refusals are contract errors (rest.ts ERROR_STATUS): 400 bundle-invalid | bundle-bad-selection,
 * 422 bundle-unsigned | bundle-signature-invalid, 403 bundle-key-untrusted, 409 bundle-export-unsupported |
 * bundle-no-signing-key.
 */
import type * as http from 'node:http';
import { BUNDLE_FORMAT, MAX_BUNDLE_BYTES, type MatrixSelection } from '../../app/bundle/bundle';
import { BundleError } from '../../app/bundle/errors';
import { EXPORT_FORMATS, type ExportFormat } from '../../app/bundle/export';
import { parseCpuList, parseCpuSignatures, parseVmsaVariants } from '../../app/bundle/selection';
import { ApiError, BundleImportRequestSchema, describeZodError } from '../../app/contract/rest';
import { profileToVmResponse, secretValuesOf } from './owner-mapping';
import { VmIdSchema } from '../../app/profile';
import type { BundleService } from '../services/bundle-service';
import type { Ctx, Route } from './server';
import { BodyTooLarge, BodyUnreadable, mediaType, readBodyLimited } from './body';

/** The context the listener passes to a route handler. */
export type BundleRouteContext = Ctx;
/** A route in the listener's route-table shape (ListenerOptions.extraRoutes). */
export type BundleRoute = Route;

const HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

function send(res: http.ServerResponse, status: number, contentType: string, text: string, extra = {}): void {
  res.writeHead(status, {
    ...HEADERS,
    'Content-Type': `${contentType}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  if (mediaType(req) !== 'application/json') {
    req.resume();
    throw new ApiError('unsupported-media-type', 'the body must be application/json');
  }
  try {
    return await readBodyLimited(req, limit);
  } catch (e) {
    if (e instanceof BodyTooLarge) throw new ApiError('payload-too-large', e.message);
    if (e instanceof BodyUnreadable) throw new ApiError('bad-request', e.message);
    throw e;
  }
}

/** The selection from query parameters (absent ones fall back to the profile's). */
export function selectionFromQuery(q: URLSearchParams): { selection: MatrixSelection; format: ExportFormat } {
  const selection: MatrixSelection = {};
  const cpus = q.get('cpus');
  const sigs = q.get('cpu-signature');
  const variants = q.get('vmsa-variant');
  if (cpus !== null) selection.cpuCounts = parseCpuList(cpus);
  if (sigs !== null) selection.cpuSignatures = parseCpuSignatures(sigs);
  if (variants !== null) selection.vmsaVariants = parseVmsaVariants(variants);
  const format = (q.get('format') ?? 'native') as ExportFormat;
  if (!EXPORT_FORMATS.includes(format)) {
    throw new BundleError('bundle-bad-selection', `format must be one of ${EXPORT_FORMATS.join(', ')}`);
  }
  return { selection, format };
}

/** The two bundle routes over a BundleService (whose `owner` dependency should be the listener's). */
export function bundleRoutes(service: BundleService): BundleRoute[] {
  const guard =
    (fn: (ctx: BundleRouteContext) => Promise<void>) =>
    async (ctx: BundleRouteContext): Promise<void> => {
      try {
        await fn(ctx);
      } catch (e) {
        // Bundle codes are contract error codes (rest.ts ERROR_STATUS): the listener answers them.
        throw e instanceof BundleError ? new ApiError(e.code, e.message) : e;
      }
    };
  return [
    {
      method: 'GET',
      pattern: /^\/v1\/vm\/([^/]+)\/bundle$/,
      auth: 'owner',
      handle: guard(async (ctx) => {
        const id = ctx.params[0]!;
        if (!VmIdSchema.safeParse(id).success) throw new ApiError('unknown-vm', 'no VM with that id');
        const { selection, format } = selectionFromQuery(ctx.url.searchParams);
        const r = await service.exportProfile(id, { selection, format });
        send(ctx.res, 200, r.file.contentType, r.file.text, {
          'Content-Disposition': `attachment; filename="${id}${r.file.extension}"`,
        });
      }),
    },
    {
      method: 'POST',
      pattern: /^\/v1\/bundles$/,
      auth: 'owner',
      handle: guard(async (ctx) => {
        const raw = await readBody(ctx.req, MAX_BUNDLE_BYTES + 256 * 1024);
        let value: unknown;
        try {
          value = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new ApiError('bad-request', 'the body is not valid JSON');
        }
        const isBare =
          typeof value === 'object' &&
          value !== null &&
          (value as { format?: unknown }).format === BUNDLE_FORMAT;
        const parsed = BundleImportRequestSchema.safeParse(isBare ? { bundle: value } : value);
        if (!parsed.success) throw new ApiError('bad-request', describeZodError(parsed.error));
        const b = parsed.data;
        const out = await service.importBundle(b.bundle, {
          ...(b['vm-id'] !== undefined ? { vmId: b['vm-id'] } : {}),
          ...(b.name !== undefined ? { name: b.name } : {}),
          ...(b.approval !== undefined ? { approval: b.approval } : {}),
          ...(b.secrets !== undefined ? { secrets: secretValuesOf([b.secrets].flat()) } : {}),
        });
        send(
          ctx.res,
          200,
          'application/json',
          JSON.stringify({
            vm: profileToVmResponse(out.profile),
            warnings: out.warnings,
            signer: out.signer,
            rows: out.rows,
          }),
        );
      }),
    },
  ];
}
