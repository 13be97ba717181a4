// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'out/',
      'dist/',
      'release/',
      'test-results/',
      // Bench bundles (scripts/bench.mjs): generated, gitignored.
      '.tmp/',
      'app/sev/amd-roots.generated.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Raw IPC only inside the typed wrappers (GitHub Desktop style): main/ipc/*.ts registers and sends,
    // preload/index.ts exposes one method per channel. Everything else goes through them.
    files: ['**/*.ts', '**/*.tsx'],
    ignores: ['main/ipc/*.ts', 'preload/index.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'electron',
              importNames: ['ipcMain', 'ipcRenderer'],
              message: 'use the typed wrappers: main/ipc/handle.ts, main/ipc/send.ts, preload/index.ts',
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: 'MemberExpression[property.name=/^(ipcMain|ipcRenderer)$/]',
          message: 'use the typed wrappers: main/ipc/handle.ts, main/ipc/send.ts, preload/index.ts',
        },
        {
          selector:
            "MemberExpression[property.name='send'][object.type='MemberExpression'][object.property.name='webContents']",
          message: 'send events with main/ipc/send.ts (contract channels, destroyed-window check)',
        },
        {
          selector: "MemberExpression[property.name='send'][object.name='webContents']",
          message: 'send events with main/ipc/send.ts (contract channels, destroyed-window check)',
        },
      ],
    },
  },
  {
    // The renderer is a web page: window.api (preload) is its only way to main.
    files: ['renderer/**/*.ts', 'renderer/**/*.tsx'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'electron', message: 'the renderer talks to main only through window.api' }],
          patterns: [
            { group: ['electron/*'], message: 'the renderer talks to main only through window.api' },
          ],
        },
      ],
      // Host-supplied strings reach the UI (client names, messages): never render them as HTML.
      'no-restricted-syntax': [
        'error',
        {
          selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']",
          message: 'never render strings as HTML: hosts are untrusted',
        },
        {
          selector: 'AssignmentExpression[left.property.name=/^(innerHTML|outerHTML)$/]',
          message: 'never render strings as HTML: hosts are untrusted',
        },
      ],
    },
  },
  {
    // The core is platform-free: no Electron, no UI.
    files: ['app/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['electron'],
          patterns: [
            '**/main/**',
            '**/server/**',
            '**/cli/**',
            '**/host/**',
            '**/renderer/**',
            '**/preload/**',
            'react*',
          ],
        },
      ],
    },
  },
  {
    // The Node services and the CLIs must never load Electron: require('electron') throws in plain Node.
    files: ['cli/**/*.ts', 'host/**/*.ts', 'server/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: ['electron', 'electron-store'] }],
    },
  },
  {
    // Services and the decision logic are transport-free: they never import the REST or IPC contract
    // (the listener and the owner-api handlers map contract types to domain types).
    files: ['server/services/**/*.ts', 'app/decision/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['electron', 'electron-store'],
          patterns: [
            { group: ['**/app/contract/*'], message: 'services take and return domain types (app/)' },
          ],
        },
      ],
    },
  },
  {
    files: ['scripts/**/*.mjs', '*.config.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
