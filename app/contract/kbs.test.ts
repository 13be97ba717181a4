import { describe, expect, it } from 'vitest';
import { parseJsonLossless } from '../kbs/lossless-json';
import {
  KBS_ERROR_STATUS,
  KbsAttestRequestSchema,
  KbsAuthRequestSchema,
  kbsErrorBody,
  kbsIssueText,
  SnpCertTypeSchema,
  snpCertTypeName,
} from './kbs';

const JWK = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: 'a', y: 'b' };
function attest(over: Record<string, unknown> = {}) {
  return {
    'init-data': null,
    'runtime-data': { nonce: 'bm9uY2U=', 'tee-pubkey': JWK },
    'tee-evidence': {
      primary_evidence: {
        attestation_report: { version: 3 },
        cert_chain: [{ cert_type: 'VCEK', data: [48, 130] }],
      },
      additional_evidence: '',
    },
    ...over,
  };
}

describe('KBS contract', () => {
  it('accepts what guest-components sends to /auth', () => {
    const body = parseJsonLossless(
      '{"version":"0.4.0","tee":"snp","extra-params":{"supported-hash-algorithms":["sha256","sha384","sha512"]}}',
    );
    expect(KbsAuthRequestSchema.parse(body).tee).toBe('snp');
  });

  it('refuses other TEEs and versions with a plain sentence', () => {
    const tdx = KbsAuthRequestSchema.safeParse({ version: '0.4.0', tee: 'tdx', 'extra-params': {} });
    expect(tdx.success).toBe(false);
    expect(kbsIssueText(tdx.error!)).toMatch(/^tee: only the "snp" TEE/);
    for (const version of ['0.1.0', '0.4.1', '0.4.0-rc1', '1.0.0', '']) {
      const r = KbsAuthRequestSchema.safeParse({ version, tee: 'snp', 'extra-params': '' });
      expect(kbsIssueText(r.error!)).toBe('version: unsupported KBS protocol version (expected 0.4.0)');
    }
  });

  it('accepts the attest body, with or without init-data and cert_chain', () => {
    expect(KbsAttestRequestSchema.safeParse(attest()).success).toBe(true);
    const noInit = attest();
    delete (noInit as Record<string, unknown>)['init-data'];
    expect(KbsAttestRequestSchema.safeParse(noInit).success).toBe(true);
    const nullChain = attest({
      'tee-evidence': {
        primary_evidence: { attestation_report: {}, cert_chain: null },
        additional_evidence: '',
      },
    });
    expect(KbsAttestRequestSchema.safeParse(nullChain).success).toBe(true);
    const other = attest({
      'tee-evidence': {
        primary_evidence: {
          attestation_report: {},
          cert_chain: [
            { cert_type: { OTHER: '0f1e2d3c-0000-4000-8000-000000000001' }, data: [] },
            { cert_type: '63DA758D-E664-4564-ADC5-F4B93BE8ACCD', data: [] },
          ],
        },
        additional_evidence: '',
      },
    });
    expect(KbsAttestRequestSchema.safeParse(other).success).toBe(true);
  });

  it('refuses malformed attest bodies naming the field', () => {
    const cases: [unknown, RegExp][] = [
      [attest({ 'runtime-data': { nonce: 'n' } }), /^runtime-data\.tee-pubkey/],
      [
        attest({
          'tee-evidence': {
            primary_evidence: { attestation_report: [], cert_chain: null },
            additional_evidence: '',
          },
        }),
        /attestation_report must be an object/,
      ],
      [
        attest({
          'tee-evidence': {
            primary_evidence: { attestation_report: {}, cert_chain: [{ cert_type: 'VCEK', data: [256] }] },
            additional_evidence: '',
          },
        }),
        /^tee-evidence\.primary_evidence\.cert_chain\.0\.data\.0/,
      ],
      [
        attest({
          'tee-evidence': {
            primary_evidence: { attestation_report: {}, cert_chain: [{ cert_type: 'PEK', data: [] }] },
            additional_evidence: '',
          },
        }),
        /cert_type/,
      ],
      [attest({ 'tee-evidence': { primary_evidence: { attestation_report: {} } } }), /additional_evidence/],
      [attest({ extra: 1 }), /extra|Unrecognized/i],
      [
        attest({
          'tee-evidence': {
            primary_evidence: { attestation_report: {}, cert_chain: null },
            additional_evidence: '{"tdx":{}}',
          },
        }),
        /^tee-evidence\.additional_evidence: additional device evidence is not supported/,
      ],
    ];
    for (const [body, re] of cases) {
      const r = KbsAttestRequestSchema.safeParse(body);
      expect(r.success).toBe(false);
      expect(kbsIssueText(r.error!)).toMatch(re);
    }
  });

  it('names certificate types in every form', () => {
    expect(snpCertTypeName('VLEK')).toBe('VLEK');
    expect(snpCertTypeName('63da758d-e664-4564-adc5-f4b93be8accd')).toBe('VCEK');
    expect(snpCertTypeName({ OTHER: 'A8074BC2-A25A-483E-AAE6-39C045A0B8A1' })).toBe('VLEK');
    expect(snpCertTypeName({ OTHER: '0f1e2d3c-0000-4000-8000-000000000001' })).toBe('OTHER');
    expect(SnpCertTypeSchema.safeParse({ OTHER: 'x' }).success).toBe(false);
    expect(SnpCertTypeSchema.safeParse('vcek').success).toBe(false);
  });

  it('builds Trustee error bodies with Trustee statuses', () => {
    expect(kbsErrorBody('AttestationError', 'no')).toEqual({
      status: 401,
      body: { type: 'https://github.com/confidential-containers/kbs/errors/AttestationError', detail: 'no' },
    });
    expect(kbsErrorBody('InvalidRequestPath', 'x').status).toBe(404);
    expect(KBS_ERROR_STATUS.PolicyDeny).toBe(403);
  });
});
