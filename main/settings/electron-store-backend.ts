/**
 * The desktop app's JSON stores on electron-store (which extends conf): the same options, atomic writes
 * and corrupt-file refusal as headless mode (createConfBackend), in the directory the caller names.
 */
import ElectronStore from 'electron-store';
import type { KeyValueBackendFactory } from '../../server/serve/serve';
import { createConfBackend } from '../../server/services/kv-backend';

/** A KeyValueBackendFactory for startService that keeps each store in an electron-store file. */
export const electronStoreBackend: KeyValueBackendFactory = (options) =>
  createConfBackend({
    ...options,
    // electron-store names the file `name` (conf's configName) and defaults cwd to userData.
    construct: ({ configName, projectName: _p, projectVersion: _v, projectSuffix: _s, ...rest }) =>
      new ElectronStore({ ...rest, ...(configName !== undefined ? { name: configName } : {}) }),
  });
