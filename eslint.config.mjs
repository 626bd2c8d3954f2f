// Lint: npm run lint (also run early by npm test). typescript-eslint's recommended rules without type
// information, so it stays fast on a 2-core CI machine; tsc (npm run typecheck) does the type checking.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Code that runs outside VS Code: the engine worker, the CLI, the bench, the exports and the panel's browser bundle. */
const outsideVsCode = ['src/engine', 'src/analysis', 'src/protocol', 'src/run', 'src/export', 'webview'];
const noVsCode =
  'The engine, analysis, protocol, run model and panel run outside VS Code: no vscode import here (see README, Architecture).';

export default defineConfig(
  {
    ignores: ['out/', 'dist/', 'node_modules/', '.tools/', '.cache/', 'bench/out/', 'bench/models/', 'test-output/'],
  },
  {
    files: ['src/**/*.ts', 'webview/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    rules: {
      // `const { runId: _, ...rest } = x` drops a property on purpose; a leading _ marks a deliberately unused name.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          ignoreRestSiblings: true,
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
    },
  },
  {
    // The vscode module exists only in the extension host. allowTypeImports is left off: `import type` is banned too.
    files: outsideVsCode.map((dir) => `${dir}/**/*.ts`),
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: [{ name: 'vscode', message: noVsCode }], patterns: [{ regex: '^vscode/', message: noVsCode }] },
      ],
      // The forms no-restricted-imports does not see: import('vscode') (value or type) and require('vscode').
      'no-restricted-syntax': [
        'error',
        { selector: "ImportExpression[source.value='vscode']", message: noVsCode },
        { selector: "TSImportType[argument.literal.value='vscode']", message: noVsCode },
        { selector: "CallExpression[callee.name='require'][arguments.0.value='vscode']", message: noVsCode },
      ],
    },
  },
  {
    // The benchmark passes loosely shaped JSON results between its sections, drivers and summary.
    files: ['bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // esbuild.js (CommonJS) and this file (ESM): plain Node.
    files: ['*.js', '*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', console: 'readonly', __dirname: 'readonly' },
    },
  },
  {
    files: ['*.mjs'],
    languageOptions: { sourceType: 'module' },
  },
);
