/**
 * The listener's translation between the REST contract (base64, kebab-case) and the decision's
 * transport-free types (app/decision). The services never see a contract type.
 */
import type { LaunchEvidence, LaunchReport } from '../../app/decision';
import type {
  LaunchRequest,
  LaunchResponse,
  PendingResponse,
  ValidateRequest,
  ValidateResponse,
} from '../../app/contract/rest';
import { fromBase64, toBase64 } from '../../app/sev/bytes';
import type { LaunchOutcome, ValidateOutcome } from '../services/attestation';

export function launchEvidenceOf(b: LaunchRequest): LaunchEvidence {
  return {
    pdh: fromBase64(b.pdh),
    certChain: fromBase64(b['cert-chain']),
    ...(b['cpu-id'] !== undefined ? { chipId: fromBase64(b['cpu-id']) } : {}),
    ...(b.cek !== undefined ? { cek: fromBase64(b.cek) } : {}),
    ...(b.policy !== undefined ? { policy: b.policy } : {}),
    ...(b.scheme !== undefined ? { scheme: b.scheme } : {}),
  };
}

export function launchReportOf(b: ValidateRequest): LaunchReport {
  return {
    apiMajor: b['api-major'],
    apiMinor: b['api-minor'],
    buildId: b['build-id'],
    policy: b.policy,
    measurement: fromBase64(b.measurement),
    ...(b['cpu-count'] !== undefined ? { cpuCount: b['cpu-count'] } : {}),
  };
}

export type LaunchAnswer =
  { status: 200; body: LaunchResponse } | { status: 202; body: PendingResponse; retryAfter: number };

export function launchAnswerOf(o: LaunchOutcome): LaunchAnswer {
  if (o.status === 'pending') {
    return {
      status: 202,
      retryAfter: o.retryAfter,
      body: { status: 'pending', approval: o.approval, 'retry-after': o.retryAfter, message: o.message },
    };
  }
  return {
    status: 200,
    body: {
      connection: o.connection,
      session: toBase64(o.session),
      'owner-cert': toBase64(o.ownerCert),
      policy: o.policy,
    },
  };
}

export function validateAnswerOf(o: ValidateOutcome): ValidateResponse {
  return { 'secret-header': toBase64(o.header), 'secret-table': toBase64(o.payload) };
}
