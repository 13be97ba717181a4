import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../app/audit';
import { AuditInputError, AuditLog, AuditWriteError, REDACTED, redactDetails } from './audit-log';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'audit-'));
  file = join(dir, 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function lines(): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

/** One event line written by hand (what a crashed process left on disk). */
function evLine(seq: number, id: string, type: AuditEvent['type'] = 'profile'): string {
  const e: AuditEvent = {
    id,
    seq,
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    type,
    result: 'info',
  };
  return `${JSON.stringify(e)}\n`;
}

/** Every event line on disk: the main log and the retained stream (segments and current.log). */
function onDisk(): Array<{ file: string; seq: number; id: string }> {
  const rdir = join(dir, 'audit-retained');
  const files = [file, ...readdirSync(rdir).map((n) => join(rdir, n))];
  return files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const e = JSON.parse(l) as AuditEvent;
        return { file: f, seq: e.seq, id: e.id };
      }),
  );
}

describe('AuditLog', () => {
  it('appends one JSON line per event with id, seq and time, and lists newest last', async () => {
    let n = 0;
    const log = AuditLog.open({
      file,
      now: () => new Date(Date.UTC(2026, 0, 1, 0, 0, n)),
      idGenerator: () => `id-${++n}`,
    });
    const a = log.append({ type: 'launch', result: 'ok', vmId: 'vm-1', client: '127.0.0.1:5000' });
    const b = log.append({
      type: 'validate',
      result: 'refused',
      vmId: 'vm-2',
      reason: 'measurement-mismatch',
    });
    expect(a).toMatchObject({ id: 'id-1', seq: 1, time: '2026-01-01T00:00:01.000Z', type: 'launch' });
    expect(b.seq).toBe(2);
    await log.flushed();
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual([1, 2]);
    expect(log.list().map((e) => e.seq)).toEqual([1, 2]);
    await log.close();
  });

  it('keeps seq monotonic across restarts and filters by type, vm, result, since and limit', async () => {
    let t = Date.UTC(2026, 0, 1);
    const now = () => new Date((t += 1000));
    const first = AuditLog.open({ file, now });
    first.append({ type: 'launch', result: 'ok', vmId: 'a' });
    first.append({ type: 'validate', result: 'refused', vmId: 'b' });
    await first.close();
    const log = AuditLog.open({ file, now });
    expect(log.seq).toBe(2);
    log.append({ type: 'secret-release', result: 'ok', vmId: 'a' });
    log.append({ type: 'validate', result: 'ok', vmId: 'a' });
    expect(log.list().map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(log.list({ types: ['validate'] }).map((e) => e.seq)).toEqual([2, 4]);
    expect(log.list({ vmId: 'a', result: 'ok' }).map((e) => e.seq)).toEqual([1, 3, 4]);
    expect(
      log.list({ since: new Date(Date.UTC(2026, 0, 1, 0, 0, 3)).toISOString() }).map((e) => e.seq),
    ).toEqual([3, 4]);
    expect(log.list({ limit: 2 }).map((e) => e.seq)).toEqual([3, 4]);
    await log.close();
  });

  it('tells subscribers about each event until they unsubscribe; a throwing subscriber is harmless', async () => {
    const log = AuditLog.open({ file });
    const seen: AuditEvent[] = [];
    const off = log.subscribe((e) => seen.push(e));
    log.subscribe(() => {
      throw new Error('closed stream');
    });
    log.append({ type: 'listener', result: 'info', message: 'listening' });
    off();
    log.append({ type: 'listener', result: 'info', message: 'stopped' });
    expect(seen.map((e) => e.message)).toEqual(['listening']);
    await log.close();
  });

  it('drops a torn last line on open, says so, and the next event starts on its own line', async () => {
    const log = AuditLog.open({ file });
    log.append({ type: 'launch', result: 'ok' });
    log.append({ type: 'launch', result: 'ok' });
    await log.close();
    appendFileSync(file, '{"id":"x","seq":3,"ti');
    const reopened = AuditLog.open({ file });
    expect(reopened.openReport.tornLine).toBe(true);
    expect(reopened.openReport.warnings.join('\n')).toMatch(/incomplete last line/);
    expect(reopened.append({ type: 'launch', result: 'ok' }).seq).toBe(3);
    await reopened.close();
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3]);
    expect(AuditLog.open({ file }).openReport).toMatchObject({ tornLine: false, invalidLines: 0, events: 3 });
  });

  it('keeps a complete last event whose newline was cut', async () => {
    const log = AuditLog.open({ file });
    log.append({ type: 'launch', result: 'ok' });
    await log.close();
    writeFileSync(file, readFileSync(file, 'utf8').trimEnd());
    const reopened = AuditLog.open({ file });
    expect(reopened.openReport.tornLine).toBe(false);
    expect(reopened.append({ type: 'launch', result: 'ok' }).seq).toBe(2);
    await reopened.close();
    expect(lines()).toHaveLength(2);
  });

  it('skips and counts invalid lines', async () => {
    const log = AuditLog.open({ file });
    log.append({ type: 'launch', result: 'ok' });
    await log.close();
    appendFileSync(file, 'garbage\n{"seq":"x"}\n');
    const reopened = AuditLog.open({ file });
    expect(reopened.openReport.invalidLines).toBe(2);
    expect(reopened.openReport.warnings.join('\n')).toMatch(/skipped 2 line/);
    expect(reopened.list()).toHaveLength(1);
    expect(reopened.append({ type: 'launch', result: 'ok' }).seq).toBe(2);
    await reopened.close();
  });

  it('compacts to the newest maxEntries/2 events through an atomic rename', async () => {
    const log = AuditLog.open({ file, maxEntries: 10 });
    for (let i = 0; i < 10; i++) log.append({ type: 'launch', result: 'ok', message: `e${i}` });
    await log.flushed();
    expect(lines()).toHaveLength(10);
    log.append({ type: 'launch', result: 'ok', message: 'e10' });
    await log.flushed();
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual([7, 8, 9, 10, 11]);
    await log.appendDurable({ type: 'launch', result: 'ok', message: 'e11' });
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(log.list().map((e) => e.seq)).toEqual([7, 8, 9, 10, 11, 12]);
    await log.close();
    const reopened = AuditLog.open({ file, maxEntries: 10 });
    expect(reopened.append({ type: 'launch', result: 'ok' }).seq).toBe(13);
    await reopened.close();
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true);
  });

  it('rejects invalid input with a clear error and writes nothing', async () => {
    const log = AuditLog.open({ file });
    expect(() => log.append({ type: 'nope', result: 'ok' } as never)).toThrow(AuditInputError);
    expect(() => log.append({ type: 'launch', result: 'ok' } as never)).not.toThrow();
    expect(() => log.append({ type: 'launch', result: 'maybe' } as never)).toThrow(/result/);
    await log.close();
    expect(lines()).toHaveLength(1);
    expect(() => log.append({ type: 'launch', result: 'ok' })).toThrow(/closed/);
  });

  it('redacts secret-looking details before they reach the file', async () => {
    const log = AuditLog.open({ file });
    const secret = 'correct horse battery staple';
    const e = log.append({
      type: 'secret-release',
      result: 'ok',
      vmId: 'vm-1',
      details: {
        passphrase: secret,
        secretGuid: '736869e5-84f0-4973-92ec-06879ce3da0b',
        nested: { TEK: 'aabbccdd', luks_passphrase: secret, count: 3 },
        data: [1, 2, 3],
        raw: new Uint8Array([9, 9, 9]),
        key: '',
        digests: ['ab'.repeat(32)],
        secrets: ['736869e5-84f0-4973-92ec-06879ce3da0b'],
        hostToken: 'tok-123456',
      },
    });
    await log.close();
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(secret);
    expect(text).not.toContain('aabbccdd');
    expect(e.details).toMatchObject({
      passphrase: REDACTED,
      secretGuid: '736869e5-84f0-4973-92ec-06879ce3da0b',
      nested: { TEK: REDACTED, luks_passphrase: REDACTED, count: 3 },
      data: REDACTED,
      raw: '<3 bytes>',
      key: '',
      digests: ['ab'.repeat(32)],
      secrets: ['736869e5-84f0-4973-92ec-06879ce3da0b'],
      hostToken: REDACTED,
    });
    expect(text).not.toContain('tok-123456');
    expect(e.details?.redacted).toEqual([
      'passphrase',
      'nested.TEK',
      'nested.luks_passphrase',
      'data',
      'hostToken',
    ]);
  });

  it('cuts an overlong message and replaces oversized details by a note instead of failing', async () => {
    const log = AuditLog.open({ file });
    const e = log.append({
      type: 'validate',
      result: 'refused',
      message: 'm'.repeat(10_000),
      details: { digests: Array.from({ length: 5000 }, () => 'ab'.repeat(32)) },
    });
    await log.close();
    expect(e.message).toHaveLength(4000);
    expect(String(e.details?.truncated)).toMatch(/over the 262144 limit/);
    expect(lines()).toHaveLength(1);
  });

  it('group commit: append returns at once, events of one tick share one write + fdatasync', async () => {
    const log = AuditLog.open({ file });
    const seen: number[] = [];
    log.subscribe((e) => seen.push(e.seq));
    const synced: Array<[number, number]> = [];
    const waits: Array<Promise<void>> = [];
    for (let i = 1; i <= 200; i++) {
      const e = log.append({ type: 'launch', result: 'ok', message: `e${i}` });
      expect(e.seq).toBe(i);
      waits.push(log.flushed(e.seq).then(() => void synced.push([e.seq, log.durableSeq])));
    }
    // Assigned and announced synchronously; none counts as durable before the event loop turns.
    expect(seen).toHaveLength(200);
    expect(log.durableSeq).toBe(0);
    await Promise.all(waits);
    // The first event's write was already in flight; the other 199 went out together in the next one.
    expect(synced[0]).toEqual([1, 1]);
    expect(new Set(synced.slice(1).map(([, d]) => d))).toEqual(new Set([200]));
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    await log.close();
  });

  it('appendDurable resolves only once its line is in the file', async () => {
    const log = AuditLog.open({ file });
    log.append({ type: 'launch', result: 'ok' });
    const e = await log.appendDurable({ type: 'secret-release', result: 'ok', vmId: 'vm-1' });
    expect(log.durableSeq).toBeGreaterThanOrEqual(e.seq);
    expect(lines().map((l) => JSON.parse(l).id)).toContain(e.id);
    await log.close();
  });

  it('compaction under batching: a burst far past maxEntries leaves the newest events, consecutive', async () => {
    const log = AuditLog.open({ file, maxEntries: 10 });
    for (let i = 0; i < 1000; i++) log.append({ type: 'launch', result: 'ok', message: `e${i}` });
    await log.flushed();
    const inMemory = log.list().map((e) => e.seq);
    expect(inMemory.at(-1)).toBe(1000);
    expect(inMemory.length).toBeLessThanOrEqual(10);
    expect(lines().map((l) => JSON.parse(l).seq)).toEqual(inMemory);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    await log.close();
    const reopened = AuditLog.open({ file, maxEntries: 10 });
    expect(reopened.openReport).toMatchObject({ tornLine: false, invalidLines: 0 });
    expect(reopened.list().map((e) => e.seq)).toEqual(inMemory);
    await reopened.close();
  });

  it('close() writes what is pending; appends after close throw', async () => {
    const log = AuditLog.open({ file });
    for (let i = 0; i < 5; i++) log.append({ type: 'launch', result: 'ok' });
    const closing = log.close();
    expect(() => log.append({ type: 'launch', result: 'ok' })).toThrow(/closed/);
    await closing;
    await log.close();
    expect(lines()).toHaveLength(5);
  });

  it('a failed write fails closed: waiters reject and later appends throw AuditWriteError', async () => {
    const log = AuditLog.open({ file });
    // Pull the file descriptor out from under the writer (what a vanished disk looks like to it).
    closeSync((log as unknown as { fd: number }).fd);
    await expect(log.appendDurable({ type: 'secret-release', result: 'ok' })).rejects.toThrow(
      AuditWriteError,
    );
    expect(() => log.append({ type: 'launch', result: 'ok' })).toThrow(AuditWriteError);
    await expect(log.flushed()).rejects.toThrow(/could not be written/);
    (log as unknown as { fd: number | undefined }).fd = undefined;
    await log.close();
  });

  it('a kill -9 after the retained write of events the main log never got: their seqs are not reused', async () => {
    // The crash state: main log compacted to 11..15; the retained stream also holds 16..18, appended while
    // the main write of 11..15 was in flight and written with that batch's retained part, then the kill.
    writeFileSync(file, [11, 12, 13, 14, 15].map((q) => evLine(q, `main-${q}`)).join(''));
    const rdir = join(dir, 'audit-retained');
    mkdirSync(rdir);
    writeFileSync(
      join(rdir, 'current.log'),
      Array.from({ length: 18 }, (_, i) =>
        evLine(i + 1, i + 1 <= 15 ? `main-${i + 1}` : `lost-${i + 1}`),
      ).join(''),
    );
    const log = AuditLog.open({ file, maxEntries: 20 });
    expect(log.seq).toBe(18);
    expect(log.openReport.warnings.join('\n')).toMatch(/up to seq 18/);
    expect((await log.appendDurable({ type: 'profile', result: 'info' })).seq).toBe(19);
    expect(log.list().map((e) => e.seq)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    await log.close();
    // No seq names two events anywhere on disk.
    const ids = new Map<number, Set<string>>();
    for (const { seq, id } of onDisk()) ids.set(seq, (ids.get(seq) ?? new Set()).add(id));
    expect([...ids].filter(([, s]) => s.size > 1)).toEqual([]);
    const reopened = AuditLog.open({ file, maxEntries: 20 });
    expect(reopened.seq).toBe(19);
    expect(reopened.list().map((e) => e.seq)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    await reopened.close();
  });

  it('list() is in seq order without repeats when current.log is not (a repair, an older crash)', async () => {
    // current.log as the older code could leave it: 6..8 written twice (the first ones lost from the main
    // log), 9 added by the repair at open after 10 in the stream.
    writeFileSync(file, [evLine(9, 'b-9'), evLine(10, 'x-10', 'launch'), evLine(11, 'b-11')].join(''));
    const rdir = join(dir, 'audit-retained');
    mkdirSync(rdir);
    writeFileSync(
      join(rdir, 'current.log'),
      [1, 2, 3, 4, 5, 6, 7, 8].map((q) => evLine(q, `a-${q}`)).join('') +
        [6, 7, 8].map((q) => evLine(q, `b-${q}`)).join('') +
        evLine(11, 'b-11'),
    );
    const log = AuditLog.open({ file, maxEntries: 10 });
    expect(log.seq).toBe(11);
    const listed = log.list();
    expect(listed.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // The later line for a seq wins (the one that also reached the main log).
    expect(listed.slice(5, 8).map((e) => e.id)).toEqual(['b-6', 'b-7', 'b-8']);
    expect(log.listWindow().map((e) => e.seq)).toEqual([9, 10, 11]);
    // The repair added 9 (in the main log, not in the stream) after 11: still listed in order.
    expect(onDisk().filter((l) => l.file.endsWith('current.log') && l.seq === 9)).toHaveLength(1);
    // Past the window: the retained events leave it, merged with the ones read at open, no repeats.
    for (let i = 0; i < 12; i++) log.append({ type: i % 2 === 0 ? 'profile' : 'launch', result: 'info' });
    await log.flushed();
    const seqs = log.list().map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
    // The window is consecutive; before it, the newest maxEntries retained events.
    const window = log.listWindow().map((e) => e.seq);
    expect(window).toEqual(Array.from({ length: window.length }, (_, i) => 23 - window.length + 1 + i));
    expect(seqs.filter((q) => q < window[0]!)).toHaveLength(10);
    expect(seqs.at(-1)).toBe(23);
    await log.close();
  });

  it('the retained part of a batch goes out only after the main write of the same events', async () => {
    const log = AuditLog.open({ file });
    const a = log.append({ type: 'profile', result: 'info' });
    // Appended while the write of `a` is in flight: it belongs to the next main batch.
    const b = log.append({ type: 'profile', result: 'info' });
    await log.flushed(a.seq);
    const retained = onDisk().filter((l) => l.file.endsWith('current.log'));
    expect(retained.map((l) => l.seq)).not.toContain(b.seq);
    await log.flushed();
    const main = new Set(lines().map((l) => (JSON.parse(l) as AuditEvent).seq));
    for (const l of onDisk().filter((x) => x.file.endsWith('current.log')))
      expect(main.has(l.seq)).toBe(true);
    await log.close();
  });

  it('redactDetails leaves harmless details untouched', async () => {
    const d = { expected: ['00'.repeat(32)], inputs: { cpuCount: 4, vmsa: 'kvm-init2' } };
    expect(redactDetails(d)).toEqual({ details: d, redacted: [] });
  });
});
