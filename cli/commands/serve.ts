/**
 * `sev-attest serve`: the headless attestation listener. Prints parseable lines (`listening <url>`,
 * `owner-token-file <path>`, `tls-fingerprint <sha256>`, with --ui `ui <url>` and `ui-login <link>`),
 * runs until SIGTERM / SIGINT, then drains and exits 0.
 */
import { isDomainError } from '../../app/errors';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startService, type RunningService } from '../../server/serve/serve';
import { startUi, type RunningUi } from '../../server/web/start-ui';
import { CliError, type CliCommand, type CliIo } from '../io';

const usage = `usage: sev-attest serve --listen HOST:PORT --data-dir DIR [options]

  --listen HOST:PORT        address to bind (default: the stored setting, at first 127.0.0.1:8470;
                            port 0 picks a free one); only loopback unless told otherwise
  --data-dir DIR            profiles, settings, artifacts, audit log, owner token, TLS certificate
  --trust-ca FILE           an extra ASK||ARK file trusted besides AMD's pinned roots (repeatable)
  --kds-url URL             AMD key server base for unsigned CEKs and SNP VCEKs/CRLs
                            (default https://kdsintf.amd.com)
  --snp-roots FILE          PEM ARK, ASK, ASVK and CRL of a lab or simulated SEV-SNP platform, trusted
                            beside AMD's pinned roots and named by the file (repeatable)
  --secret-store KIND       keychain (default: the OS keychain) or memory (keeps nothing)
  --tls                     HTTPS with a self-signed certificate generated into DIR (fingerprint printed);
                            without it, the stored setting (off unless turned on in the UI)
  --allowed-host NAME       an extra Host header name to accept (repeatable)
  --ui                      also serve the owner UI in a browser, on its own loopback port; prints a
                            one-time sign-in link (needs the built renderer: npm run build)
  --ui-port N               the UI's loopback port (default 0: any free port)
  --tunnel USER@HOST[:PORT] keep an SSH reverse tunnel to the libvirt host (system ssh, key or agent
                            only): the host reaches this listener at 127.0.0.1:REMOTE on its side
  --tunnel-remote-port N    the port bound on the SSH server's loopback (required with --tunnel)
  --tunnel-identity FILE    private key for the tunnel (ssh -i)
  --tunnel-known-hosts FILE known_hosts holding the SSH server's host key
  --require-host-token      refuse to start without a host token (SEV_ATTEST_HOST_TOKEN or DIR/host-token)
  --kbs-approval-wait S     how long an SEV-SNP guest's /kbs/v0/attest waits for the owner's decision on
                            a manual profile (1..600 seconds; default the setting, at first 120)
  --database URL            replicas share one PostgreSQL (postgres://USER:PASSWORD@HOST:PORT/DB, or
                            SEV_ATTEST_DATABASE_URL): VM profiles, secret values, launch connections and
                            the hash-chained audit log live there (docs/scale-out.md); the schema is
                            migrated at start, owner approvals are shared too. Not shared yet: settings,
                            artifacts (upload to each replica), the key-server cache
  --service-key-file FILE   the service key (mode 0600; else SEV_ATTEST_SERVICE_KEY): secrets and session
                            keys are sealed under it in the database
  --audit-retained-budget MB
                            disk budget of the retained audit stream (releases, decisions, profile
                            changes; default 256): once reached, releases are refused, nothing is dropped

The owner token comes from SEV_ATTEST_OWNER_TOKEN (at least 32 characters), else DIR/owner-token
(generated, mode 0600). The optional host token comes from SEV_ATTEST_HOST_TOKEN, else DIR/host-token.
One serve per data directory (DIR/serve.lock holds its pid).`;

/** Parses HOST:PORT ([v6]:PORT too). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CliError(`--listen must be HOST:PORT (e.g. 127.0.0.1:8470), got '${s}'`);
  return { host: m[1] ?? m[2]!, port };
}

/**
 * The package root: the nearest directory above `from` whose package.json is named sev-attest. Works
 * for the sources (cli/commands) and for the bundle in dist/, whatever its module format.
 */
export function findPackageRoot(from: string): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'sev-attest') return dir;
      } catch {
        // Not ours; keep walking up.
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** The built renderer (electron-vite's out/renderer) and the package version, or a CLI error saying how to build it. */
export function resolveUiBuild(from: string = __dirname): { rendererDir: string; version: string } {
  const root = findPackageRoot(from);
  const dir = root ? join(root, 'out', 'renderer') : undefined;
  if (!root || !dir || !existsSync(join(dir, 'index.html'))) {
    throw new CliError(
      `--ui needs the built renderer (${dir ?? 'out/renderer in the sev-attest package'}/index.html is missing): run npm run build first`,
      1,
    );
  }
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
  return { rendererDir: dir, version: typeof version === 'string' ? version : '0.0.0' };
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
      ui: { type: 'boolean' },
      'ui-port': { type: 'string' },
      tunnel: { type: 'string' },
      'tunnel-remote-port': { type: 'string' },
      'tunnel-identity': { type: 'string' },
      'tunnel-known-hosts': { type: 'string' },
      'require-host-token': { type: 'boolean' },
      'audit-retained-budget': { type: 'string' },
      'kbs-approval-wait': { type: 'string' },
      'snp-roots': { type: 'string', multiple: true },
      database: { type: 'string' },
      'service-key-file': { type: 'string' },
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
  const listen = values.listen !== undefined ? parseListen(values.listen) : undefined;
  let uiPort = 0;
  if (values['ui-port'] !== undefined) {
    if (values.ui !== true) throw new CliError('--ui-port goes with --ui');
    uiPort = /^\d{1,5}$/.test(values['ui-port']) ? Number(values['ui-port']) : NaN;
    if (!(uiPort <= 65535)) throw new CliError(`--ui-port must be a port number, got '${values['ui-port']}'`);
  }
  // Before anything binds: a missing renderer is a usage problem, not a half-started service.
  const ui = values.ui === true ? resolveUiBuild() : undefined;
  const databaseUrl = values.database ?? io.env.SEV_ATTEST_DATABASE_URL;
  if (databaseUrl !== undefined && values['secret-store'] !== undefined) {
    throw new CliError(
      '--secret-store cannot be combined with --database: secret values live in the database',
    );
  }
  if (values['service-key-file'] !== undefined && databaseUrl === undefined) {
    throw new CliError('--service-key-file goes with --database');
  }
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new CliError('--database must be a postgres:// URL');
  }
  const store = databaseUrl !== undefined ? 'database' : (values['secret-store'] ?? 'keychain');
  if (store !== 'keychain' && store !== 'memory' && store !== 'database') {
    throw new CliError(`--secret-store must be keychain or memory, got '${store}'`);
  }
  if (values['kds-url'] !== undefined && !/^https?:\/\/[^\s]+$/.test(values['kds-url'])) {
    throw new CliError(`--kds-url must be an http(s) URL, got '${values['kds-url']}'`);
  }
  let retainedBudgetBytes: number | undefined;
  if (values['audit-retained-budget'] !== undefined) {
    const mb = Number(values['audit-retained-budget']);
    if (!/^\d+(\.\d+)?$/.test(values['audit-retained-budget']) || !(mb >= 1)) {
      throw new CliError(
        `--audit-retained-budget must be a size in MB (at least 1), got '${values['audit-retained-budget']}'`,
      );
    }
    retainedBudgetBytes = Math.floor(mb * 1024 * 1024);
  }
  let kbsApprovalWait: number | undefined;
  if (values['kbs-approval-wait'] !== undefined) {
    kbsApprovalWait = Number(values['kbs-approval-wait']);
    if (!/^\d{1,3}$/.test(values['kbs-approval-wait']) || kbsApprovalWait < 1 || kbsApprovalWait > 600) {
      throw new CliError(
        `--kbs-approval-wait must be a number of seconds in 1..600, got '${values['kbs-approval-wait']}'`,
      );
    }
  }
  const ownerTokenEnv = io.env.SEV_ATTEST_OWNER_TOKEN;
  if (ownerTokenEnv && ownerTokenEnv.trim().length < 32) {
    throw new CliError(
      `SEV_ATTEST_OWNER_TOKEN must be at least 32 characters (it has ${ownerTokenEnv.trim().length}); ` +
        'unset it to use the generated DIR/owner-token, or make a long one: openssl rand -base64 32',
    );
  }
  const dataDir = resolve(io.cwd, values['data-dir']);
  let svc: RunningService;
  try {
    svc = await startService({
      ...(listen ?? {}),
      dataDir,
      trustCa: (values['trust-ca'] ?? []).map((f) => resolve(io.cwd, f)),
      ...(values['snp-roots'] ? { snpRoots: values['snp-roots'].map((f) => resolve(io.cwd, f)) } : {}),
      ...(store !== 'database' ? { secretStore: store } : {}),
      ...(databaseUrl !== undefined
        ? {
            database: {
              url: databaseUrl,
              ...(values['service-key-file'] !== undefined
                ? { serviceKeyFile: resolve(io.cwd, values['service-key-file']) }
                : {}),
            },
          }
        : {}),
      ...(values['kds-url'] !== undefined ? { kdsUrl: values['kds-url'] } : {}),
      ...(values.tls === true ? { tls: true } : {}),
      ...(ownerTokenEnv ? { ownerToken: ownerTokenEnv } : {}),
      ...(values['require-host-token'] === true ? { requireHostToken: true } : {}),
      ...(retainedBudgetBytes !== undefined ? { audit: { retainedBudgetBytes } } : {}),
      ...(kbsApprovalWait !== undefined ? { kbs: { approvalWaitSeconds: kbsApprovalWait } } : {}),
      ...(io.env.SEV_ATTEST_HOST_TOKEN ? { hostToken: io.env.SEV_ATTEST_HOST_TOKEN } : {}),
      ...(values['allowed-host'] ? { allowedHosts: values['allowed-host'] } : {}),
      log: (line) => io.err(`sev-attest serve: ${line}\n`),
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
      throw new CliError(`cannot listen on ${values.listen ?? 'the stored address'}: ${err.message}`, 1);
    }
    // A bad option or setting (a short owner token, an unusable data directory, a bad --trust-ca file) is
    // the user's to fix: a plain sentence and exit 2, never "internal error".
    if (isDomainError(e)) {
      const usage = e.code === 'bad-arguments' || e.code === 'host-token-required';
      // A database that cannot be reached at start is EX_UNAVAILABLE (sysexits.h): a supervisor retries.
      if (e.code === 'database-unavailable') throw new CliError(e.message, 69);
      throw new CliError(e.message, usage ? 2 : 1);
    }
    throw e;
  }
  if (store === 'memory')
    io.err('sev-attest serve: --secret-store memory: secrets are kept in memory only and lost on exit\n');
  else {
    // Say at start-up, not at the first release, when the keychain cannot hold secrets. The service
    // still runs (the keychain may be unlocked later); releases answer 503 until then. Never a disk fallback.
    try {
      await svc.secretStore.probeWritable?.();
    } catch (e) {
      io.err(
        `sev-attest serve: warning: the OS keychain is not usable, so no secret can be stored or released until it is: ${
          e instanceof Error ? e.message : String(e)
        } (or run with --secret-store memory, which keeps nothing)\n`,
      );
    }
  }
  if (svc.listenerStatus().hostTokenRecommended) {
    io.err(
      'sev-attest serve: warning: a VM asks for manual approval and no host token is set: anyone who reaches ' +
        'the listener can queue launches for you to approve. Set SEV_ATTEST_HOST_TOKEN (or generate one in ' +
        'the UI) and give it to your hosts; --require-host-token makes it mandatory\n',
    );
  }
  const retained = svc.audit.retainedStatus();
  if (retained?.full) {
    io.err(
      `sev-attest serve: warning: the retained audit stream in ${retained.dir} is at its budget: secret releases are refused until archived segment files are moved away or --audit-retained-budget is raised\n`,
    );
  }
  io.out(`listening ${svc.url}\n`);
  io.out(`port ${svc.port}\n`);
  io.out(
    svc.ownerTokenFile
      ? `owner-token-file ${svc.ownerTokenFile}\n`
      : 'owner-token from SEV_ATTEST_OWNER_TOKEN\n',
  );
  if (svc.tlsFingerprint) io.out(`tls-fingerprint ${svc.tlsFingerprint}\ntls-cert ${svc.tlsCertFile}\n`);
  io.out(`trust ${svc.trustAnchors.join(',')}\n`);
  let runningUi: RunningUi | undefined;
  if (ui !== undefined) {
    try {
      runningUi = await startUi(svc, {
        rendererDir: ui.rendererDir,
        dataDir,
        version: ui.version,
        port: uiPort,
        log: (line) => io.err(`sev-attest serve: ${line}\n`),
      });
    } catch (e) {
      await svc.close();
      throw new CliError(`--ui: cannot listen on 127.0.0.1:${uiPort}: ${(e as Error).message}`, 1);
    }
    io.out(`ui ${runningUi.url}\n`);
    io.out(`ui-login ${runningUi.loginUrl}\n`);
    io.err('sev-attest serve: open the ui-login link to sign in (it works once, within 10 minutes)\n');
  }
  if (values.tunnel !== undefined) {
    // Through the service's tunnel (audited, shown by tunnel:status, follows the listener); this run only.
    try {
      await svc.tunnel.start(
        {
          target: values.tunnel,
          remotePort,
          ...(values['tunnel-identity'] ? { identityFile: resolve(io.cwd, values['tunnel-identity']) } : {}),
          ...(values['tunnel-known-hosts']
            ? { knownHostsFile: resolve(io.cwd, values['tunnel-known-hosts']) }
            : {}),
        },
        (line) => io.out(`${line}\n`),
      );
    } catch (e) {
      await runningUi?.close();
      await svc.close();
      throw new CliError(`--tunnel: ${(e as Error).message}`);
    }
  }
  const sig = await untilSignal();
  io.err(`sev-attest serve: ${sig}: draining\n`);
  await runningUi?.close();
  await svc.close();
  return 0;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the attestation listener (headless)',
  usage,
  run,
};
