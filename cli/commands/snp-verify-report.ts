/**
 * `sev-attest snp verify-report`: verifies an AMD SEV-SNP attestation report (docs/protocol.md §11, §12):
 * signature with the VCEK/VLEK, chain to AMD's pinned ARK, validity, the ARK-signed CRL, the key's TCB and
 * hwid extensions; optionally the expected measurement and report_data.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { appraiseReport, type SnpAppraisalPolicy } from '../../app/snp/appraisal';
import { parseSnpCert, productOfKey } from '../../app/snp/chain';
import { SnpError } from '../../app/snp/errors';
import { KDS_DEFAULT_BASE_URL, SnpKdsClient, type VcekSource } from '../../app/snp/kds';
import { parseReport, productFromCpuid, reportBytesFromFile, type SnpReport } from '../../app/snp/report';
import { parseProduct, type SnpProduct } from '../../app/snp/roots';
import { decodeTcb, formatTcb } from '../../app/snp/tcb';
import { verifyReport, type VerifiedSnpReport } from '../../app/snp/verify';
import { CliError, type CliCommand, type CliIo } from '../io';

/** Exit codes besides 0 (verified) and 2 (usage or unreadable input). */
export const SNP_VERIFY_EXIT = {
  verificationFailed: 3,
  expectationMismatch: 4,
  keyServerUnavailable: 5,
} as const;

export const SNP_VERIFY_REPORT_USAGE = `usage: sev-attest snp verify-report --report FILE [options]

Verifies an AMD SEV-SNP attestation report: its ECDSA P-384 signature with the VCEK (or VLEK), the chain
ARK -> ASK -> VCEK (or ARK -> ASVK -> VLEK) to AMD's pinned Milan, Genoa or Turin root, the certificates'
validity, AMD's revocation list, and that the key's TCB and chip id extensions match the report.

  --report FILE         the report: 1184 raw bytes, or hex text
  --vcek FILE           the VCEK (DER or PEM); without it the VCEK is looked up in --vcek-dir, the
                        cache and the key server by the report's chip id and reported TCB
  --vlek FILE           the VLEK (DER or PEM), for reports signed by a VLEK (required for them)
  --product NAME        milan, genoa or turin; needed for version 2 reports when no --vcek names it
  --kds-url URL         key server base URL (default ${KDS_DEFAULT_BASE_URL})
  --cache-dir DIR       keep downloaded VCEKs, chains and revocation lists in DIR
  --vcek-dir DIR        an offline store of VCEKs filled by hand: DIR/<Product>/<hwid hex>/
                        bl<N>-tee<N>-snp<N>-ucode<N>.der (Turin: fmc<N>-bl…), or any .der/.pem file in
                        DIR (3 levels deep) whose hwid and TCB extensions match
  --crl FILE            AMD's revocation list for the product (DER or PEM) instead of the key server's
  --allow-missing-crl   proceed when the revocation list cannot be fetched (the output says so)
  --now ISO-8601        check certificate validity and CRL freshness at this time (default: now)
  --expect-measurement HEX   the launch measurement (48 bytes) the report must carry
  --expect-report-data HEX   the report_data (up to 64 bytes, zero-padded) the report must carry
  --json                print a JSON object on stdout

Exit status:
  0  verified (prints the product, the measurement and the reported TCB)
  2  usage error or unreadable input file
  3  verification failed: bad report, signature, chain, revoked or expired certificate, TCB or chip id
     mismatch, or the key server has no VCEK for this chip and TCB (HTTP 404)
  4  verified, but an --expect-* value differs (each difference is printed)
  5  the key server could not be reached for the VCEK or the revocation list (give --allow-missing-crl,
     --crl, --vcek or --vcek-dir to work offline)
`;

const options = {
  report: { type: 'string' },
  vcek: { type: 'string' },
  vlek: { type: 'string' },
  product: { type: 'string' },
  'kds-url': { type: 'string' },
  'cache-dir': { type: 'string' },
  'vcek-dir': { type: 'string' },
  crl: { type: 'string' },
  'allow-missing-crl': { type: 'boolean' },
  now: { type: 'string' },
  'expect-measurement': { type: 'string' },
  'expect-report-data': { type: 'string' },
  json: { type: 'boolean' },
} as const;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function checkHex(
  value: string | undefined,
  maxBytes: number,
  exact: boolean,
  flag: string,
): string | undefined {
  if (value === undefined) return undefined;
  const s = value.trim().replace(/^0x/i, '').toLowerCase();
  const ok =
    /^[0-9a-f]*$/.test(s) &&
    s.length % 2 === 0 &&
    (exact ? s.length === 2 * maxBytes : s.length <= 2 * maxBytes);
  if (!ok || s.length === 0) {
    throw new CliError(`${flag} must be ${exact ? '' : 'up to '}${maxBytes} bytes of hex, got '${value}'`);
  }
  return s;
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  if (positionals.length) throw new CliError(`unexpected argument '${positionals[0]}'`);
  if (!v.report) throw new CliError('--report FILE is required');
  if (v.vcek !== undefined && v.vlek !== undefined) throw new CliError('give --vcek or --vlek, not both');
  if (v['kds-url'] !== undefined && !/^https?:\/\/[^\s]+$/.test(v['kds-url'])) {
    throw new CliError(`--kds-url must be an http(s) URL, got '${v['kds-url']}'`);
  }
  let now: Date | undefined;
  if (v.now !== undefined) {
    now = new Date(v.now);
    if (!/^\d{4}-\d{2}-\d{2}/.test(v.now) || Number.isNaN(now.getTime())) {
      throw new CliError(`--now must be an ISO-8601 time (e.g. 2025-06-01T00:00:00Z), got '${v.now}'`);
    }
  }
  let product: SnpProduct | undefined;
  if (v.product !== undefined) {
    try {
      product = parseProduct(v.product);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  const expectMeasurement = checkHex(v['expect-measurement'], 48, true, '--expect-measurement');
  const expectReportData = checkHex(v['expect-report-data'], 64, false, '--expect-report-data');
  const path = (p: string) => resolve(io.cwd, p);

  let reportBytes: Uint8Array;
  try {
    reportBytes = reportBytesFromFile(new Uint8Array(await readFile(path(v.report))));
  } catch (e) {
    if (e instanceof SnpError) throw new CliError(`--report ${v.report}: ${e.message}`);
    throw e;
  }
  const vcek = v.vcek !== undefined ? new Uint8Array(await readFile(path(v.vcek))) : undefined;
  const vlek = v.vlek !== undefined ? new Uint8Array(await readFile(path(v.vlek))) : undefined;
  const crlFile = v.crl !== undefined ? new Uint8Array(await readFile(path(v.crl))) : undefined;

  const fail = (code: number, stage: string, e: SnpError, extra: Record<string, unknown> = {}): number => {
    if (v.json) {
      io.out(
        JSON.stringify({ verified: false, stage, code: e.code, reason: e.message, ...extra }, null, 2) + '\n',
      );
    }
    io.err(
      `sev-attest snp verify-report: ${stage === 'key-server' ? 'key server' : 'not verified'}: ${e.message} (${e.code})\n`,
    );
    return code;
  };
  const kdsFailure = (e: SnpError) =>
    e.code === 'kds-unavailable' ? SNP_VERIFY_EXIT.keyServerUnavailable : SNP_VERIFY_EXIT.verificationFailed;

  let report: SnpReport;
  try {
    report = parseReport(reportBytes);
    product ??= productFromCpuid(report.cpuid);
  } catch (e) {
    if (e instanceof SnpError) return fail(SNP_VERIFY_EXIT.verificationFailed, 'verification', e);
    throw e;
  }
  const kds = new SnpKdsClient({
    baseUrl: v['kds-url'] ?? KDS_DEFAULT_BASE_URL,
    cacheDir: v['cache-dir'] !== undefined ? path(v['cache-dir']) : undefined,
    offlineDir: v['vcek-dir'] !== undefined ? path(v['vcek-dir']) : undefined,
  });

  // The signing key: given, or looked up by chip id and reported TCB.
  let keySource: VcekSource | 'file' = 'file';
  let key: Uint8Array | undefined = report.signerInfo.signingKey === 'vlek' ? vlek : vcek;
  if (!key && !vcek && !vlek) {
    if (report.signerInfo.signingKey === 'vlek') {
      throw new CliError(
        'the report is signed by a VLEK: give --vlek FILE (AMD issues VLEKs to cloud providers only)',
      );
    }
    if (!product) {
      throw new CliError(
        `a version ${report.version} report does not name its product: give --product or --vcek`,
      );
    }
    try {
      const got = await kds.getVcek(product, report.chipId, decodeTcb(report.reportedTcb, product));
      key = got.der;
      keySource = got.source;
    } catch (e) {
      if (e instanceof SnpError)
        return fail(kdsFailure(e), e.code === 'kds-unavailable' ? 'key-server' : 'verification', e);
      throw e;
    }
  }
  if (!product && key) {
    try {
      product = productOfKey(parseSnpCert(key, 'the key'));
    } catch {
      // verifyReport names the exact problem
    }
  }

  // The revocation list: given, or fetched (cached while fresh).
  let crl: Uint8Array | undefined = crlFile;
  let crlUnavailableReason: string | undefined;
  if (!crl && product) {
    try {
      crl = (await kds.getCrl(product, now)).der;
    } catch (e) {
      if (!(e instanceof SnpError)) throw e;
      if (!v['allow-missing-crl']) {
        io.err('  give --allow-missing-crl to proceed without revocation checking, or --crl FILE\n');
        return fail(kdsFailure(e), e.code === 'kds-unavailable' ? 'key-server' : 'verification', e);
      }
      crlUnavailableReason = e.message;
    }
  }

  let verified: VerifiedSnpReport;
  try {
    verified = verifyReport(reportBytes, {
      vcek: report.signerInfo.signingKey === 'vcek' ? (key ?? vcek) : vcek,
      vlek: report.signerInfo.signingKey === 'vlek' ? (key ?? vlek) : vlek,
      product,
      crl,
      crlUnavailableReason,
      allowMissingCrl: v['allow-missing-crl'] === true,
      now,
    });
  } catch (e) {
    if (e instanceof SnpError) return fail(SNP_VERIFY_EXIT.verificationFailed, 'verification', e);
    throw e;
  }

  const r = verified.report;
  const summary = {
    verified: true,
    product: verified.product,
    signer: verified.signer.toUpperCase(),
    keySource,
    measurement: hex(r.measurement),
    reportedTcb: verified.tcb.reported,
    reportVersion: r.version,
    vmpl: r.vmpl,
    policy: `0x${r.policy.raw.toString(16)}`,
    debug: r.policy.debug,
    chipId: hex(r.chipId),
    reportData: hex(r.reportData),
    hostData: hex(r.hostData),
    revocation: verified.revocation.checked
      ? { checked: true, thisUpdate: verified.revocation.thisUpdate.toISOString() }
      : { checked: false, reason: verified.revocation.reason },
  };

  // Expectations: the measurement and report_data the caller names. Without --expect-measurement the
  // launch itself is not appraised here (the report's own measurement is passed as the allow-list).
  let refusals: ReturnType<typeof appraiseReport>['refusals'] = [];
  if (expectMeasurement !== undefined || expectReportData !== undefined) {
    const policy: SnpAppraisalPolicy = {
      measurements: [expectMeasurement ?? hex(r.measurement)],
      reportData: expectReportData,
    };
    refusals = appraiseReport(verified, policy).refusals;
  }
  if (refusals.length) {
    if (v.json) {
      io.out(JSON.stringify({ ...summary, expectationsMet: false, refusals }, null, 2) + '\n');
    }
    for (const x of refusals) {
      io.err(
        `sev-attest snp verify-report: expectation not met: ${x.field}: expected ${x.expected}, reported ${x.reported}\n`,
      );
    }
    return SNP_VERIFY_EXIT.expectationMismatch;
  }

  if (v.json) {
    io.out(JSON.stringify(summary, null, 2) + '\n');
  } else {
    const src = {
      file: v.vcek ? '--vcek' : '--vlek',
      offline: '--vcek-dir',
      cache: 'the cache',
      kds: 'the key server',
    }[keySource];
    const inter = verified.intermediate.subjectCn ?? '?';
    io.out(`verified: ${verified.product}\n`);
    io.out(`  measurement:  ${summary.measurement}\n`);
    io.out(`  reported TCB: ${formatTcb(verified.tcb.reported)}\n`);
    io.out(
      `  signed by the ${summary.signer} (from ${src}); chain ${verified.ark.subjectCn ?? '?'} -> ${inter} -> ${summary.signer}\n`,
    );
    io.out(
      `  report version ${r.version}, VMPL ${r.vmpl}, policy ${summary.policy}${r.policy.debug ? ' (DEBUG allowed)' : ''}\n`,
    );
    io.out(
      verified.revocation.checked
        ? `  revocation: checked (AMD CRL of ${summary.revocation.thisUpdate})\n`
        : `  revocation: NOT checked (--allow-missing-crl): ${verified.revocation.reason}\n`,
    );
    if (expectMeasurement !== undefined || expectReportData !== undefined) io.out('  expectations: met\n');
  }
  return 0;
}

export const snpVerifyReportCommand: CliCommand = {
  name: 'verify-report',
  summary: 'verify an SEV-SNP attestation report (signature, chain to AMD, revocation, TCB)',
  usage: SNP_VERIFY_REPORT_USAGE,
  run,
};
