/**
 * Crash safety of the persistent services: a child process writes profiles, audit events and keychain
 * secrets in a tight loop; the parent kills it with SIGKILL at random moments and re-opens everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmProfile } from '../../app/profile';
import { AuditLog } from '../../server/services/audit-log';
import { createConfBackend } from '../../server/services/kv-backend';
import { ProfileStore } from '../../server/services/profile-store';
import { KeytarSecretStore } from '../../server/services/secret-store';
import { bundleChild } from '../helpers/bundle-child';
import { restartProfile, restartSecret } from '../helpers/restart-profile';

const HAVE_KEYRING = process.env.SEV_ATTEST_TEST_KEYRING === '1';
const KEYRING_REASON = 'keychain part needs a real Secret Service: run under `bash scripts/with-keyring.sh`';
const ROUNDS = 20;
const SERVICE = `sev-attest-restart-${process.pid}`;

interface RoundResult {
  round: number;
  delayMs: number;
  seqBefore: number;
  seqAfter: number;
  tornLine: boolean;
  profiles: number;
  secrets: number;
  confTempFiles: number;
}

const results: RoundResult[] = [];
let child: string;
let dataDir: string;

/** The main log and every file of the retained stream (segments and current.log). */
function auditFiles(dir: string): string[] {
  const rdir = join(dir, 'audit-retained');
  const retained = existsSync(rdir) ? readdirSync(rdir).map((n) => join(rdir, n)) : [];
  return [join(dir, 'audit.jsonl'), ...retained].filter((f) => existsSync(f));
}

/** The complete event lines of a file (open() already dropped a torn last line). */
function readEvents(file: string): Array<{ seq: number; id: string }> {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { seq: number; id: string });
}

function waitReady(p: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let errBuf = '';
    p.stderr?.on('data', (d: Buffer) => (errBuf += d.toString()));
    p.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /ready (\d+)\n/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (code, signal) => reject(new Error(`writer exited early (${code ?? signal}): ${errBuf}`)));
  });
}

function exited(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) resolve();
    else p.once('exit', () => resolve());
  });
}

beforeAll(async () => {
  child = await bundleChild('test/helpers/writer-child.ts', 'writer-child');
  dataDir = mkdtempSync(join(tmpdir(), 'restart-'));
});

afterAll(async () => {
  rmSync(child, { force: true });
  rmSync(dataDir, { recursive: true, force: true });
  if (HAVE_KEYRING) {
    const s = new KeytarSecretStore({ service: SERVICE });
    for (const a of await s.list()) await s.delete(a);
  }
});

describe('restart after kill -9', () => {
  it(`${ROUNDS} random SIGKILLs during writes leave valid profiles, a repairable audit log and intact secrets`, async () => {
    let lastSeq = 0;
    /** Every event seen on disk so far, by seq (its id): a seq is never given to another event. */
    const seen = new Map<number, string>();
    for (let round = 1; round <= ROUNDS; round++) {
      const p = spawn(process.execPath, [child], {
        env: {
          ...process.env,
          DATA_DIR: dataDir,
          USE_KEYRING: HAVE_KEYRING ? '1' : '0',
          SECRET_SERVICE: SERVICE,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const seqBefore = await waitReady(p);
      expect(seqBefore).toBe(lastSeq);
      const delayMs = 20 + Math.floor(Math.random() * 300);
      await new Promise((r) => setTimeout(r, delayMs));
      p.kill('SIGKILL');
      await exited(p);
      expect(p.signalCode).toBe('SIGKILL');

      // Profiles: the conf file parses, every entry validates and is exactly what the child wrote.
      const store = new ProfileStore({
        backend: createConfBackend<{ profiles: Record<string, VmProfile> }>({
          cwd: dataDir,
          configName: 'profiles',
          defaults: { profiles: {} },
        }),
      });
      const profiles = store.list();
      expect(store.problems()).toEqual([]);
      for (const prof of profiles) {
        const m = /^slot (\d+) gen (\d+)$/.exec(prof.name);
        expect(m, prof.name).not.toBeNull();
        const expected = restartProfile(Number(m![1]), Number(m![2]));
        const { createdAt: _c, updatedAt: _u, ...stored } = prof;
        expect(stored).toMatchObject(expected);
      }

      // Audit log: at most one torn line, nothing else invalid, seq strictly increasing and never reused.
      const log = AuditLog.open({ file: join(dataDir, 'audit.jsonl'), maxEntries: 20 });
      expect(log.openReport.invalidLines).toBe(0);
      // list(): the retained events that left the window, then the window; gaps where non-retained
      // events left it (none here: the child writes only retained profile events), never a repeat.
      const listed = log.list();
      const seqs = listed.map((e) => e.seq);
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
      // The main log's window alone is consecutive, and ends at the log's seq.
      const window = log.listWindow().map((e) => e.seq);
      for (let i = 1; i < window.length; i++) expect(window[i]).toBe(window[i - 1]! + 1);
      if (window.length > 0) expect(window.at(-1)).toBe(log.seq);
      expect(log.seq).toBeGreaterThanOrEqual(lastSeq);
      // On disk (main log and retained stream): a seq names one event, within a file and across files
      // and rounds, and no seq is past the one the log continues from.
      for (const f of auditFiles(dataDir)) {
        const fileSeqs = new Set<number>();
        for (const e of readEvents(f)) {
          expect(fileSeqs.has(e.seq), `${f}: seq ${e.seq} twice`).toBe(false);
          fileSeqs.add(e.seq);
          expect(e.seq).toBeLessThanOrEqual(log.seq);
          const known = seen.get(e.seq);
          if (known !== undefined) expect(e.id, `seq ${e.seq} given to two events`).toBe(known);
          else seen.set(e.seq, e.id);
        }
      }
      for (const e of listed) expect(seen.get(e.seq)).toBe(e.id);
      const tornLine = log.openReport.tornLine;
      lastSeq = log.seq;
      log.close();

      // Secrets: each one present is a value the child wrote in full.
      let secrets = 0;
      if (HAVE_KEYRING) {
        const s = new KeytarSecretStore({ service: SERVICE });
        for (const account of await s.list('restart/')) {
          const slot = Number(account.slice('restart/'.length));
          const value = await s.get(account);
          expect(value).toBeDefined();
          const gen = Buffer.from(value!).readUInt32LE(32);
          expect(value).toEqual(restartSecret(slot, gen));
          secrets++;
        }
      }
      const confTempFiles = readdirSync(dataDir).filter(
        (n) => n.startsWith('profiles.json') && n !== 'profiles.json',
      ).length;
      results.push({
        round,
        delayMs,
        seqBefore,
        seqAfter: lastSeq,
        tornLine,
        profiles: profiles.length,
        secrets,
        confTempFiles,
      });
    }
    const events = lastSeq;
    const torn = results.filter((r) => r.tornLine).length;
    console.log(
      `restart: ${ROUNDS} SIGKILL rounds, ${events} audit events written, ${torn} torn last line(s) repaired, ` +
        `${results.at(-1)?.profiles} profiles valid, ${results.at(-1)?.secrets} keychain secrets intact, ` +
        `${results.at(-1)?.confTempFiles} conf temp file(s) left; per round: ` +
        results.map((r) => `${r.delayMs}ms:+${r.seqAfter - r.seqBefore}${r.tornLine ? 'T' : ''}`).join(' '),
    );
    expect(results).toHaveLength(ROUNDS);
    // The child really wrote during the rounds (this is not a test of an idle process).
    expect(events).toBeGreaterThan(ROUNDS);
  }, 240_000);

  it.skipIf(!HAVE_KEYRING)(`secrets were part of the rounds (${KEYRING_REASON})`, () => {
    expect(results.length).toBe(ROUNDS);
    expect(results.at(-1)!.secrets).toBeGreaterThan(0);
  });
});
