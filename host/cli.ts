/**
 * The command line of `sev-attest-host` (plain Node, no Electron): `launch` and `info`. Progress goes
 * to stderr, results to stdout; the exit code says which step failed (HOST_EXIT).
 */
import * as os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fromBase64, toHex } from '../app/sev/bytes';
import { isEmptySlot, parseSevCert, usageName, type SevCertificate } from '../app/sev/cert';
import { VmIdSchema } from '../app/profile';
import type { CliIo } from '../cli/io';
import { HOST_EXIT, HostStepError, launchDomain } from './launch';
import { Virsh, VirshError } from './virsh';

export const HOST_USAGE = `usage: sev-attest-host <command> [options]

commands:
  launch   start a libvirt SEV / SEV-ES domain with a launch session and secret from SEV Attest
  info     what this host's SEV platform reports (virsh nodesevinfo, decoded)

sev-attest-host launch --domain NAME --service URL [options]
  --domain NAME              the libvirt domain (shut off; it is started paused, attested, resumed)
  --service URL              the owner's SEV Attest listener, e.g. https://owner:8470
  --vm-id ID                 the VM as registered by the owner (else POST /v1/launch with the
                             domain XML's <policy>)
  --token T                  the host token (or SEV_ATTEST_HOST_TOKEN; the variable keeps it out of ps)
  --connect URI              libvirt connection URI (virsh -c), e.g. qemu:///system
  --pin-sha256 FINGERPRINT   SHA-256 fingerprint of the listener's TLS certificate (sev-attest serve
                             --tls prints it); required trust for its self-signed certificate
  --kds-url URL              fetch the ASK-signed CEK from AMD's key server (or a mirror) and send it;
                             cached under ~/.cache/sev-attest-host. Without it the service fetches it.
  --max-wait SECONDS         longest wait for the owner's approval (default 600)
  --keep-paused-on-failure   leave a failed domain paused instead of destroying it
  --dry-run                  print each virsh command and request without running anything

sev-attest-host info [--connect URI]

exit codes: 0 launched, 1 internal error, 2 usage, 3 libvirt unreachable, 4 launch refused,
            5 start failed, 6 validate refused, 7 injection failed, 8 resume failed`;

function cacheDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CACHE_HOME || join(env.HOME || os.homedir(), '.cache');
  return join(base, 'sev-attest-host');
}

async function launchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      domain: { type: 'string' },
      service: { type: 'string' },
      'vm-id': { type: 'string' },
      token: { type: 'string' },
      connect: { type: 'string' },
      'pin-sha256': { type: 'string' },
      'kds-url': { type: 'string' },
      'max-wait': { type: 'string' },
      'keep-paused-on-failure': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
    },
  });
  if (!values.domain) throw new HostStepError(HOST_EXIT.usage, '--domain NAME is required');
  if (!values.service) throw new HostStepError(HOST_EXIT.usage, '--service URL is required');
  const vmId = values['vm-id'];
  const idCheck = vmId === undefined ? undefined : VmIdSchema.safeParse(vmId);
  if (idCheck && !idCheck.success) {
    throw new HostStepError(
      HOST_EXIT.usage,
      `--vm-id '${vmId}': ${idCheck.error.issues[0]?.message ?? 'not a VM id'}`,
    );
  }
  let maxWaitMs: number | undefined;
  if (values['max-wait'] !== undefined) {
    const s = Number(values['max-wait']);
    if (!Number.isFinite(s) || s < 0 || s > 86400) {
      throw new HostStepError(
        HOST_EXIT.usage,
        `--max-wait must be 0..86400 seconds, got '${values['max-wait']}'`,
      );
    }
    maxWaitMs = s * 1000;
  }
  if (values['kds-url'] !== undefined && !/^https?:\/\/\S+$/.test(values['kds-url'])) {
    throw new HostStepError(HOST_EXIT.usage, `--kds-url must be an http(s) URL, got '${values['kds-url']}'`);
  }
  const token = values.token ?? io.env.SEV_ATTEST_HOST_TOKEN;
  return launchDomain({
    domain: values.domain,
    service: values.service,
    ...(vmId ? { vmId } : {}),
    ...(token ? { token } : {}),
    ...(values.connect ? { connect: values.connect } : {}),
    ...(values['pin-sha256'] ? { pinSha256: values['pin-sha256'] } : {}),
    ...(values['kds-url'] ? { kdsUrl: values['kds-url'], kdsCacheDir: cacheDir(io.env) } : {}),
    ...(maxWaitMs !== undefined ? { maxWaitMs } : {}),
    keepPausedOnFailure: values['keep-paused-on-failure'] === true,
    dryRun: values['dry-run'] === true,
    env: io.env,
    log: (l) => io.err(`sev-attest-host: ${l}\n`),
    out: (l) => io.out(`${l}\n`),
  });
}

function describeCert(name: string, c: SevCertificate): string {
  const signed = c.sigs.filter((s) => !isEmptySlot(s)).map((s) => usageName(s.usage));
  return `${name.padEnd(10)} ${usageName(c.usage)} API ${c.apiMajor}.${c.apiMinor}, signed by ${signed.length ? signed.join(' + ') : 'nobody (unsigned)'}`;
}

async function infoCommand(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: { connect: { type: 'string' } },
  });
  const virsh = new Virsh({ ...(values.connect ? { connect: values.connect } : {}), env: io.env });
  const sev = await virsh.nodeSevInfo();
  const pdh = parseSevCert(fromBase64(sev.pdh), 'pdh');
  const chain = fromBase64(sev.certChain);
  if (chain.length !== 3 * 2084) {
    throw new HostStepError(
      HOST_EXIT.libvirtUnreachable,
      `cert-chain is ${chain.length} bytes, not PEK||OCA||CEK (6252)`,
    );
  }
  const [pek, oca, cek] = [0, 1, 2].map((i) =>
    parseSevCert(chain.subarray(i * 2084, (i + 1) * 2084), ['pek', 'oca', 'cek'][i]),
  ) as [SevCertificate, SevCertificate, SevCertificate];
  const cekSigned = cek.sigs.some((s) => !isEmptySlot(s));
  const lines = [
    `chip-id           ${sev.cpu0Id ? toHex(fromBase64(sev.cpu0Id)) : '(not reported: libvirt before 8.4)'}`,
    `api-version       ${pdh.apiMajor}.${pdh.apiMinor} (stamped in the PDH by the firmware)`,
    `cbitpos           ${sev.cbitpos ?? '?'}`,
    `reduced-phys-bits ${sev.reducedPhysBits ?? '?'}`,
    `max-guests        ${sev.maxGuests ?? '?'}`,
    `max-es-guests     ${sev.maxEsGuests ?? '?'}`,
    describeCert('pdh', pdh),
    describeCert('pek', pek),
    describeCert('oca', oca),
    describeCert('cek', cek),
    `cek-signed        ${cekSigned ? 'yes (the chain anchors to the ASK as exported)' : 'no: the ASK-signed CEK must come from the key server (--kds-url, or the service fetches it)'}`,
  ];
  io.out(lines.join('\n') + '\n');
  return HOST_EXIT.ok;
}

/** Dispatches sev-attest-host; every expected failure is one line on stderr and an exit code. */
export async function runHostCli(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (
    !cmd ||
    cmd === '--help' ||
    cmd === '-h' ||
    cmd === 'help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
    io.out(HOST_USAGE + '\n');
    return cmd ? HOST_EXIT.ok : HOST_EXIT.usage;
  }
  try {
    if (cmd === 'launch') return await launchCommand(rest, io);
    if (cmd === 'info') return await infoCommand(rest, io);
    io.err(`sev-attest-host: unknown command '${cmd}'\n${HOST_USAGE}\n`);
    return HOST_EXIT.usage;
  } catch (e) {
    if (e instanceof HostStepError) {
      io.err(`sev-attest-host ${cmd}: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof VirshError) {
      io.err(`sev-attest-host ${cmd}: ${e.message}\n`);
      return e.kind === 'unreachable' ? HOST_EXIT.libvirtUnreachable : HOST_EXIT.internal;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`sev-attest-host ${cmd}: ${err.message}\n`);
      return HOST_EXIT.usage;
    }
    io.err(`sev-attest-host ${cmd}: ${e instanceof Error ? e.message : String(e)}\n`);
    return HOST_EXIT.internal;
  }
}
