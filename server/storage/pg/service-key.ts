/**
 * The service key of a scale-out deployment: 32 random bytes every replica shares, from a file (mode 0600
 * or stricter, `--service-key-file`) or the environment (`SEV_ATTEST_SERVICE_KEY`), written as base64 or
 * hex. Secret values and session keys are sealed under keys derived from it (row-cipher.ts) and never
 * reach the database in clear.
 *
 * Rotation (docs/scale-out.md): the source may hold several keys, one per line; the first seals, every
 * one opens. Each sealed value names the key that sealed it (its key id), so replicas given "new, old"
 * read rows sealed under either while the rows are re-sealed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { DomainError, messageOf } from '../../../app/errors';

export interface ServiceKey {
  /** 8 bytes: the first bytes of SHA-256("sev-attest service key id" || key); names the key, reveals nothing. */
  readonly id: Buffer;
  readonly bytes: Buffer;
}

export const SERVICE_KEY_ENV = 'SEV_ATTEST_SERVICE_KEY';

function bad(source: string, why: string): DomainError {
  return new DomainError('bad-arguments', `the service key ${source} ${why}`);
}

/** Parses one key line: 64 hex digits or base64 (standard or url) of exactly 32 bytes. */
export function parseServiceKey(text: string, source: string): ServiceKey {
  const t = text.trim();
  let bytes: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) bytes = Buffer.from(t, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) bytes = Buffer.from(t, 'base64');
  if (!bytes || bytes.length !== 32) {
    throw bad(source, 'is not 32 bytes in base64 or hex (make one with: openssl rand -base64 32)');
  }
  if (bytes.every((b) => b === bytes![0])) throw bad(source, 'is not random (every byte is the same)');
  const id = createHash('sha256').update('sev-attest service key id\0').update(bytes).digest().subarray(0, 8);
  return { id: Buffer.from(id), bytes };
}

/** Parses a key list: one key a line, blank lines and # comments ignored; the first is the sealing key. */
export function parseServiceKeys(text: string, source: string): ServiceKey[] {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw bad(source, 'is empty');
  const keys = lines.map((l, i) => parseServiceKey(l, `${source} (line ${i + 1})`));
  const ids = new Set(keys.map((k) => k.id.toString('hex')));
  if (ids.size !== keys.length) throw bad(source, 'lists the same key twice');
  return keys;
}

/**
 * The keys from `file` (refused unless only its owner can read it) or else from the env variable.
 * Neither: bad-arguments with the fix.
 */
export function loadServiceKeys(opts: { file?: string; env?: NodeJS.ProcessEnv }): ServiceKey[] {
  if (opts.file !== undefined) {
    let st: fs.Stats;
    try {
      st = fs.statSync(opts.file);
    } catch (e) {
      throw bad(`file ${opts.file}`, `cannot be read (${messageOf(e)})`);
    }
    if (!st.isFile()) throw bad(`file ${opts.file}`, 'is not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw bad(
        `file ${opts.file}`,
        `is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 ${opts.file}`,
      );
    }
    return parseServiceKeys(fs.readFileSync(opts.file, 'utf8'), `file ${opts.file}`);
  }
  const fromEnv = (opts.env ?? process.env)[SERVICE_KEY_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return parseServiceKeys(fromEnv.replace(/[,;]/g, '\n'), `in ${SERVICE_KEY_ENV}`);
  }
  throw new DomainError(
    'bad-arguments',
    `--database needs the service key: --service-key-file FILE (mode 0600) or ${SERVICE_KEY_ENV}; make one ` +
      `with: (umask 077; openssl rand -base64 32 > FILE)`,
  );
}
