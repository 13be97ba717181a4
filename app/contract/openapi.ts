/**
 * The OpenAPI 3.1 document of the REST contract, generated from the zod schemas in rest.ts (zod 4's
 * z.toJSONSchema, JSON Schema 2020-12, which OpenAPI 3.1 uses as is). Served at GET /v1/openapi.json.
 */
import { z } from 'zod';
import {
  ApprovalListResponseSchema,
  ArtifactResponseSchema,
  DecisionRequestSchema,
  ErrorBodySchema,
  HealthResponseSchema,
  LaunchRequestSchema,
  LaunchResponseSchema,
  PendingResponseSchema,
  ValidateRequestSchema,
  ValidateResponseSchema,
  VmListResponseSchema,
  VmPutRequestSchema,
  VmPutResponseSchema,
  VmResponseSchema,
  ApprovalSchema,
  BundleImportRequestSchema,
  BundleImportResponseSchema,
  PinCekRequestSchema,
  PinnedCekSchema,
  PinnedCekListResponseSchema,
} from './rest';

type Json = Record<string, unknown>;

const NAMED: Record<string, z.ZodType> = {
  Error: ErrorBodySchema,
  LaunchRequest: LaunchRequestSchema,
  LaunchResponse: LaunchResponseSchema,
  PendingResponse: PendingResponseSchema,
  ValidateRequest: ValidateRequestSchema,
  ValidateResponse: ValidateResponseSchema,
  VmPutRequest: VmPutRequestSchema,
  VmPutResponse: VmPutResponseSchema,
  Vm: VmResponseSchema,
  VmList: VmListResponseSchema,
  Artifact: ArtifactResponseSchema,
  Approval: ApprovalSchema,
  ApprovalList: ApprovalListResponseSchema,
  DecisionRequest: DecisionRequestSchema,
  BundleImportRequest: BundleImportRequestSchema,
  BundleImportResponse: BundleImportResponseSchema,
  Health: HealthResponseSchema,
  PinCekRequest: PinCekRequestSchema,
  PinnedCek: PinnedCekSchema,
  PinnedCekList: PinnedCekListResponseSchema,
};

function rewriteRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(rewriteRefs);
  if (v && typeof v === 'object') {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) {
      out[k] =
        k === '$ref' && typeof x === 'string'
          ? x.replace('#/$defs/', '#/components/schemas/')
          : rewriteRefs(x);
    }
    return out;
  }
  return v;
}

function componentSchemas(): Json {
  const schemas: Json = {};
  for (const [name, schema] of Object.entries(NAMED)) {
    const js = z.toJSONSchema(schema, {
      target: 'draft-2020-12',
      io: 'input',
      unrepresentable: 'any',
    }) as Json;
    const defs = (js.$defs ?? {}) as Json;
    for (const [k, d] of Object.entries(defs)) schemas[k] = rewriteRefs(d);
    if (!defs[name]) {
      const { $schema: _s, $defs: _d, ...rest } = js;
      schemas[name] = rewriteRefs(rest);
    }
  }
  return schemas;
}

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string): Json => ({ 'application/json': { schema: ref(name) } });
const err = (codes: string): Json => ({ description: `error: ${codes}`, content: json('Error') });
const body = (name: string): Json => ({ required: true, content: json(name) });

const COMMON_ERRORS = {
  '400': err('bad-request'),
  '401': err('unauthorized'),
  '413': err('payload-too-large'),
  '421': err('misdirected'),
  '429': err('rate-limited (with Retry-After)'),
};

function query(name: string, description: string): Json {
  return { name, in: 'query', required: false, schema: { type: 'string' }, description };
}

function pathParam(name: string, description: string): Json {
  return { name, in: 'path', required: true, schema: { type: 'string' }, description };
}

/** Builds the OpenAPI 3.1 document (plain JSON). */
export function buildOpenApiDocument(version = '0.1.0'): Json {
  const vmid = pathParam('vmid', 'the owner-assigned VM id');
  const launch = (withVm: boolean): Json => ({
    post: {
      tags: ['host'],
      summary: withVm ? 'Start a launch for a registered VM' : 'Start a launch without a VM id',
      security: [{}, { hostToken: [] }],
      ...(withVm ? { parameters: [vmid] } : {}),
      requestBody: body('LaunchRequest'),
      responses: {
        '200': { description: 'the launch session', content: json('LaunchResponse') },
        '202': {
          description: 'the owner has not decided yet; repeat the same request after Retry-After seconds',
          headers: { 'Retry-After': { schema: { type: 'integer' } } },
          content: json('PendingResponse'),
        },
        '403': err(
          'chain-not-trusted | policy-not-allowed | cpu-id-not-allowed | cpu-id-unproven | cek-unknown-chip | denied',
        ),
        '404': err('unknown-vm'),
        '502': err('kds-unavailable (with Retry-After)'),
        ...COMMON_ERRORS,
      },
    },
  });
  const validate = (param: Json | null): Json => ({
    post: {
      tags: ['host'],
      summary: 'Report the launch measurement; on success receive the secret to inject',
      security: [{}, { hostToken: [] }],
      ...(param ? { parameters: [param] } : {}),
      requestBody: body('ValidateRequest'),
      responses: {
        '200': {
          description: 'the packaged secret (virsh domsetlaunchsecstate)',
          content: json('ValidateResponse'),
        },
        '403': err('measurement-mismatch | policy-mismatch | api-too-old | build-not-allowed | denied'),
        '404': err('unknown-connection'),
        '409': err('connection-used'),
        '410': err('connection-expired'),
        ...COMMON_ERRORS,
      },
    },
  });
  const owner = (summary: string, extra: Json): Json => ({
    tags: ['owner'],
    summary,
    security: [{ ownerToken: [] }],
    ...extra,
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'SEV Attest listener',
      version,
      description:
        'The guest owner attestation service for AMD SEV and SEV-ES. Binary values are standard base64; every error is {"error": code, "message": text}.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    components: {
      schemas: componentSchemas(),
      securitySchemes: {
        ownerToken: { type: 'http', scheme: 'bearer', description: 'the owner token' },
        hostToken: { type: 'http', scheme: 'bearer', description: 'the optional host token' },
      },
    },
    paths: {
      '/v1/vm/{vmid}/launch': launch(true),
      '/v1/launch': launch(false),
      '/v1/vm/{vmid}/validate': validate(vmid),
      '/v1/connections/{connection}/validate': validate(pathParam('connection', 'the connection id')),
      '/v1/vm': {
        get: owner('List VMs', { responses: { '200': { description: 'VMs', content: json('VmList') } } }),
      },
      '/v1/vm/{vmid}': {
        put: owner('Register or replace a VM', {
          parameters: [vmid],
          requestBody: body('VmPutRequest'),
          responses: { '200': { description: 'stored', content: json('VmPutResponse') }, ...COMMON_ERRORS },
        }),
        post: owner('Register or replace a VM (same as PUT)', {
          parameters: [vmid],
          requestBody: body('VmPutRequest'),
          responses: { '200': { description: 'stored', content: json('VmPutResponse') }, ...COMMON_ERRORS },
        }),
        get: owner('One VM (secret values are never returned)', {
          parameters: [vmid],
          responses: { '200': { description: 'the VM', content: json('Vm') }, '404': err('unknown-vm') },
        }),
        delete: owner('Delete a VM and its secrets', {
          parameters: [vmid],
          responses: { '204': { description: 'deleted' }, '404': err('unknown-vm') },
        }),
      },
      '/v1/artifacts': {
        put: owner('Upload a firmware image', {
          requestBody: { required: true, content: { 'application/octet-stream': { schema: {} } } },
          responses: { '200': { description: 'stored', content: json('Artifact') }, ...COMMON_ERRORS },
        }),
      },
      '/v1/approvals': {
        get: owner('Pending and recent approvals', {
          responses: { '200': { description: 'approvals', content: json('ApprovalList') } },
        }),
      },
      '/v1/approvals/{id}': {
        post: owner('Approve or deny a launch', {
          parameters: [pathParam('id', 'the approval id')],
          requestBody: body('DecisionRequest'),
          responses: {
            '200': { description: 'decided', content: json('Approval') },
            '404': err('unknown-approval'),
            '409': err('approval-decided'),
          },
        }),
      },
      '/v1/chips': {
        get: owner('Chips whose key-server CEK the owner pinned', {
          responses: { '200': { description: 'pinned CEKs', content: json('PinnedCekList') } },
        }),
      },
      '/v1/chips/{chipid}/cek': {
        put: owner("Pin a chip's key-server CEK (offline owners); it proves that chip's cpu-id", {
          parameters: [pathParam('chipid', 'the chip id (cpu0-id), 128 hex digits')],
          requestBody: body('PinCekRequest'),
          responses: { '200': { description: 'pinned', content: json('PinnedCek') }, ...COMMON_ERRORS },
        }),
        delete: owner("Remove a chip's pinned CEK", {
          parameters: [pathParam('chipid', 'the chip id (cpu0-id), 128 hex digits')],
          responses: { '204': { description: 'unpinned' }, '404': err('not-found') },
        }),
      },
      '/v1/events': {
        get: owner('The audit log (JSON, or text/event-stream for live events)', {
          responses: {
            '200': {
              description: 'events',
              content: {
                'application/json': { schema: {} },
                'text/event-stream': { schema: { type: 'string' } },
              },
            },
          },
        }),
      },
      '/v1/health': {
        get: owner('Liveness, TLS fingerprint and counters', {
          responses: { '200': { description: 'ok', content: json('Health') } },
        }),
      },
      '/v1/vm/{vmid}/bundle': {
        get: owner("Export the VM's signed measurement bundle (docs/bundles.md)", {
          parameters: [
            vmid,
            query('cpus', "vCPU counts: 1-8, 1,2,4 or 1-4,8 (default: the profile's)"),
            query(
              'cpu-signature',
              "CPU models: milan,genoa or FAMILY:MODEL:STEPPING (default: the profile's)",
            ),
            query('vmsa-variant', "legacy, kvm-init2 or both (default: the profile's)"),
            query('format', 'native (default) | vqsv | simple-kbs | simple-kbs-sql | csv'),
          ],
          responses: {
            '200': {
              description: 'the file',
              content: {
                'application/json': { schema: {} },
                'text/x-shellscript': { schema: { type: 'string' } },
                'application/sql': { schema: { type: 'string' } },
                'text/csv': { schema: { type: 'string' } },
              },
            },
            '400': err('bundle-bad-selection'),
            '404': err('unknown-vm'),
            '409': err('bundle-export-unsupported | bundle-no-signing-key'),
          },
        }),
      },
      '/v1/vm/{vmid}/host-setup': {
        get: owner(
          'What to paste on the host: libvirt fragment, command, notes; SEV-SNP adds the rows and the signed ID block (docs/snp-guest.md)',
          {
            parameters: [
              vmid,
              query('row', 'SEV-SNP: the measurement row the ID block signs (needed when there are several)'),
              query('family-id', 'SEV-SNP: ID block family id, 32 hex digits (default zeros)'),
              query('image-id', 'SEV-SNP: ID block image id, 32 hex digits (default zeros)'),
              query('guest-svn', 'SEV-SNP: ID block guest SVN (default 0)'),
              query('author-key', "SEV-SNP: yes to sign the ID key with the owner's author key"),
            ],
            responses: {
              '200': { description: 'the host setup', content: { 'application/json': { schema: {} } } },
              '400': err('bad-request'),
              '404': err('unknown-vm'),
            },
          },
        ),
      },
      '/v1/vm/{vmid}/snp-keys': {
        post: owner(
          "SEV-SNP: create the VM's ID key (and the owner's author key) in the keychain and trust their digests",
          {
            parameters: [vmid],
            requestBody: {
              required: false,
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { 'author-key': { type: 'boolean' }, replace: { type: 'boolean' } },
                    additionalProperties: false,
                  },
                },
              },
            },
            responses: {
              '200': { description: 'the key digests', content: { 'application/json': { schema: {} } } },
              '400': err('bad-request'),
              '404': err('unknown-vm'),
            },
          },
        ),
      },
      '/v1/bundles': {
        post: owner('Import a signed measurement bundle as a VM with precomputed digests', {
          requestBody: body('BundleImportRequest'),
          responses: {
            '200': { description: 'registered', content: json('BundleImportResponse') },
            '400': err('bundle-invalid | bad-request'),
            '403': err('bundle-key-untrusted'),
            '409': err('bundle-scheme-mismatch'),
            '422': err('bundle-unsigned | bundle-signature-invalid'),
          },
        }),
      },
      '/v1/openapi.json': {
        get: {
          summary: 'This document',
          security: [{}],
          responses: { '200': { description: 'OpenAPI 3.1' } },
        },
      },
    },
  };
}
