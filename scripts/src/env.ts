/**
 * The configuration of `npm start` and of `npm run bench`: the one place in scripts/ that reads
 * `process.env`.
 * Only what the orchestrator itself decides on is parsed here; the API validates the rest of the
 * environment (which it inherits) and refuses to start with a list of problems.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';

const optional = z.preprocess((value) => (value === '' ? undefined : value), z.string().optional());

const schema = z.object({
  PORT: z.coerce.number().int().min(1).max(65_535).default(4000),
  INDEXER_PORT: z.coerce.number().int().min(1).max(65_535).default(42_069),
  DATA_DIR: z.string().default('.data'),
  DATABASE_URL: optional,
  PONDER_DATABASE_URL: optional,
  RPC_URL: optional,
  CHAIN_ID: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.coerce.number().int().positive().optional(),
  ),
  USDC_ADDRESS: optional,
  TREASURY_ADDRESS: optional,
  START_BLOCK: z.coerce.number().int().min(0).default(0),
  DEVNET_BLOCK_TIME: z.coerce.number().int().min(1).max(60).default(1),
});

export type StartConfig = z.infer<typeof schema>;

/** Loads `.env` into the environment when there is one (the processes started later inherit it). */
export function loadDotEnv(file: string): void {
  if (existsSync(file)) process.loadEnvFile(file);
}

export function loadStartConfig(source: Record<string, string | undefined> = process.env): StartConfig {
  // An empty variable (VAR= in a .env file) means "use the default", as if it were unset.
  const parsed = schema.safeParse(
    Object.fromEntries(Object.entries(source).filter(([, value]) => value !== '')),
  );
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

const benchSchema = z.object({
  /** Another OpenAI-compatible upstream for the gateway benchmark (its base URL, e.g. http://host/v1). */
  BENCH_UPSTREAM_URL: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.url({ protocol: /^https?$/ }).optional(),
  ),
  BENCH_MODEL: z.string().min(1).default('chainmeter-dev'),
  /** A directory: the gateway benchmark's API process writes a V8 CPU profile there. */
  BENCH_CPU_PROF: optional,
  /** Passed to the benchmark's API process (prices for BENCH_MODEL). */
  LLM_PRICES: optional,
});

export type BenchConfig = z.infer<typeof benchSchema>;

export function loadBenchConfig(source: Record<string, string | undefined> = process.env): BenchConfig {
  const parsed = benchSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`Invalid benchmark configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/** The environment the orchestrator hands to the processes it starts (they validate it themselves). */
export function inheritedEnv(): NodeJS.ProcessEnv {
  return { ...process.env };
}
