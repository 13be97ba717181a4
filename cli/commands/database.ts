/**
 * `sev-attest database`: maintenance of the shared database of serve --database (docs/scale-out.md).
 * `status` prints the schema version and which service key seals how many values; `reseal` re-seals every
 * secret value under the first key of the key file (the rotation's step 2). Neither migrates.
 */
import { parseArgs } from 'node:util';
import { Database } from '../../server/storage/pg/database';
import { SCHEMA_VERSION } from '../../server/storage/pg/migrations';
import { RowCipher } from '../../server/storage/pg/row-cipher';
import { resealSecrets, sealedByKey } from '../../server/storage/pg/secrets';
import { loadServiceKeys } from '../../server/storage/pg/service-key';
import { CliError, type CliCommand, type CliIo } from '../io';
import { DATABASE_ENV } from './audit';

const usage = `usage: sev-attest database <status|reseal> [--database URL] [--service-key-file FILE]

  status    the schema version and, per service key id, how many sealed values it seals
  reseal    re-seals every secret value under the FIRST key of the key file (after a rotation: the
            file lists the new key first, the old one after it); one transaction

  --database URL           postgres://... (or ${DATABASE_ENV})
  --service-key-file FILE  the key file (mode 0600; or SEV_ATTEST_SERVICE_KEY); reseal only

exit status: 0 done, 1 failed, 2 usage, 69 the database cannot be reached`;

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: {
      database: { type: 'string' },
      'service-key-file': { type: 'string' },
      help: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [sub, ...extra] = positionals;
  if (v.help || sub === undefined) {
    io.out(usage + '\n');
    return v.help ? 0 : 2;
  }
  if (sub !== 'status' && sub !== 'reseal') throw new CliError(`unknown subcommand '${sub}'\n\n${usage}`);
  if (extra.length > 0) throw new CliError(`unexpected argument '${extra[0]}'`);
  const url = v.database ?? io.env[DATABASE_ENV];
  if (!url) throw new CliError(`--database URL is required (or ${DATABASE_ENV})`);
  const cipher =
    sub === 'reseal'
      ? new RowCipher(
          loadServiceKeys({
            ...(v['service-key-file'] !== undefined ? { file: v['service-key-file'] } : {}),
            env: io.env,
          }),
        )
      : undefined;
  const db = new Database({ url, max: 1 });
  try {
    const version = await db.query<{ v: number | null }>(
      "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN NULL ELSE (SELECT max(version) FROM schema_version) END AS v",
    );
    const found = version.rows[0]?.v ?? null;
    if (found === null) {
      io.err(
        'sev-attest database: this database has no sev-attest schema (start serve --database on it first)\n',
      );
      return 1;
    }
    if (cipher) {
      const r = await resealSecrets(db, cipher);
      io.out(
        `resealed ${r.resealed} secret value(s) under key ${cipher.sealingKeyId}; ${r.current} already were\n`,
      );
    }
    io.out(`schema version ${found} (this sev-attest: ${SCHEMA_VERSION})\n`);
    for (const s of await sealedByKey(db)) io.out(`${s.table}: ${s.rows} sealed under key ${s.keyId}\n`);
    return 0;
  } catch (e) {
    if ((e as { code?: string }).code === 'database-unavailable') {
      io.err(`sev-attest database: ${(e as Error).message}\n`);
      return 69;
    }
    throw e;
  } finally {
    await db.close();
  }
}

export const databaseCommand: CliCommand = {
  name: 'database',
  summary: 'serve --database maintenance: schema and key status, re-seal after a key rotation',
  usage,
  run,
};
