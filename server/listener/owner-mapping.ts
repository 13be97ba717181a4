/**
 * The listener's translation between the REST owner API (kebab-case, base64) and the owner services'
 * domain types: VM bodies to registrations, profiles to VM bodies, approvals, pinned CEKs and health. The
 * services never see a contract type.
 */
import {
  profileToVmResponse,
  secretInputBytes,
  secretInputGuid,
  vmBodyToProfileFields,
  type ApprovalBody,
  type HealthResponse,
  type PinnedCekBody,
  type SecretInput,
  type VmPutRequest,
  type VmPutResponse,
} from '../../app/contract/rest';
import type {
  SecretValue,
  ServiceHealth,
  VmRegistration,
  VmRegistrationResult,
} from '../../app/vm-registration';
import { fromBase64 } from '../../app/sev/bytes';
import type { Approval } from '../services/approvals';
import type { PinnedCek } from '../services/pinned-ceks';

export { profileToVmResponse };

/** The secret values a body's secret inputs release. */
export function secretValuesOf(inputs: SecretInput[]): SecretValue[] {
  return inputs.map((s) => ({
    guid: secretInputGuid(s),
    kind: s.type === 'luks-passphrase' ? 'luks-passphrase' : 'raw',
    ...(s.label !== undefined ? { label: s.label } : {}),
    ...(s.resource !== undefined ? { resource: s.resource } : {}),
    value: secretInputBytes(s),
  }));
}

/** PUT /v1/vm/{id}: the registration a (schema-checked) VM body asks for. */
export function vmRegistrationOf(id: string, body: VmPutRequest): VmRegistration {
  return {
    fields: vmBodyToProfileFields(id, body),
    firmware:
      body['launch-digests'] !== undefined
        ? { kind: 'digests', launchDigests: body['launch-digests'] }
        : body.firmware !== undefined
          ? { kind: 'bytes', bytes: fromBase64(body.firmware) }
          : { kind: 'artifact', sha256: body['firmware-artifact']! },
    ...(body.secrets !== undefined ? { secrets: secretValuesOf([body.secrets].flat()) } : {}),
  };
}

export function vmPutResponseOf(r: VmRegistrationResult): VmPutResponse {
  return { vm: profileToVmResponse(r.profile), warnings: r.warnings };
}

export function approvalToBody(a: Approval): ApprovalBody {
  const out: ApprovalBody = {
    id: a.id,
    state: a.state,
    client: a.client,
    policy: a.policy,
    'created-at': new Date(a.createdAt).toISOString(),
    'expires-at': new Date(a.expiresAt).toISOString(),
    kind: a.kind ?? 'sev-launch',
  };
  if (a.snp !== undefined)
    out.snp = {
      product: a.snp.product,
      measurement: a.snp.measurement,
      'reported-tcb': a.snp.reportedTcb,
      policy: a.snp.policy,
      vmpl: a.snp.vmpl,
      signer: a.snp.signer,
      'vouched-by': a.snp.vouchedBy,
      resources: a.snp.resources,
      revocation: a.snp.revocation,
    };
  if (a.reason !== undefined) out.reason = a.reason;
  if (a.vmId !== undefined) out['vm-id'] = a.vmId;
  if (a.chipId !== undefined) out['chip-id'] = a.chipId;
  if (a.anchor !== undefined) out.anchor = a.anchor;
  if (a.decidedAt !== undefined) out['decided-at'] = new Date(a.decidedAt).toISOString();
  return out;
}

export function pinnedCekToBody(p: PinnedCek): PinnedCekBody {
  return {
    'chip-id': p.chipId,
    ...(p.label !== undefined ? { label: p.label } : {}),
    'pinned-at': p.pinnedAt,
  };
}

export function healthResponseOf(h: ServiceHealth): HealthResponse {
  return {
    status: 'ok',
    version: h.version,
    tls: h.tls,
    'secret-store': h.secretStore,
    'uptime-seconds': h.uptimeSeconds,
    connections: h.connections,
    'pending-approvals': h.pendingApprovals,
    ...(h.audit
      ? {
          audit: {
            'retained-bytes': h.audit.retainedBytes,
            'retained-budget-bytes': h.audit.retainedBudgetBytes,
            full: h.audit.full,
          },
        }
      : {}),
  };
}
