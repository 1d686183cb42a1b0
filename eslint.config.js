import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.stack/**',
      'apps/dashboard/dist/**',
      'libs/dataplane/src/generated/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'off',
    },
  },
  {
    // The apps the deployment tests deploy: plain CommonJS scripts run by node.
    files: ['test/fixtures/apps/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', module: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The dashboard: the rules of hooks (React's own lint rules), and browser globals.
    files: ['apps/dashboard/src/**/*.{ts,tsx}'],
    ...reactHooks.configs.flat.recommended,
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        crypto: 'readonly',
        sessionStorage: 'readonly',
        fetch: 'readonly',
      },
    },
  },
  {
    // Layering (docs/CONVENTIONS.md): libs never import apps; apps never import each other. Tests may.
    files: ['libs/**/*.ts', 'apps/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/apps/*', '../../*/src/**'], message: 'libs and apps must not import apps' },
          ],
        },
      ],
    },
  },
  {
    // #testing (given/when/then for deciders, stored events) is for specs and tests only. A rule of its
    // own, so the layering rules' no-restricted-imports below keep their patterns for every file.
    files: ['libs/**/*.ts', 'apps/**/*.ts'],
    ignores: ['**/*.spec.ts', 'libs/testing/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['\\#testing'], message: '#testing is for *.spec.ts and test/ files only' }] },
      ],
    },
  },
  {
    files: ['libs/contracts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['\\#*', '**/apps/*'], message: 'libs/contracts imports no other project lib' },
          ],
        },
      ],
    },
  },
  {
    files: ['libs/haproxy/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                'node:*',
                'fs',
                'net',
                'http',
                'child_process',
                '@nats-io/*',
                'typeorm',
                'pg',
                '\\#eventstore',
                '\\#persistence',
                '\\#dataplane',
              ],
              message: 'libs/haproxy is pure: no I/O',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/agent/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // A leading `#` starts a comment in these gitignore-style patterns: escape it, or it matches nothing.
              group: [
                '\\#persistence',
                '\\#eventstore',
                '\\#pki',
                'typeorm',
                'pg',
                '**/apps/*',
                '../../*/src/**',
              ],
              message: 'the agent runs on a customer VPS: contracts and client-side helpers only',
            },
          ],
        },
      ],
    },
  },
);
