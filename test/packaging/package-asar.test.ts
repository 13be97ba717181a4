/**
 * Packs the desktop app offline (`electron-builder --dir` with a placeholder Electron distribution, no
 * native rebuild) and checks what ships: the asar holds the built main, preload and renderer and nothing
 * from the sources or tests, keytar's .node is unpacked, the demo firmware is in the resources, and the
 * fuses are flipped as configured.
 * The placeholder "electron" binary is only a fuse wire (sentinel + 8 fuses) so @electron/fuses can run.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listPackage } from '@electron/asar';
import { DEMO_FIRMWARE_FILE, findDemoFirmware } from '../../server/services/demo-setup';

const root = process.cwd();
const work = mkdtempSync(path.join(tmpdir(), 'sev-attest-pack-'));
const electronDist = path.join(work, 'electron-dist');
const output = path.join(work, 'release');
const unpacked = path.join(output, 'linux-unpacked');
const SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
// Every fuse starts enabled ('1'), so the test sees which ones the build turned off.
const FUSES_BEFORE = '11111111';

beforeAll(() => {
  mkdirSync(electronDist, { recursive: true });
  const placeholder = Buffer.concat([
    Buffer.from('placeholder electron binary\n'),
    Buffer.from(SENTINEL, 'ascii'),
    Buffer.from([1, FUSES_BEFORE.length]),
    Buffer.from(FUSES_BEFORE, 'ascii'),
  ]);
  writeFileSync(path.join(electronDist, 'electron'), placeholder);
  chmodSync(path.join(electronDist, 'electron'), 0o755);
  execFileSync(
    process.execPath,
    [path.join(root, 'node_modules/electron-vite/bin/electron-vite.js'), 'build'],
    {
      cwd: root,
      stdio: 'pipe',
    },
  );
  execFileSync(
    process.execPath,
    [
      path.join(root, 'node_modules/electron-builder/cli.js'),
      '--linux',
      '--dir',
      `-c.electronDist=${electronDist}`,
      '-c.npmRebuild=false',
      `-c.directories.output=${output}`,
    ],
    { cwd: root, stdio: 'pipe', env: { ...process.env, ELECTRON_SKIP_BINARY_DOWNLOAD: '1' } },
  );
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('packaged app (electron-builder --dir)', () => {
  it('the asar holds out/main, out/preload and out/renderer', () => {
    const files = listPackage(path.join(unpacked, 'resources/app.asar'), { isPack: false });
    for (const f of [
      '/out/main/index.js',
      '/out/preload/index.js',
      '/out/renderer/index.html',
      '/package.json',
    ]) {
      expect(files).toContain(f);
    }
    expect(files.some((f) => f.startsWith('/out/renderer/assets/') && f.endsWith('.js'))).toBe(true);
  });

  it('the asar holds nothing from the sources or the tests', () => {
    const files = listPackage(path.join(unpacked, 'resources/app.asar'), { isPack: false });
    const own = files.filter((f) => !f.startsWith('/node_modules/'));
    const offending = own.filter(
      (f) =>
        /\.(ts|tsx|map)$/.test(f) ||
        /^\/(app|main|preload|renderer|test|e2e|scripts|bench|docs|assets)(\/|$)/.test(f) ||
        /\.test\./.test(f),
    );
    expect(offending).toEqual([]);
    expect(files.some((f) => /\.test\.[jt]sx?$/.test(f))).toBe(false);
  });

  it("unpacks keytar's native module and ships the tray icon", () => {
    const node = path.join(
      unpacked,
      'resources/app.asar.unpacked/node_modules/keytar/build/Release/keytar.node',
    );
    expect(existsSync(node)).toBe(true);
    expect(existsSync(path.join(unpacked, 'resources/icon.png'))).toBe(true);
  });

  it('ships the demo firmware and its provenance note next to the asar, where findDemoFirmware looks', () => {
    const resources = path.join(unpacked, 'resources');
    const firmware = path.join(resources, 'demo', DEMO_FIRMWARE_FILE);
    expect(existsSync(firmware)).toBe(true);
    expect(
      readFileSync(firmware).equals(readFileSync(path.join(root, 'assets/demo', DEMO_FIRMWARE_FILE))),
    ).toBe(true);
    expect(existsSync(path.join(resources, 'demo/README.md'))).toBe(true);
    expect(findDemoFirmware('/', resources)).toBe(firmware);
  });

  it('flips the fuses: no run-as-node, no inspect arguments, app only from the asar', () => {
    const bin = readFileSync(path.join(unpacked, 'sev-attest'));
    const at = bin.indexOf(SENTINEL) + SENTINEL.length;
    const wire = bin.subarray(at + 2, at + 2 + FUSES_BEFORE.length).toString('ascii');
    // Order: RunAsNode, CookieEncryption, NODE_OPTIONS, inspect args, asar integrity, only-asar, v8 snapshot, file privileges.
    expect(wire[0]).toBe('0');
    expect(wire[1]).toBe('1');
    expect(wire[2]).toBe('0');
    expect(wire[3]).toBe('0');
    expect(wire[5]).toBe('1');
    expect(wire[7]).toBe('0');
  });
});
