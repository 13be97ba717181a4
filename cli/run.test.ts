import { describe, expect, it } from 'vitest';
import { commands } from './commands';
import { systemErrorSentence, type CliCommand, type CliCommandEntry, type CliIo } from './io';
import { runCli } from './run';

function capture(): CliIo & { stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
    cwd: process.cwd(),
    stdout: () => out,
    stderr: () => err,
  };
}

/** Entries that count their loads. */
function counted(names: string[]): { list: CliCommandEntry[]; loads: string[] } {
  const loads: string[] = [];
  const list = names.map((name) => ({
    name,
    summary: `the ${name} command`,
    load: async (): Promise<CliCommand> => {
      loads.push(name);
      return {
        name,
        summary: `the ${name} command`,
        usage: `usage: sev-attest ${name}`,
        run: async (argv) => (argv[0] === 'fail' ? 3 : 0),
      };
    },
  }));
  return { list, loads };
}

describe('runCli with lazily loaded commands', () => {
  it('lists every command for --help and on an unknown name without loading any', async () => {
    const { list, loads } = counted(['one', 'two', 'three']);
    const io = capture();
    expect(await runCli(['--help'], io, list)).toBe(0);
    expect(io.stdout()).toMatch(/one +the one command\n +two +the two command\n +three +the three command/);
    const bad = capture();
    expect(await runCli(['nope'], bad, list)).toBe(2);
    expect(bad.stderr()).toMatch(/unknown command 'nope'[\s\S]*three/);
    expect(await runCli([], capture(), list)).toBe(2);
    expect(loads).toEqual([]);
  });

  it('loads only the command that runs, for its run and for its --help', async () => {
    const { list, loads } = counted(['one', 'two', 'three']);
    expect(await runCli(['two', 'fail'], capture(), list)).toBe(3);
    const io = capture();
    expect(await runCli(['three', '--help'], io, list)).toBe(0);
    expect(io.stdout()).toBe('usage: sev-attest three\n');
    expect(loads).toEqual(['two', 'three']);
  });

  it("the CLI's own entries load commands with the same name and summary", async () => {
    expect(commands.map((c) => c.name)).toEqual([
      'digest',
      'validate',
      'serve',
      'verify-chain',
      'bundle',
      'snp',
      'chips',
      'audit',
      'database',
    ]);
    for (const entry of commands) {
      const cmd = await entry.load();
      expect({ name: cmd.name, summary: cmd.summary }).toEqual({ name: entry.name, summary: entry.summary });
    }
  });
});

describe('runCli: system errors and unknown options in plain words', () => {
  const chain = 'test/fixtures/platforms/exported-unsigned-cek';
  it('a missing file is a sentence and exit 2, not ENOENT', async () => {
    const io = capture();
    const code = await runCli(['verify-chain', '--pdh', '/nonexistent/pdh.cert', '--cert-chain', 'x'], io);
    expect(code).toBe(2);
    expect(io.stderr()).toBe(
      'sev-attest verify-chain: cannot open /nonexistent/pdh.cert: no such file or directory (ENOENT)\n',
    );
  });

  it('a path through a file is a sentence too (ENOTDIR)', async () => {
    const io = capture();
    const code = await runCli(['verify-chain', '--pdh', `${chain}/pdh.cert/x`, '--cert-chain', 'x'], io);
    expect(code).toBe(2);
    expect(io.stderr()).toMatch(
      /cannot open .*pdh\.cert\/x: a part of the path is a file, not a directory \(ENOTDIR\)\n$/,
    );
    expect(io.stderr()).not.toMatch(/ENOTDIR:/);
  });

  it('--cpu-id 00 is a chip id of the wrong length, not a file name', async () => {
    const io = capture();
    const code = await runCli(
      [
        'verify-chain',
        '--pdh',
        `${chain}/pdh.cert`,
        '--cert-chain',
        `${chain}/cert_chain.cert`,
        '--cpu-id',
        '00',
      ],
      io,
    );
    expect(code).toBe(2);
    expect(io.stderr()).toBe(
      'sev-attest verify-chain: --cpu-id 00: a chip id is 128 hex digits (64 bytes); this is 2\n',
    );
  });

  it("an unknown option gets the command's own message and usage", async () => {
    const io = capture();
    expect(await runCli(['verify-chain', '--bogus'], io)).toBe(2);
    expect(io.stderr()).toMatch(
      /^sev-attest verify-chain: Unknown option '--bogus'\n\nusage: sev-attest verify-chain/,
    );
    expect(io.stderr()).not.toMatch(/positional argument/);
    const io2 = capture();
    expect(await runCli(['verify-chain', '--pdh'], io2)).toBe(2);
    expect(io2.stderr()).toMatch(/^sev-attest verify-chain: --pdh needs a value\n/);
  });

  it('systemErrorSentence reads errno errors and their causes', () => {
    const e = Object.assign(new Error('EADDRINUSE: address already in use 127.0.0.1:8470'), {
      code: 'EADDRINUSE',
      syscall: 'listen',
      address: '127.0.0.1',
      port: 8470,
    });
    expect(systemErrorSentence(new Error('wrapped', { cause: e }))).toBe(
      'cannot listen on 127.0.0.1:8470: the address is already in use (another program listens there) (EADDRINUSE)',
    );
    expect(systemErrorSentence(new Error('plain'))).toBeUndefined();
  });
});
