// Lint rules that catch defects, not style (formatting is left to the authors):
// unused code, promises nobody awaits or handles, `any`. Type-aware, so it reads the
// same tsconfig projects as `tsc -b`. Run by scripts/test.sh as one test.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/**', 'contrib/**', 'bin/**', 'scripts/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      'no-control-regex': 'off', // IMAP is full of control bytes on purpose
      'no-regex-spaces': 'off', // style: / {3}/ is not clearer than /   / in protocol text
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // Node's EventEmitter listener signature; this file is being split up (issue 15,
    // "one owner per state"): drop this exception then.
    files: ['packages/proxy/src/backend/backend-connection.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
