/**
 * `sev-attest audit verify --database URL`: walks the hash-chained audit table of a scale-out deployment
 * (server/storage/pg/audit-chain.ts) and names the first row that does not follow. Read-only: it neither
 * migrates nor writes. Exit 0 intact, 1 broken (or not a sev-attest database), 2 usage, 69 the database
 * cannot be reached.
 */
import { parseArgs } from 'node:util';
import { isDomainError } from '../../app/errors';
import { PgAuditChain } from '../../server/storage/pg/audit-chain';
import { Database } from '../../server/storage/pg/database';
import { CliError, type CliCommand, type CliIo } from '../io';

export const DATABASE_ENV = 'SEV_ATTEST_DATABASE_URL';
/** EX_UNAVAILABLE (sysexits.h). */
const EXIT_UNAVAILABLE = 69;

const usage = `usage: sev-attest audit verify [--database URL] [--json]

Checks the hash chain of the audit table that sev-attest serve --database writes: every row must hash
to what the next row says, with no row missing. Prints the head (seq and hash): record it elsewhere to
detect later removal of the newest rows, which the chain alone cannot show.

  --database URL   postgres://USER:PASSWORD@HOST:PORT/DB (or ${DATABASE_ENV})
  --json           the verdict as JSON

exit status: 0 intact, 1 broken, 2 usage, 69 the database cannot be reached`;

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: { database: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  const [sub, ...extra] = positionals;
  if (v.help || sub === undefined) {
    io.out(usage + '\n');
    return v.help ? 0 : 2;
  }
  if (sub !== 'verify') throw new CliError(`unknown subcommand '${sub}' (only: verify)\n\n${usage}`);
  if (extra.length > 0) throw new CliError(`unexpected argument '${extra[0]}'`);
  const url = v.database ?? io.env[DATABASE_ENV];
  if (!url) throw new CliError(`--database URL is required (or ${DATABASE_ENV})`);
  const db = new Database({ url, max: 1 });
  try {
    const table = await db.query<{ t: string | null }>("SELECT to_regclass('audit_log')::text AS t");
    if (table.rows[0]?.t == null) {
      io.err(
        'sev-attest audit: this database has no sev-attest audit table (was it started with serve --database?)\n',
      );
      return 1;
    }
    const verdict = await new PgAuditChain(db).verify();
    if (v.json) io.out(JSON.stringify(verdict) + '\n');
    else if (verdict.ok) {
      io.out(
        verdict.head
          ? `audit chain intact: ${verdict.rows} rows; head seq ${verdict.head.seq} hash ${verdict.head.hash}\n`
          : 'audit chain intact: no rows yet\n',
      );
    } else {
      io.out(
        `audit chain BROKEN at row ${verdict.firstBroken}: ${verdict.reason} (${verdict.rows} rows before it verify)\n`,
      );
    }
    return verdict.ok ? 0 : 1;
  } catch (e) {
    if (isDomainError(e) && e.code === 'database-unavailable') {
      io.err(`sev-attest audit: ${e.message}\n`);
      return EXIT_UNAVAILABLE;
    }
    throw e;
  } finally {
    await db.close();
  }
}

export const auditCommand: CliCommand = {
  name: 'audit',
  summary: 'verify the hash-chained audit table of serve --database',
  usage,
  run,
};
