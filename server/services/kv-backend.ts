/**
 * A tiny typed key-value backend for the JSON stores (profiles, settings). The headless service uses
 * `conf` directly; the Electron side passes an electron-store instance (electron-store extends conf), which
 * satisfies the same interface. Nothing here may import electron or electron-store.
 */
import { DomainError } from '../../app/errors';
import Conf, { type Options as ConfOptions } from 'conf';
import * as fs from 'node:fs';
import { join } from 'node:path';

export interface KeyValueBackend<T extends Record<string, unknown>> {
  get<K extends keyof T>(key: K): T[K];
  set<K extends keyof T>(key: K, value: T[K]): void;
  /** The file that holds the values (or a description, for an in-memory backend). */
  readonly path: string;
}

/** The backing JSON file cannot be read as JSON: the store refuses to run rather than overwrite it. */
export class StoreCorruptError extends DomainError<'store-corrupt'> {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(
      'store-corrupt',
      `${path} is not valid JSON (${detail}): fix it by hand or move it away; it was left untouched`,
    );
    this.name = 'StoreCorruptError';
  }
}

export interface ConfBackendOptions<T extends Record<string, unknown>> {
  /** Directory of the JSON file. */
  cwd: string;
  /** File name without the .json extension. */
  configName: string;
  defaults: T;
  /** Temp files of conf writes cut by a crash that are older than this are removed at open (default 10 s). */
  staleTempMs?: number;
  /** Makes the conf instance (default `new Conf`); the desktop app passes electron-store, a conf subclass. */
  construct?: (options: ConfOptions<T>) => Conf<T>;
}

/**
 * Removes `<name>.json.tmp-<stamp>` files that a crash left between conf's temp write and its rename;
 * only old ones, so a write in flight in another process is never touched. Returns how many.
 */
export function removeStaleConfTemp(cwd: string, configName: string, olderThanMs: number): number {
  const pattern = new RegExp(
    `^${configName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.json\\.tmp-\\d{10}[a-f0-9]{6}$`,
  );
  const limit = Date.now() - olderThanMs;
  let removed = 0;
  let names: string[];
  try {
    names = fs.readdirSync(cwd);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!pattern.test(name)) continue;
    try {
      if (fs.statSync(join(cwd, name)).mtimeMs <= limit) {
        fs.rmSync(join(cwd, name), { force: true });
        removed++;
      }
    } catch {
      // Already gone.
    }
  }
  return removed;
}

function isSyntaxError(e: unknown): e is Error {
  return e instanceof Error && e.name === 'SyntaxError';
}

/**
 * A backend on `conf`: one JSON file, re-read on every get, written whole on every set through a temp
 * file + fsync + rename (conf uses `atomically`), so a crash leaves the old or the new file, never a mix.
 */
export function createConfBackend<T extends Record<string, unknown>>(
  options: ConfBackendOptions<T>,
): KeyValueBackend<T> {
  removeStaleConfTemp(options.cwd, options.configName, options.staleTempMs ?? 10_000);
  let conf: Conf<T>;
  try {
    const construct = options.construct ?? ((o: ConfOptions<T>) => new Conf<T>(o));
    conf = construct({
      cwd: options.cwd,
      configName: options.configName,
      defaults: options.defaults,
      // Profile ids may contain dots: keys are plain keys, never paths.
      accessPropertiesByDotNotation: false,
      // A corrupt file is reported, never silently replaced by the defaults.
      clearInvalidConfig: false,
      configFileMode: 0o600,
      watch: false,
    });
  } catch (e) {
    if (isSyntaxError(e)) {
      throw new StoreCorruptError(`${options.cwd}/${options.configName}.json`, e.message);
    }
    throw e;
  }
  const path = conf.path;
  return {
    path,
    get<K extends keyof T>(key: K): T[K] {
      let value: unknown;
      try {
        value = conf.get(key as string);
      } catch (e) {
        if (isSyntaxError(e)) throw new StoreCorruptError(path, e.message);
        throw e;
      }
      return (value === undefined ? options.defaults[key] : value) as T[K];
    },
    set<K extends keyof T>(key: K, value: T[K]): void {
      // conf.set reads the whole file first: a corrupt file throws here instead of being overwritten.
      try {
        conf.set(key as string, value as T[keyof T & string]);
      } catch (e) {
        if (isSyntaxError(e)) throw new StoreCorruptError(path, e.message);
        throw e;
      }
    },
  };
}

/** A backend that keeps values in memory only (tests, --no-persist runs); values are deep-copied. */
export function createMemoryBackend<T extends Record<string, unknown>>(defaults: T): KeyValueBackend<T> {
  const data = structuredClone(defaults);
  return {
    path: '(memory)',
    get: (key) => structuredClone(data[key]),
    set: (key, value) => {
      data[key] = structuredClone(value);
    },
  };
}
