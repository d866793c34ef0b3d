import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// Node's on-disk compile cache for every process the suite starts (the test workers, and the API processes,
// Ponder and builds they spawn inherit it): the same code, compiled once instead of at each of the many
// process starts of a run. Kept under node_modules (ignored by git), keyed by Node itself per version.
process.env.NODE_COMPILE_CACHE ??= fileURLToPath(
  new URL('./node_modules/.cache/chainmeter-node-compile', import.meta.url),
);

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
    // Vitest's default on a 2-core machine is one file at a time (cores - 1). Most of a file's time is spent
    // waiting on its child processes (anvil, Ponder's polling, API processes, Chromium), so two files at
    // once keep both cores busy; every file has its own chain, databases, ports and Redis keys.
    maxWorkers: 2,
  },
});
