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
    // The core is platform-free: no Electron, no UI.
    files: ['app/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: ['electron'], patterns: ['**/main/**', '**/renderer/**', '**/preload/**', 'react*'] },
      ],
    },
  },
  {
    // The headless path must never load Electron: require('electron') throws in plain Node.
    files: ['main/cli/**/*.ts', 'main/services/**/*.ts', 'main/headless/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: ['electron', 'electron-store'] }],
    },
  },
  {
    files: ['scripts/**/*.mjs', '*.config.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
