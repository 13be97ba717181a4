import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../app/sev/bytes';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import { AuditLog } from '../../server/services/audit-log';
import type { CliIo } from '../io';
import { chipsCommand } from './chips';

function io(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const x: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t), env: {}, cwd };
  return { x, out, err };
}

describe('sev-attest chips', () => {
  const p = SimulatedSevPlatform.create({ generation: 'naples', seed: 'cli-chips' });
  const chip = toHex(p.chipId);

  it('pins, lists and unpins a chip CEK in the data directory, audited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chips-cli-'));
    writeFileSync(join(dir, 'cek.cert'), p.signedCek);
    const a = io(dir);
    expect(
      await chipsCommand.run(
        ['pin', chip.toUpperCase(), 'cek.cert', '--data-dir', dir, '--label', 'r1'],
        a.x,
      ),
    ).toBe(0);
    const b = io(dir);
    expect(await chipsCommand.run(['list', '--data-dir', dir], b.x)).toBe(0);
    expect(b.out.join('')).toMatch(new RegExp(`^${chip} \\S+ r1\\n$`));
    const log = AuditLog.open({ file: join(dir, 'audit.log') });
    expect(log.list().at(-1)).toMatchObject({ chipId: chip, message: expect.stringMatching(/CEK pinned/) });
    await log.close();
    expect(await chipsCommand.run(['unpin', chip, '--data-dir', dir], io(dir).x)).toBe(0);
    expect(await chipsCommand.run(['unpin', chip, '--data-dir', dir], io(dir).x)).toBe(1);
  });

  it('refuses an unsigned CEK and a malformed chip id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chips-cli-'));
    writeFileSync(join(dir, 'unsigned.cert'), p.certChain.subarray(2 * 2084));
    const a = io(dir);
    expect(await chipsCommand.run(['pin', chip, 'unsigned.cert', '--data-dir', dir], a.x)).toBe(1);
    expect(a.err.join('')).toMatch(/bad-request/);
    const b = io(dir);
    expect(await chipsCommand.run(['pin', 'abc', 'unsigned.cert', '--data-dir', dir], b.x)).toBe(1);
  });
});
