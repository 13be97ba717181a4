/**
 * The KBS primitives together, as the service will chain them for one SNP guest: the guest binds its
 * key and the nonce into report_data, sends virtee's JSON form; the body is read losslessly, the report
 * rebuilt and verified, report_data compared, and the resource encrypted to the key it vouched for.
 */
import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chipId, makeCrl, makeKey, makeReport, makeTestRoots } from '../../test/helpers/snp-pki';
import { parseKbsAttestRequest, parseKbsAuthRequest } from '../contract/kbs';
import { OFF } from '../snp/report';
import { SnpTrustStore } from '../snp/roots';
import { decodeTcb } from '../snp/tcb';
import { verifyReport } from '../snp/verify';
import { KbsProtocolError } from './errors';
import { encryptForTee } from './jwe';
import { parseTeePubkey } from './jwk';
import { reportBytesFromKbsJson } from './report-json';
import { kbsReportData } from './runtime-data';

const roots = makeTestRoots('Milan', 'kbs-flow');
const TCB = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
const CHIP = chipId(4);
const vcek = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
const NOW = new Date('2026-01-01T00:00:00Z');

/** virtee/sev 6's serde form of a report (same rules as the emitter in report-json.test.ts). */
function virteeJson(b: Uint8Array): Record<string, unknown> {
  const dv = new DataView(b.buffer, b.byteOffset);
  const a = (o: number, n: number) => Array.from(b.subarray(o, o + n));
  const u64 = (o: number) => {
    const v = dv.getBigUint64(o, true);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const t = (o: number) => ({ fmc: null, ...decodeTcb(b.subarray(o, o + 8), 'Milan') });
  return {
    version: dv.getUint32(0, true),
    guest_svn: dv.getUint32(4, true),
    policy: u64(8),
    family_id: a(0x10, 16),
    image_id: a(0x20, 16),
    vmpl: dv.getUint32(0x30, true),
    sig_algo: dv.getUint32(0x34, true),
    current_tcb: t(0x38),
    plat_info: u64(0x40),
    key_info: dv.getUint32(0x48, true),
    report_data: a(0x50, 64),
    measurement: a(0x90, 48),
    host_data: a(0xc0, 32),
    id_key_digest: a(0xe0, 48),
    author_key_digest: a(0x110, 48),
    report_id: a(0x140, 32),
    report_id_ma: a(0x160, 32),
    reported_tcb: t(0x180),
    cpuid_fam_id: b[0x188],
    cpuid_mod_id: b[0x189],
    cpuid_step: b[0x18a],
    chip_id: a(0x1a0, 64),
    committed_tcb: t(0x1e0),
    current: { major: b[0x1ea], minor: b[0x1e9], build: b[0x1e8] },
    committed: { major: b[0x1ee], minor: b[0x1ed], build: b[0x1ec] },
    launch_tcb: t(0x1f0),
    signature: { r: a(0x2a0, 72), s: a(0x2e8, 72) },
  };
}

function guestAttestBody(nonce: string, jwk: Record<string, string>, policy: bigint) {
  const report = makeReport(
    { product: 'Milan', tcb: TCB, chipId: CHIP, policy, reportData: kbsReportData(nonce, jwk) },
    vcek.key,
  );
  const body = {
    'init-data': null,
    'runtime-data': { nonce, 'tee-pubkey': jwk },
    'tee-evidence': {
      primary_evidence: {
        attestation_report: virteeJson(report),
        cert_chain: [{ cert_type: 'VCEK', data: Array.from(vcek.der) }],
      },
      additional_evidence: '',
    },
  };
  return JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? `@@${v}@@` : v)).replace(
    /"@@(\d+)@@"/g,
    '$1',
  );
}

describe('KBS primitives end to end', () => {
  it('binds the guest key through report_data and releases to that key only', async () => {
    expect(parseKbsAuthRequest('{"version":"0.4.0","tee":"snp","extra-params":{}}').tee).toBe('snp');
    const nonce = randomBytes(32).toString('base64');
    const guest = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pub = guest.publicKey.export({ format: 'jwk' });
    const jwk = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: pub.x!, y: pub.y! };
    const text = guestAttestBody(nonce, jwk, 0x30000n);
    const req = parseKbsAttestRequest(text);
    const ev = req['tee-evidence'].primary_evidence;
    const bytes = reportBytesFromKbsJson(ev.attestation_report);
    const vcekDer = Uint8Array.from(ev.cert_chain![0]!.data);
    const verified = verifyReport(bytes, {
      vcek: vcekDer,
      trust: SnpTrustStore.of([roots.set]),
      crl: makeCrl(roots),
      now: NOW,
    });
    const expected = kbsReportData(
      req['runtime-data'].nonce,
      req['runtime-data']['tee-pubkey'],
      req['tee-evidence'].additional_evidence,
    );
    expect(Buffer.from(verified.report.reportData).equals(Buffer.from(expected))).toBe(true);
    const key = parseTeePubkey(req['runtime-data']['tee-pubkey']);
    const jwe = encryptForTee(key, new TextEncoder().encode('luks passphrase'));
    const out = await flattenedDecrypt(jwe as FlattenedJWE, guest.privateKey);
    expect(Buffer.from(out.plaintext).toString()).toBe('luks passphrase');
  });

  it('a swapped tee-pubkey no longer matches report_data', () => {
    const nonce = randomBytes(32).toString('base64');
    const honest = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
      format: 'jwk',
    });
    const attacker = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
      format: 'jwk',
    });
    const jwk = { kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW', x: honest.x!, y: honest.y! };
    const body = JSON.parse(guestAttestBody(nonce, jwk, 0x30000n)) as {
      'runtime-data': { 'tee-pubkey': Record<string, string> };
    };
    body['runtime-data']['tee-pubkey'] = { ...jwk, x: attacker.x!, y: attacker.y! };
    const req = parseKbsAttestRequest(JSON.stringify(body));
    const bytes = reportBytesFromKbsJson(req['tee-evidence'].primary_evidence.attestation_report);
    const expected = kbsReportData(req['runtime-data'].nonce, req['runtime-data']['tee-pubkey']);
    expect(
      Buffer.from(bytes.subarray(OFF.reportData, OFF.reportData + 64)).equals(Buffer.from(expected)),
    ).toBe(false);
  });

  it('hostile bodies are KbsProtocolErrors with plain words', () => {
    const cases: [string, RegExp][] = [
      ['{', /^invalid JSON at offset 1/],
      ['{"version":"0.4.0","tee":"snp","extra-params":{},"tee":"tdx"}', /duplicate member "tee"/],
      ['{"version":"0.4.0","tee":"tdx","extra-params":{}}', /^auth request: tee: only the "snp" TEE/],
      ['[' + '1,'.repeat(200000) + '1]', /longer than 262144/],
    ];
    for (const [text, re] of cases) {
      try {
        parseKbsAuthRequest(text);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(KbsProtocolError);
        expect((e as KbsProtocolError).kind).toBe('AttestationError');
        expect((e as Error).message).toMatch(re);
      }
    }
    expect(() => parseKbsAttestRequest('{"runtime-data":{}}')).toThrow(/^attest request: /);
  });
});
