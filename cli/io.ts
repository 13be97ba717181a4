/** What a CLI command may touch: its output streams and its environment. Tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** A usage or input problem: printed as one clear line, never a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface CliCommand {
  name: string;
  summary: string;
  usage: string;
  /** The command answers --help itself (a dispatcher of subcommands, each with its own usage). */
  handlesHelp?: boolean;
  /** Returns the process exit code. */
  run(argv: string[], io: CliIo): Promise<number>;
}

/** A command as the dispatcher lists it: name and summary at hand, the code loaded only to run it. */
export interface CliCommandEntry {
  name: string;
  summary: string;
  load(): Promise<CliCommand>;
}

/**
 * Runs a command line on this process's argv and stdio and sets its exit code; an unexpected throw is
 * one line, `<name>: internal error: …`, with exit `internalErrorCode`.
 */
export function runAsProcess(
  name: string,
  run: (argv: string[], io: CliIo) => Promise<number>,
  internalErrorCode: number,
): void {
  const io: CliIo = {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
  };
  run(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${name}: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = internalErrorCode;
    },
  );
}
