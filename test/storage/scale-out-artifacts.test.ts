/**
 * Firmware artifacts shared by serve --database replicas on real PostgreSQL: the firmware is uploaded to
 * one replica only, the profile built from it on that replica, and a host launches on a second and
 * validates on a third; a replica that lost its copy fetches it again on demand; a shared copy whose bytes
 * do not hash to its name is refused; a deletion reaches every replica.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { startService, type RunningService } from '../../server/serve/serve';
import { Database } from '../../server/storage/pg/database';
import {
  FIRMWARE,
  hostFlow,
  OWNER_TOKEN,
  platform,
  registerVm,
  request,
  tmpDir,
} from '../helpers/listener-harness';
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster';

let cluster: PgCluster;
let url: string;
let keyFile: string;
let db: Database;
let firmwareSha: string;
const replicas: RunningService[] = [];
const dirs: string[] = [];

async function startReplica(): Promise<RunningService> {
  const dataDir = tmpDir('sev-art-replica-');
  dirs.push(dataDir);
  const askArk = join(dataDir, 'sim-ask-ark.cert');
  fs.writeFileSync(askArk, platform().askArk);
  return startService({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    trustCa: [askArk],
    ownerToken: OWNER_TOKEN,
    rateLimit: false,
    database: { url, serviceKeyFile: keyFile },
  });
}

const localCopy = (r: RunningService) => join(r.artifacts.dir, firmwareSha);

beforeAll(async () => {
  cluster = await startPgCluster();
  url = await cluster.createDatabase();
  db = new Database({ url });
  const keyDir = tmpDir('sev-art-key-');
  dirs.push(keyDir);
  keyFile = join(keyDir, 'service.key');
  fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  for (let i = 0; i < 3; i++) replicas.push(await startReplica());
  // Uploaded to the first replica only (registerVm uploads the firmware there).
  expect((await registerVm({ svc: replicas[0]! }, { id: 'sev1', passphrase: 'sev one' })).status).toBe(200);
  firmwareSha = replicas[0]!.artifacts.list()[0]!.sha256;
}, 120_000);

afterAll(async () => {
  for (const r of replicas) await r.close().catch(() => {});
  await db?.close();
  await cluster?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('serve --database: firmware artifacts shared', () => {
  it('the upload is in the database, chunked, before it is acknowledged', async () => {
    const r = await db.query<{ size: string; chunks: number }>(
      'SELECT size, chunks FROM artifacts WHERE sha256 = $1',
      [firmwareSha],
    );
    expect(Number(r.rows[0]!.size)).toBe(FIRMWARE.length);
    expect(r.rows[0]!.chunks).toBeGreaterThanOrEqual(1);
  });

  it('a profile built from an artifact on one replica validates on another (launch on a second, validate on a third)', async () => {
    const r = await hostFlow({ svc: replicas[1]! }, { vmId: 'sev1', validateBase: replicas[2]!.url });
    expect(r.validate?.status, JSON.stringify(r.validate?.json)).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('sev one');
    expect(fs.existsSync(localCopy(replicas[2]!))).toBe(true);
  });

  it('a replica that lost its copy fetches it again on demand (what a validate or measurement calls)', async () => {
    const c = replicas[2]!;
    await c.artifacts.forgetLocal(firmwareSha);
    expect(c.artifacts.has(firmwareSha)).toBe(false);
    expect(await c.artifacts.ensureLocal(firmwareSha)).toBe(true);
    expect(c.artifacts.has(firmwareSha)).toBe(true);
    expect(await c.artifacts.verify(firmwareSha)).toBe(true);
    expect(c.artifacts.info(firmwareSha)?.importedAt).toBe(
      replicas[0]!.artifacts.info(firmwareSha)?.importedAt,
    );
    // An artifact nobody has: false, nothing written.
    expect(await c.artifacts.ensureLocal('0'.repeat(64))).toBe(false);
  });

  it('a shared copy whose bytes were changed is not taken', async () => {
    const c = replicas[2]!;
    await c.artifacts.forgetLocal(firmwareSha);
    await db.query(
      `UPDATE artifact_chunks SET data = overlay(data placing '\\xdeadbeef'::bytea from 100) WHERE sha256 = $1 AND n = 0`,
      [firmwareSha],
    );
    expect(await c.artifacts.ensureLocal(firmwareSha).catch((e: Error) => e.message)).toMatch(
      /does not hash to its name/,
    );
    expect(c.artifacts.has(firmwareSha)).toBe(false);
    expect(fs.readdirSync(c.artifacts.dir).filter((n) => n.startsWith('tmp-'))).toEqual([]);
  });

  it('a deletion on one replica reaches the database and the other replicas', async () => {
    const up = await request(replicas[1]!.url, 'PUT', '/v1/artifacts', {
      token: OWNER_TOKEN,
      body: Buffer.from('another firmware image'),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(up.status).toBe(200);
    const sha = up.json.sha256 as string;
    for (let i = 0; i < 200 && !replicas[0]!.artifacts.has(sha); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(replicas[0]!.artifacts.has(sha)).toBe(true);
    await replicas[0]!.artifacts.delete(sha);
    expect((await db.query('SELECT 1 FROM artifacts WHERE sha256 = $1', [sha])).rowCount).toBe(0);
    for (let i = 0; i < 200 && replicas[1]!.artifacts.has(sha); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(replicas[1]!.artifacts.has(sha)).toBe(false);
  });
});
