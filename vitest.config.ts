import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 ships CommonJS (`main`) and ESM (`module`). Node loads the CommonJS build for yoga and
    // Pothos; Vite would give our own modules the ESM one, and two GraphQLError classes make yoga mask
    // every expected error. One file for everybody.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    reporters: ['default', './scripts/src/vitest-summary-reporter.ts'],
    include: ['{schema,testkit,indexer,api,scripts,web}/**/*.test.ts', 'api/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/.ponder/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
