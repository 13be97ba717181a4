import * as fs from 'node:fs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startPgCluster } from '../helpers/pg-cluster';

describe('throwaway PostgreSQL cluster (test/helpers/pg-cluster.ts)', () => {
  it('starts on a loopback port with a password, survives a restart and is removed on stop', async () => {
    const cluster = await startPgCluster();
    try {
      const url = await cluster.createDatabase();
      const query = async (sql: string) => {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          return (await client.query(sql)).rows;
        } finally {
          await client.end();
        }
      };
      expect((await query('SELECT 1 AS one'))[0]).toEqual({ one: 1 });
      const wrong = new pg.Client({ connectionString: url.replace(/:[^:@]+@/, ':wrong@') });
      await expect(wrong.connect()).rejects.toThrow(/password authentication failed/);
      cluster.restart();
      expect((await query('SELECT 2 AS two'))[0]).toEqual({ two: 2 });
    } finally {
      cluster.stop();
    }
    expect(fs.existsSync(cluster.dir)).toBe(false);
  });
});
