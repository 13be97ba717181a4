import { describe, expect, it } from 'vitest';
import { commands } from './commands';
import type { CliCommand, CliCommandEntry, CliIo } from './io';
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
    ]);
    for (const entry of commands) {
      const cmd = await entry.load();
      expect({ name: cmd.name, summary: cmd.summary }).toEqual({ name: entry.name, summary: entry.summary });
    }
  });
});
