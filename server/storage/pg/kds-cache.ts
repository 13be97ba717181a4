/**
 * The key-server cache in the shared database (serve --database): SEV CEKs and SEV-SNP VCEKs, chains and
 * CRLs fetched by one replica are found by the others, so a deployment asks AMD's key server once per
 * chip (its rate limit is per client). Everything here is public and is checked again on use (the CEK's
 * signature chain, the VCEK's chip and TCB, the CRL's signature and dates), so nothing is sealed. A
 * database that cannot be reached is a cache miss (read) or a lost write, never a refusal by itself.
 */
import type { CekCache } from '../../../app/sev/kds';
import type { SnpKdsCache } from '../../../app/snp/kds';
import type { Database } from './database';

class PgBlobCache {
  constructor(
    private readonly db: Database,
    private readonly kind: string,
  ) {}

  async read(name: string): Promise<Uint8Array | undefined> {
    const r = await this.db
      .query<{ body: Buffer }>('SELECT body FROM kds_cache WHERE kind = $1 AND name = $2', [this.kind, name])
      .catch(() => undefined);
    const b = r?.rows[0]?.body;
    return b ? new Uint8Array(b) : undefined;
  }

  async write(name: string, body: Uint8Array): Promise<void> {
    await this.db.query(
      `INSERT INTO kds_cache (kind, name, body) VALUES ($1, $2, $3)
       ON CONFLICT (kind, name) DO UPDATE SET body = EXCLUDED.body, updated_at = now()`,
      [this.kind, name, Buffer.from(body)],
    );
  }
}

/** SEV-SNP VCEKs, chains and CRLs (app/snp/kds.ts names them). */
export class PgSnpKdsCache implements SnpKdsCache {
  private readonly blobs: PgBlobCache;
  constructor(db: Database) {
    this.blobs = new PgBlobCache(db, 'snp');
  }
  read(name: string): Promise<Uint8Array | undefined> {
    return this.blobs.read(name);
  }
  write(name: string, body: Uint8Array): Promise<void> {
    return this.blobs.write(name, body);
  }
}

/** SEV CEKs by chip id (app/sev/kds.ts). */
export class PgCekCache implements CekCache {
  private readonly blobs: PgBlobCache;
  constructor(db: Database) {
    this.blobs = new PgBlobCache(db, 'sev-cek');
  }
  get(chipIdHex: string): Promise<Uint8Array | undefined> {
    return this.blobs.read(chipIdHex.toUpperCase());
  }
  put(chipIdHex: string, cek: Uint8Array): Promise<void> {
    return this.blobs.write(chipIdHex.toUpperCase(), cek);
  }
}
