/**
 * `sev-attest chips`: the key-server CEKs pinned per chip, in the data directory `sev-attest serve
 * --data-dir` uses (DIR/pinned-ceks.json). For owners without access to AMD's key server: download a
 * chip's CEK once (https://kdsintf.amd.com/cek/id/<CHIP ID HEX>) and pin it; it then proves that chip's
 * cpu-id claims (chip allow lists) and is used before any fetch. The same as PUT /v1/chips/{chipid}/cek.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isDomainError } from '../../app/errors';
import { AuditLog } from '../../server/services/audit-log';
import { createConfBackend } from '../../server/services/kv-backend';
import { normalizeChipIdHex, PinnedCekStore, type PinnedCek } from '../../server/services/pinned-ceks';
import { CliError, type CliCommand, type CliIo } from '../io';

const usage = `usage: sev-attest chips <subcommand> [options]

  pin CHIPID CEKFILE [--label L]  pins the chip's ASK-signed CEK (the key server's 2084-byte answer)
  unpin CHIPID                    removes it
  list                            lists the pinned chips

CHIPID is the chip id (cpu0-id) as 128 hex digits.

common options:
  --data-dir DIR         the data directory (as serve's; or SEV_ATTEST_DATA_DIR)`;

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: { 'data-dir': { type: 'string' }, label: { type: 'string' }, help: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  const [sub, ...args] = positionals;
  if (v.help || sub === undefined) {
    io.out(usage + '\n');
    return v.help ? 0 : 2;
  }
  const dirOpt = v['data-dir'] ?? io.env.SEV_ATTEST_DATA_DIR;
  if (!dirOpt) throw new CliError('--data-dir DIR is required (the directory sev-attest serve uses)');
  const dataDir = resolve(io.cwd, dirOpt);
  const store = new PinnedCekStore(
    createConfBackend({ cwd: dataDir, configName: 'pinned-ceks', defaults: { ceks: [] as PinnedCek[] } }),
  );
  const audited = async (chipId: string, message: string, pinned: boolean) => {
    const audit = AuditLog.open({ file: join(dataDir, 'audit.log') });
    try {
      await audit.appendDurable({
        type: 'profile',
        result: 'ok',
        chipId,
        message,
        details: { pinnedCek: pinned, via: 'cli' },
      });
    } finally {
      await audit.close();
    }
  };
  switch (sub) {
    case 'list': {
      if (args.length) throw new CliError(`chips list takes no argument`);
      for (const p of store.list()) io.out(`${p.chipId} ${p.pinnedAt}${p.label ? ` ${p.label}` : ''}\n`);
      return 0;
    }
    case 'pin': {
      if (args.length !== 2) throw new CliError('chips pin takes CHIPID and CEKFILE');
      const chipId = normalizeChipIdHex(args[0]!);
      const cek = new Uint8Array(readFileSync(resolve(io.cwd, args[1]!)));
      const entry = store.pin(chipId, cek, v.label);
      await audited(entry.chipId, `CEK pinned for chip ${entry.chipId.slice(0, 16)}...`, true);
      io.err(`sev-attest chips: pinned the CEK of chip ${entry.chipId}\n`);
      return 0;
    }
    case 'unpin': {
      if (args.length !== 1) throw new CliError('chips unpin takes CHIPID');
      const chipId = normalizeChipIdHex(args[0]!);
      if (!store.unpin(chipId)) {
        io.err(`sev-attest chips: no CEK is pinned for chip ${chipId}\n`);
        return 1;
      }
      await audited(chipId, `CEK unpinned for chip ${chipId.slice(0, 16)}...`, false);
      return 0;
    }
    default:
      throw new CliError(`unknown subcommand '${sub}' (pin, unpin, list)`);
  }
}

export const chipsCommand: CliCommand = {
  name: 'chips',
  summary: "pin chips' key-server CEKs for offline owners",
  usage,
  async run(argv: string[], io: CliIo): Promise<number> {
    try {
      return await run(argv, io);
    } catch (e) {
      if (e instanceof CliError) {
        io.err(`sev-attest chips: ${e.message}\n`);
        return e.exitCode;
      }
      if (isDomainError(e)) {
        io.err(`sev-attest chips: ${e.message} (${e.code})\n`);
        return 1;
      }
      if (e instanceof Error && (e as NodeJS.ErrnoException).code === 'ENOENT') {
        io.err(`sev-attest chips: ${e.message}\n`);
        return 2;
      }
      throw e;
    }
  },
};
