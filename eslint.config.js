import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// src/domain is pure and owns its words: it may import only from src/domain (no package, no node:
// built-in, no edge such as telephony, psp or config). A relative path that climbs above
// src/domain depends on how deep the file sits, so there is one block per folder depth.
const DOMAIN_ONLY = 'src/domain is pure: import only from src/domain (define the word in src/domain and let the edges import it)';
const domainImportRules = [0, 1, 2, 3, 4, 5].map((depth) => ({
  files: [`src/domain/${'*/'.repeat(depth)}*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          { regex: '^[^.]', message: DOMAIN_ONLY },
          { regex: `^(\\.\\./){${depth + 1}}`, message: DOMAIN_ONLY },
        ],
      },
    ],
  },
}));

// src/config validates a file against domain words and its own option lists: it may climb out of
// src/config only to src/domain, src/net and src/errors.ts (packages such as zod and yaml are fine).
// Edge folders import their option lists from src/config, never the reverse.
const CONFIG_ONLY = 'src/config depends only on src/domain, src/net and src/errors.ts: put an option list in a constants module under src/config and let the edge import it';
const configImportRules = [0, 1, 2].map((depth) => ({
  files: [`src/config/${'*/'.repeat(depth)}*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: [{ regex: `^(\\.\\./){${depth + 1}}(?!(domain|net)/|errors\\.js$)`, message: CONFIG_ONLY }] },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'prompts/', '**/*.js', '!eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['test/**', 'bench/**', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
  ...domainImportRules,
  ...configImportRules,
);
