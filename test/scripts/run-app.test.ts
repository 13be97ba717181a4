/**
 * `npm run app`'s launch plan (scripts/run-app-lib.mjs): arguments after `--` reach the desktop app and
 * the browser mode alike (`npm run app -- --secret-store memory` used to be dropped).
 */
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs script without types
import { planLaunch, secretStoreArg } from '../../scripts/run-app-lib.mjs';

const base = { env: {}, home: '/home/u', node: '/usr/bin/node' };

describe('npm run app', () => {
  it('forwards its arguments to Electron', () => {
    const plan = planLaunch({ ...base, argv: ['--secret-store', 'memory'], electronBinary: '/e/electron' });
    expect(plan).toEqual({
      mode: 'desktop',
      command: '/e/electron',
      args: ['.', '--secret-store', 'memory'],
    });
  });

  it('forwards its arguments to serve --ui when there is no Electron binary', () => {
    const plan = planLaunch({ ...base, argv: ['--secret-store=memory'], electronBinary: undefined });
    expect(plan.mode).toBe('browser');
    expect(plan.args).toEqual([
      'dist/sev-attest.mjs',
      'serve',
      '--ui',
      '--data-dir',
      '/home/u/.local/share/sev-attest',
      '--secret-store=memory',
    ]);
  });

  it('keeps a --data-dir given by the user and refuses an unknown store', () => {
    const plan = planLaunch({ ...base, argv: ['--data-dir', '/d'], electronBinary: undefined });
    expect(plan.args).toEqual(['dist/sev-attest.mjs', 'serve', '--ui', '--data-dir', '/d']);
    expect(
      planLaunch({ ...base, argv: ['--secret-store', 'file'], electronBinary: undefined }).error,
    ).toMatch(/keychain or memory/);
    expect(secretStoreArg(['x', '--secret-store', 'memory'])).toBe('memory');
  });
});
