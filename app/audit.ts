/**
 * The audit trail's event model: pure types and the zod schema shared by the audit log (main process),
 * the REST/SSE contract and the UI. Secret values never belong in an event.
 */
import { z } from 'zod';

export const AUDIT_EVENT_TYPES = [
  'launch',
  'decision',
  'validate',
  'secret-release',
  /** An SEV-SNP guest's attestation (Trustee KBS /kbs/v0/attest): appraisal, approval, token. */
  'snp-attest',
  'secret',
  'profile',
  'listener',
  'tunnel',
  'error',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export const AUDIT_RESULTS = ['ok', 'refused', 'pending', 'error', 'info'] as const;
export type AuditResult = (typeof AUDIT_RESULTS)[number];

/** What a caller supplies; the log adds id, seq and time. */
export const AuditEventInputSchema = z.object({
  type: z.enum(AUDIT_EVENT_TYPES),
  result: z.enum(AUDIT_RESULTS),
  /** The client's address (ip:port). */
  client: z.string().max(300).optional(),
  vmId: z.string().max(64).optional(),
  connection: z.string().max(200).optional(),
  /** cpu0-id in lower-case hex. */
  chipId: z.string().max(256).optional(),
  /** The trust anchor that verified the chain (e.g. 'amd-ark:milan', 'kds'). */
  anchor: z.string().max(200).optional(),
  /** A stable kebab-case error code (SevError.code and friends). */
  reason: z.string().max(100).optional(),
  message: z.string().max(4000).optional(),
  /** Structured evidence: expected digests tried with their inputs, reported measurement inputs ... */
  details: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEventInput = z.infer<typeof AuditEventInputSchema>;

export const AuditEventSchema = AuditEventInputSchema.extend({
  id: z.string().min(1).max(100),
  seq: z.number().int().positive(),
  time: z.iso.datetime(),
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

export const AuditFilterSchema = z.object({
  types: z.array(z.enum(AUDIT_EVENT_TYPES)).optional(),
  vmId: z.string().optional(),
  result: z.enum(AUDIT_RESULTS).optional(),
  /** ISO time: only events at or after it. */
  since: z.iso.datetime().optional(),
  /** The newest `limit` matching events. */
  limit: z.number().int().positive().optional(),
});
export type AuditFilter = z.infer<typeof AuditFilterSchema>;

/** True when the event passes the filter. */
export function auditEventMatches(e: AuditEvent, f: AuditFilter | undefined): boolean {
  if (!f) return true;
  if (f.types && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (f.vmId !== undefined && e.vmId !== f.vmId) return false;
  if (f.result !== undefined && e.result !== f.result) return false;
  if (f.since !== undefined && Date.parse(e.time) < Date.parse(f.since)) return false;
  return true;
}
