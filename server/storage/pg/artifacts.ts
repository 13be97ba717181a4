/**
 * Firmware artifacts in the shared database (serve --database): an artifact imported on one replica is
 * stored in tables `artifacts` (its index entry) and `artifact_chunks` (its bytes, 1 MiB bytea chunks) in
 * one transaction before the import is acknowledged, and every other replica copies it into its own
 * content-addressed directory: at once on NOTIFY, at start for what it missed, and on demand when a
 * validate or a measurement needs it (ArtifactStore.ensureLocal). A copy is hashed as it is written and
 * kept only when its SHA-256 is its name. Artifacts are firmware images, not secrets: nothing is sealed.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { messageOf } from '../../../app/errors';
import type { ArtifactInfo, ArtifactReplica } from '../../services/artifact-store';
import type { Database } from './database';
import type { Notifier } from './notifier';

export const ARTIFACT_CHANNEL = 'sev_attest_artifacts';
const CHUNK_BYTES = 1 << 20;

export class PgArtifactReplica implements ArtifactReplica {
  constructor(
    private readonly db: Database,
    private readonly notifier: Notifier,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** Calls fn when another replica adds or deletes an artifact (and after a reconnect). */
  onChange(fn: (change: { added?: string; deleted?: string }) => void): () => void {
    const off = this.notifier.on(ARTIFACT_CHANNEL, (payload) => {
      const [op, sha] = payload.split('\n');
      if (op === 'added' && sha) fn({ added: sha });
      else if (op === 'deleted' && sha) fn({ deleted: sha });
    });
    const offReconnect = this.notifier.onReconnect(() => fn({}));
    return () => {
      off();
      offReconnect();
    };
  }

  async has(sha256: string): Promise<boolean> {
    const r = await this.db.query('SELECT 1 FROM artifacts WHERE sha256 = $1', [sha256]);
    return r.rowCount === 1;
  }

  async put(info: ArtifactInfo, file: string): Promise<void> {
    if (await this.has(info.sha256)) return;
    await this.db.transaction(async (c) => {
      // Another replica importing the same bytes at once: the first commit wins, the second adds nothing.
      const claimed = await c.query(
        `INSERT INTO artifacts (sha256, size, chunks, name, kind, imported_at) VALUES ($1, $2, 0, $3, $4, $5)
         ON CONFLICT (sha256) DO NOTHING RETURNING sha256`,
        [info.sha256, info.size, info.name ?? null, info.kind ?? null, new Date(info.importedAt)],
      );
      if (claimed.rowCount !== 1) return;
      let n = 0;
      let size = 0;
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
        const b = chunk as Buffer;
        hash.update(b);
        size += b.length;
        await c.query('INSERT INTO artifact_chunks (sha256, n, data) VALUES ($1, $2, $3)', [
          info.sha256,
          n++,
          b,
        ]);
      }
      // The file read back is the one named: a local file changed under the store is not shared.
      if (hash.digest('hex') !== info.sha256 || size !== info.size) {
        throw new Error(`the local copy of artifact ${info.sha256} does not match its digest`);
      }
      await c.query('UPDATE artifacts SET chunks = $2 WHERE sha256 = $1', [info.sha256, n]);
      await c.query('SELECT pg_notify($1, $2)', [ARTIFACT_CHANNEL, `added\n${info.sha256}`]);
    });
  }

  async get(sha256: string, file: string): Promise<{ info: ArtifactInfo; sha256: string } | undefined> {
    const r = await this.db.query<{
      size: string;
      chunks: number;
      name: string | null;
      kind: string | null;
      imported_at: Date;
    }>('SELECT size, chunks, name, kind, imported_at FROM artifacts WHERE sha256 = $1', [sha256]);
    const row = r.rows[0];
    if (!row) return undefined;
    const hash = createHash('sha256');
    const fh = await fsp.open(file, 'wx', 0o600);
    try {
      // One chunk in memory at a time.
      for (let n = 0; n < row.chunks; n++) {
        const c = await this.db.query<{ data: Buffer }>(
          'SELECT data FROM artifact_chunks WHERE sha256 = $1 AND n = $2',
          [sha256, n],
        );
        const data = c.rows[0]?.data;
        if (!data) throw new Error(`artifact ${sha256}: chunk ${n} is missing from the database`);
        hash.update(data);
        await fh.write(data);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const info: ArtifactInfo = {
      sha256,
      size: Number(row.size),
      importedAt: row.imported_at.toISOString(),
      ...(row.name !== null ? { name: row.name } : {}),
      ...(row.kind !== null ? { kind: row.kind } : {}),
    };
    return { info, sha256: hash.digest('hex') };
  }

  async list(): Promise<string[]> {
    const r = await this.db.query<{ sha256: string }>('SELECT sha256 FROM artifacts ORDER BY imported_at');
    return r.rows.map((x) => x.sha256);
  }

  async delete(sha256: string): Promise<void> {
    await this.db.transaction(async (c) => {
      await c.query('DELETE FROM artifacts WHERE sha256 = $1', [sha256]);
      await c.query('SELECT pg_notify($1, $2)', [ARTIFACT_CHANNEL, `deleted\n${sha256}`]);
    });
  }

  async rename(sha256: string, name: string): Promise<void> {
    await this.db
      .query('UPDATE artifacts SET name = $2 WHERE sha256 = $1', [sha256, name])
      .catch((e: unknown) => {
        this.log(`artifacts: the new name of ${sha256} is not shared (${messageOf(e)})`);
      });
  }
}
