/**
 * The guest-facing contract of the Trustee KBS routes (docs/protocol.md §15): what SNP guests send to
 * `POST /kbs/v0/auth`, `POST /kbs/v0/attest` and `GET /kbs/v0/resource/...`, what they get back, and the
 * error replies. Field names and shapes follow what guest-components (kbs_protocol, kbs-types) and
 * Trustee's KBS actually send and parse. Bodies are parsed with app/kbs/lossless-json.ts first (u64
 * report fields above 2^53 arrive as bigint), then checked here; the SNP report itself stays `unknown`
 * for app/kbs/report-json.ts.
 */
import { z } from 'zod';
import type { KbsErrorKind } from '../kbs/errors';

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
 * Protocol versions accepted in /auth. guest-components sends "0.4.0" (KBS_PROTOCOL_VERSION); the
 * composite `tee-evidence` and the canonical runtime data this service checks arrived with 0.4, so
 * other minor versions would mean another body shape: refused.
 */
export const KBS_ACCEPTED_VERSION = /^0\.4\.\d{1,4}$/;

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

/** kbs-types `Request`. `extra-params` is free JSON (guest-components: `{"supported-hash-algorithms": [...]}`). */
export const KbsAuthRequestSchema = z
  .object({
    version: z.string().regex(KBS_ACCEPTED_VERSION, 'unsupported KBS protocol version (expected 0.4.x)'),
    tee: z.literal('snp', { error: 'only the "snp" TEE is served here' }),
    'extra-params': z.unknown(),
  })
  .strip();
export type KbsAuthRequest = z.infer<typeof KbsAuthRequestSchema>;

/** kbs-types `Challenge`. `extra-params` is present even when empty (guests require the member). */
export interface KbsChallenge {
  nonce: string;
  'extra-params': Record<string, unknown>;
}

const ByteSchema = z.number().int().min(0).max(255);

/**
 * virtee/sev `CertType` as serde writes it: unit variants by name, `OTHER` as `{"OTHER": "<guid>"}`.
 * Trustee's SNP verifier looks for VCEK or VLEK among them.
 */
export const SnpCertTypeSchema = z.union([
  z.enum(['Empty', 'ARK', 'ASK', 'VCEK', 'VLEK', 'CRL']),
  z.object({ OTHER: z.string().max(64) }).strict(),
]);

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
 * kbs-types `Attestation` as guest-components 0.4 sends it. `tee-pubkey` is checked by
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
        additional_evidence: z.string().max(64 * 1024),
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
