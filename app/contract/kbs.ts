/**
 * The guest-facing contract of the Trustee KBS routes (docs/protocol.md §15): what SNP guests send to
 * `POST /kbs/v0/auth`, `POST /kbs/v0/attest` and `GET /kbs/v0/resource/...`, what they get back, and the
 * error replies. Field names and shapes follow what guest-components (kbs_protocol, kbs-types) and
 * Trustee's KBS actually send and parse. Bodies are parsed with app/kbs/lossless-json.ts first (u64
 * report fields above 2^53 arrive as bigint), then checked here; the SNP report itself stays `unknown`
 * for app/kbs/report-json.ts.
 */
import { z } from 'zod';
import { KbsProtocolError, type KbsErrorKind } from '../kbs/errors';
import { parseJsonLossless } from '../kbs/lossless-json';

export const KBS_PATH_PREFIX = '/kbs/v0';
export const KBS_SESSION_COOKIE = 'kbs-session-id';
/** Trustee's `ERROR_TYPE_PREFIX`; the reply's `type` is `<prefix>/<Kind>`. */
export const KBS_ERROR_TYPE_PREFIX = 'https://github.com/confidential-containers/kbs/errors';
/**
 * Largest request body the KBS routes read. An SNP attest body is the report (~6 KiB as number
 * arrays) plus up to a few certificates as number arrays (~4 bytes of text per byte: a VCEK ~1.3 KiB,
 * ASK/ARK ~1.6 KiB each), so 256 KiB leaves ample room while bounding what an unauthenticated caller
 * can make the parser walk.
 */
export const KBS_MAX_BODY_BYTES = 256 * 1024;

/**
 * The protocol version accepted in /auth: exactly "0.4.0", as Trustee's KBS requires (a semver
 * requirement "=0.4.0" in kbs/src/attestation/backend.rs) and guest-components sends.
 */
export const KBS_PROTOCOL_VERSION = '0.4.0';

/** HTTP status per Trustee kind, as Trustee's `ResponseError` picks it (kbs/src/error.rs). */
export const KBS_ERROR_STATUS: Record<KbsErrorKind, 401 | 403 | 404> = {
  AttestationError: 401,
  SerdeError: 401,
  TokenNotFound: 401,
  TokenVerifierError: 401,
  PolicyDeny: 403,
  InvalidRequestPath: 404,
  PluginNotFound: 404,
  JweError: 401,
  PluginInternalError: 401,
};

/** kbs-types `ErrorInformation`: the body of every KBS error reply. */
export interface KbsErrorBody {
  type: string;
  detail: string;
}

export function kbsErrorBody(
  kind: KbsErrorKind,
  detail: string,
): { status: 401 | 403 | 404; body: KbsErrorBody } {
  return { status: KBS_ERROR_STATUS[kind], body: { type: `${KBS_ERROR_TYPE_PREFIX}/${kind}`, detail } };
}

/**
 * kbs-types `Request`. `extra-params` is free JSON (guest-components: `{"supported-hash-algorithms": [...]}`).
 * A body that fails this schema (another TEE, another version) is an `AttestationError`, as in Trustee.
 */
export const KbsAuthRequestSchema = z
  .object({
    version: z.literal(KBS_PROTOCOL_VERSION, {
      error: `unsupported KBS protocol version (expected ${KBS_PROTOCOL_VERSION})`,
    }),
    tee: z.literal('snp', { error: 'only the "snp" TEE is served here' }),
    'extra-params': z.unknown(),
  })
  .strip();
export type KbsAuthRequest = z.infer<typeof KbsAuthRequestSchema>;

/**
 * kbs-types `Challenge`. `extra-params` must be present (guests require the member); Trustee sends the
 * empty string. guest-components looks up `selected-hash-algorithm` in it and, finding none (as with ""),
 * hashes the runtime data with SHA-384.
 */
export interface KbsChallenge {
  nonce: string;
  'extra-params': string | Record<string, unknown>;
}

/** What SEV Attest puts in `extra-params`: the same empty string as Trustee. */
export const KBS_CHALLENGE_EXTRA_PARAMS = '';

const ByteSchema = z.number().int().min(0).max(255);

/** The GUIDs of the GHCB certificate table (virtee/sev `CertType`'s Display). */
export const SNP_CERT_GUIDS = {
  Empty: '00000000-0000-0000-0000-000000000000',
  ARK: 'c0b406a4-a803-4952-9743-3fb6014cd0ae',
  ASK: '4ab7b379-bbac-4fe4-a02f-05aef327c782',
  VCEK: '63da758d-e664-4564-adc5-f4b93be8accd',
  VLEK: 'a8074bc2-a25a-483e-aae6-39c045a0b8a1',
  CRL: '92f81bc3-5811-4d3d-97ff-d19f88dc67ea',
} as const;
export type SnpCertTypeName = keyof typeof SNP_CERT_GUIDS | 'OTHER';

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * virtee/sev `CertType` as serde's derive writes it: unit variants by name, `OTHER` as
 * `{"OTHER": "<guid>"}`. A bare GUID string is also accepted (the table's own form), in case a client
 * writes the type that way. Trustee's SNP verifier looks for VCEK or VLEK among them.
 */
export const SnpCertTypeSchema = z.union([
  z.enum(['Empty', 'ARK', 'ASK', 'VCEK', 'VLEK', 'CRL']),
  z.object({ OTHER: z.string().regex(GUID, 'expected a GUID') }).strict(),
  z.string().regex(GUID, 'expected a certificate type name or GUID'),
]);
export type SnpCertType = z.infer<typeof SnpCertTypeSchema>;

/** The certificate type's name, whichever form it came in. */
export function snpCertTypeName(t: SnpCertType): SnpCertTypeName {
  const guid = typeof t === 'object' ? t.OTHER : t;
  if (guid in SNP_CERT_GUIDS) return guid as keyof typeof SNP_CERT_GUIDS;
  const lower = guid.toLowerCase();
  for (const [name, g] of Object.entries(SNP_CERT_GUIDS)) if (g === lower) return name as SnpCertTypeName;
  return 'OTHER';
}

/** virtee/sev `CertTableEntry`: `data` is the DER (or PEM) bytes as a JSON number array. */
export const SnpCertTableEntrySchema = z
  .object({ cert_type: SnpCertTypeSchema, data: z.array(ByteSchema).max(16 * 1024) })
  .strict();
export type SnpCertTableEntry = z.infer<typeof SnpCertTableEntrySchema>;

/** guest-components' SNP attester evidence: the report in virtee's JSON form, the extended-report certs. */
export const SnpEvidenceSchema = z
  .object({
    attestation_report: z.unknown().refine((v) => typeof v === 'object' && v !== null && !Array.isArray(v), {
      message: 'attestation_report must be an object',
    }),
    cert_chain: z.array(SnpCertTableEntrySchema).max(8).nullable().optional(),
  })
  .strict();

/** kbs-types `InitData` (guest-components sends format "toml"). */
export const KbsInitDataSchema = z
  .object({ format: z.string().max(64), body: z.string().max(64 * 1024) })
  .strict();

/**
 * kbs-types `Attestation` as guest-components 0.4 sends it. Trustee names any failure to read it
 * (malformed JSON included) `AttestationError`, as it does for /auth bodies. `tee-pubkey` is checked by
 * app/kbs/jwk.ts `parseTeePubkey` (kept as received: its canonical JSON is hashed into report_data).
 */
export const KbsAttestRequestSchema = z
  .object({
    'init-data': KbsInitDataSchema.nullable().optional(),
    'runtime-data': z
      .object({
        nonce: z.string().min(1).max(256),
        'tee-pubkey': z.record(z.string(), z.unknown()),
      })
      .strict(),
    'tee-evidence': z
      .object({
        primary_evidence: SnpEvidenceSchema,
        // Trustee verifies a non-empty value as evidence of further devices (a JSON map TEE -> evidence);
        // SEV Attest verifies SNP only, so it refuses rather than release on evidence it did not check.
        additional_evidence: z.literal('', {
          error: 'additional device evidence is not supported (additional_evidence must be "")',
        }),
      })
      .strict(),
  })
  .strict();
export type KbsAttestRequest = z.infer<typeof KbsAttestRequestSchema>;

/** The attest reply: a JWT whose claims the guest decodes (`exp`, `nbf`). */
export interface KbsAttestReply {
  token: string;
}

/** The resource reply: a flattened JWE (kbs-types `Response`), base64url without padding, no `aad`. */
export interface KbsResourceReply {
  protected: string;
  encrypted_key: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

/** `<repository>/<type>/<tag>`, each a plain name (Trustee's resource path segments). */
export const KBS_RESOURCE_SEGMENT = /^[A-Za-z0-9_.-]{1,128}$/;

/** A zod failure as one plain sentence naming the field (for the error reply's `detail`). */
export function kbsIssueText(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid request';
  const at = issue.path.length ? issue.path.map(String).join('.') : 'body';
  return `${at}: ${issue.message}`;
}

/** Reads a KBS request body: lossless JSON, then the schema; every failure a KbsProtocolError. */
function parseKbsBody<T>(text: string, schema: z.ZodType<T>, what: string): T {
  const value = parseJsonLossless(text, { maxChars: KBS_MAX_BODY_BYTES, errorKind: 'AttestationError' });
  const r = schema.safeParse(value);
  if (!r.success) throw new KbsProtocolError('AttestationError', `${what}: ${kbsIssueText(r.error)}`);
  return r.data;
}

/** The /auth body (see KbsAuthRequestSchema); throws KbsProtocolError (AttestationError). */
export function parseKbsAuthRequest(text: string): KbsAuthRequest {
  return parseKbsBody(text, KbsAuthRequestSchema, 'auth request');
}

/** The /attest body (see KbsAttestRequestSchema); throws KbsProtocolError (AttestationError). */
export function parseKbsAttestRequest(text: string): KbsAttestRequest {
  return parseKbsBody(text, KbsAttestRequestSchema, 'attest request');
}
