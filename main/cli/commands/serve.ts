/**
 * `sev-attest serve`: the headless attestation listener. Prints parseable lines (`listening <url>`,
 * `owner-token-file <path>`, `tls-fingerprint <sha256>`), runs until SIGTERM / SIGINT, then drains and
 * exits 0.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startService, type RunningService } from '../../headless/serve';
import { startAuditedTunnel } from '../../headless/tunnel';
import type { SshTunnel } from '../../services/ssh-tunnel';
import { CliError, type CliCommand, type CliIo } from '../io';

const usage = `usage: sev-attest serve --listen HOST:PORT --data-dir DIR [options]

  --listen HOST:PORT        address to bind (default 127.0.0.1:8470; port 0 picks a free one);
                            only loopback unless told otherwise
  --data-dir DIR            profiles, settings, artifacts, audit log, owner token, TLS certificate
  --trust-ca FILE           an extra ASK||ARK file trusted besides AMD's pinned roots (repeatable)
  --kds-url URL             AMD key server base for unsigned CEKs (default https://kdsintf.amd.com)
  --secret-store KIND       keychain (default: the OS keychain) or memory (keeps nothing)
  --tls                     HTTPS with a self-signed certificate generated into DIR (fingerprint printed)
  --allowed-host NAME       an extra Host header name to accept (repeatable)
  --tunnel USER@HOST[:PORT] keep an SSH reverse tunnel to the libvirt host (system ssh, key or agent
                            only): the host reaches this listener at 127.0.0.1:REMOTE on its side
  --tunnel-remote-port N    the port bound on the SSH server's loopback (required with --tunnel)
  --tunnel-identity FILE    private key for the tunnel (ssh -i)
  --tunnel-known-hosts FILE known_hosts holding the SSH server's host key

The owner token comes from SEV_ATTEST_OWNER_TOKEN, else DIR/owner-token (generated, mode 0600).
The optional host token comes from SEV_ATTEST_HOST_TOKEN.`;

/** Parses HOST:PORT ([v6]:PORT too). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CliError(`--listen must be HOST:PORT (e.g. 127.0.0.1:8470), got '${s}'`);
  return { host: m[1] ?? m[2]!, port };
}

/** Resolves when the process gets SIGTERM or SIGINT. */
function untilSignal(): Promise<string> {
  return new Promise((done) => {
    const on = (sig: string) => {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
      done(sig);
    };
    const term = () => on('SIGTERM');
    const int = () => on('SIGINT');
    process.on('SIGTERM', term);
    process.on('SIGINT', int);
  });
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      listen: { type: 'string' },
      'data-dir': { type: 'string' },
      'trust-ca': { type: 'string', multiple: true },
      'kds-url': { type: 'string' },
      'secret-store': { type: 'string' },
      tls: { type: 'boolean' },
      'allowed-host': { type: 'string', multiple: true },
      tunnel: { type: 'string' },
      'tunnel-remote-port': { type: 'string' },
      'tunnel-identity': { type: 'string' },
      'tunnel-known-hosts': { type: 'string' },
    },
  });
  const remotePort = Number(values['tunnel-remote-port']);
  if (values.tunnel !== undefined) {
    if (!/^\d{1,5}$/.test(values['tunnel-remote-port'] ?? '') || remotePort < 1 || remotePort > 65535) {
      throw new CliError('--tunnel needs --tunnel-remote-port N (1..65535)');
    }
  } else if (values['tunnel-remote-port'] || values['tunnel-identity'] || values['tunnel-known-hosts']) {
    throw new CliError('--tunnel-remote-port, --tunnel-identity and --tunnel-known-hosts need --tunnel');
  }
  if (!values['data-dir']) throw new CliError('--data-dir DIR is required');
  const { host, port } = parseListen(values.listen ?? '127.0.0.1:8470');
  const store = values['secret-store'] ?? 'keychain';
  if (store !== 'keychain' && store !== 'memory') {
    throw new CliError(`--secret-store must be keychain or memory, got '${store}'`);
  }
  if (values['kds-url'] !== undefined && !/^https?:\/\/[^\s]+$/.test(values['kds-url'])) {
    throw new CliError(`--kds-url must be an http(s) URL, got '${values['kds-url']}'`);
  }
  const dataDir = resolve(io.cwd, values['data-dir']);
  let svc: RunningService;
  try {
    svc = await startService({
      host,
      port,
      dataDir,
      trustCa: (values['trust-ca'] ?? []).map((f) => resolve(io.cwd, f)),
      secretStore: store,
      ...(values['kds-url'] !== undefined ? { kdsUrl: values['kds-url'] } : {}),
      tls: values.tls === true,
      ...(io.env.SEV_ATTEST_OWNER_TOKEN ? { ownerToken: io.env.SEV_ATTEST_OWNER_TOKEN } : {}),
      ...(io.env.SEV_ATTEST_HOST_TOKEN ? { hostToken: io.env.SEV_ATTEST_HOST_TOKEN } : {}),
      ...(values['allowed-host'] ? { allowedHosts: values['allowed-host'] } : {}),
      log: (line) => io.err(`sev-attest serve: ${line}\n`),
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${host}:${port}: ${err.message}`, 1);
    }
    if (e instanceof Error && /^--trust-ca|owner token|keychain/i.test(e.message))
      throw new CliError(e.message, 1);
    throw e;
  }
  if (store === 'memory')
    io.err('sev-attest serve: --secret-store memory: secrets are kept in memory only and lost on exit\n');
  io.out(`listening ${svc.url}\n`);
  io.out(`port ${svc.port}\n`);
  io.out(
    svc.ownerTokenFile
      ? `owner-token-file ${svc.ownerTokenFile}\n`
      : 'owner-token from SEV_ATTEST_OWNER_TOKEN\n',
  );
  if (svc.tlsFingerprint) io.out(`tls-fingerprint ${svc.tlsFingerprint}\ntls-cert ${svc.tlsCertFile}\n`);
  io.out(`trust ${svc.trustAnchors.join(',')}\n`);
  let tunnel: SshTunnel | undefined;
  if (values.tunnel !== undefined) {
    try {
      tunnel = startAuditedTunnel(
        {
          target: values.tunnel,
          remotePort,
          localPort: svc.port,
          ...(values['tunnel-identity'] ? { identityFile: resolve(io.cwd, values['tunnel-identity']) } : {}),
          ...(values['tunnel-known-hosts']
            ? { knownHostsFile: resolve(io.cwd, values['tunnel-known-hosts']) }
            : {}),
        },
        svc.audit,
        (line) => io.out(`${line}\n`),
      );
    } catch (e) {
      await svc.close();
      throw new CliError(`--tunnel: ${(e as Error).message}`);
    }
  }
  const sig = await untilSignal();
  io.err(`sev-attest serve: ${sig}: draining\n`);
  await tunnel?.stop();
  await svc.close();
  return 0;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the attestation listener (headless)',
  usage,
  run,
};
