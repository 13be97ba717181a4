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

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EISDIR: 'it is a directory, not a file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'it exists already',
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  ENOTEMPTY: 'the directory is not empty',
  EADDRINUSE: 'the address is already in use (another program listens there)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  ECONNREFUSED: 'the connection was refused',
};

const SYSCALL_VERB: Record<string, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  mkdir: 'create the directory',
  scandir: 'list the directory',
  stat: 'find',
  lstat: 'find',
  rename: 'rename',
  unlink: 'delete',
  rmdir: 'delete the directory',
  copyfile: 'copy',
  chmod: 'change the mode of',
  listen: 'listen on',
  bind: 'listen on',
  connect: 'connect to',
};

/**
 * A sentence for a system error (Node's `ENOENT: no such file or directory, open '/x'`), e.g.
 * "cannot open /x: no such file or directory"; undefined for anything else. Looks through `cause`.
 */
export function systemErrorSentence(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const err = cur as NodeJS.ErrnoException & { address?: string; port?: number; dest?: string };
    if (typeof err.code !== 'string' || !(err.code in ERRNO_TEXT)) continue;
    const verb = (err.syscall && SYSCALL_VERB[err.syscall]) ?? 'use';
    const where =
      err.path ??
      (err.address !== undefined
        ? `${err.address}${err.port !== undefined ? `:${err.port}` : ''}`
        : undefined);
    return `cannot ${verb}${where ? ` ${where}` : ''}: ${ERRNO_TEXT[err.code]} (${err.code})`;
  }
  return undefined;
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
      // A file or network problem is the user's to fix, said as a sentence (exit 2), not an internal error.
      const sentence = systemErrorSentence(e);
      if (sentence !== undefined) {
        process.stderr.write(`${name}: ${sentence}\n`);
        process.exitCode = 2;
        return;
      }
      process.stderr.write(`${name}: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = internalErrorCode;
    },
  );
}
