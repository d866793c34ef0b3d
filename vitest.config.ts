import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{schema,indexer,api,scripts,web}/**/*.test.ts', 'api/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/.ponder/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
