import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveOwnerToken } from './serve';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(join(tmpdir(), 'owner-token-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('resolveOwnerToken', () => {
  it('generates DIR/owner-token with mode 0600 and reuses it', () => {
    const dir = tmp();
    const a = resolveOwnerToken(dir, undefined);
    expect(a.file).toBe(join(dir, 'owner-token'));
    expect(a.token.length).toBeGreaterThanOrEqual(32);
    expect(fs.statSync(a.file!).mode & 0o777).toBe(0o600);
    expect(resolveOwnerToken(dir, undefined).token).toBe(a.token);
  });

  it('tightens an existing token file readable by others to 0600', () => {
    const dir = tmp();
    const file = join(dir, 'owner-token');
    fs.writeFileSync(file, 'a-token-of-enough-length\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(resolveOwnerToken(dir, undefined).token).toBe('a-token-of-enough-length');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('SEV_ATTEST_OWNER_TOKEN wins and writes no file; a short one is refused', () => {
    const dir = tmp();
    expect(resolveOwnerToken(dir, 'x'.repeat(20))).toEqual({ token: 'x'.repeat(20), file: undefined });
    expect(fs.existsSync(join(dir, 'owner-token'))).toBe(false);
    expect(() => resolveOwnerToken(dir, 'short')).toThrow(/at least 16/);
  });
});
