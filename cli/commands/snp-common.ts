/** Helpers shared by the `sev-attest snp` subcommands: option values and input files as clear CliErrors. */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CliError } from '../io';

/**
 * An integer option written as Python's int(x, 0) reads it (decimal, 0x hex, 0o octal, 0b binary;
 * underscores between digits), within 0..max.
 */
export function parseIntOption(option: string, value: string, max: bigint): bigint {
  const v = value.trim().replace(/(?<=[0-9a-f])_(?=[0-9a-f])/gi, '');
  let n: bigint | undefined;
  if (/^(0x[0-9a-f]+|0o[0-7]+|0b[01]+|[1-9][0-9]*|0+)$/i.test(v)) n = BigInt(v.toLowerCase());
  if (n === undefined || n > max) {
    throw new CliError(
      `--${option} must be an integer in 0..${max <= 0xffffn ? max.toString() : '0x' + max.toString(16)} (decimal or 0x hex), got '${value}'`,
    );
  }
  return n;
}

export const U32_MAX = 0xffffffffn;
export const U64_MAX = (1n << 64n) - 1n;

/** Fixed-length hex option (e.g. a 16-byte family ID); `bytes` is the decoded length. */
export function parseHexOption(option: string, value: string, bytes: number): Uint8Array {
  const clean = value.trim().replace(/^0x/i, '');
  if (clean.length !== 2 * bytes || !/^[0-9a-f]*$/i.test(clean)) {
    throw new CliError(`--${option} must be ${bytes} bytes in hex (${2 * bytes} hex digits), got '${value}'`);
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/**
 * Resolves an input path against `cwd` and checks that it can be read, so a typo is one sentence instead
 * of a raw ENOENT. Devices such as /dev/null are accepted (sev-snp-measure's way of saying "empty").
 */
export async function inputFile(option: string, path: string, cwd: string): Promise<string> {
  if (path === '') throw new CliError(`--${option} needs a file name`);
  const full = resolve(cwd, path);
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(full)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new CliError(`the --${option} file '${path}' does not exist`);
    if (code === 'EACCES')
      throw new CliError(`the --${option} file '${path}' cannot be read (permission denied)`);
    throw new CliError(`the --${option} file '${path}' cannot be read (${code ?? String(e)})`);
  }
  if (isDirectory) throw new CliError(`--${option} '${path}' is a directory, not a file`);
  return full;
}
