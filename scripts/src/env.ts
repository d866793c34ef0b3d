/**
 * The configuration of `npm start`, `npm run bench` and `npm run audit`: the one place in scripts/ that reads
 * `process.env`.
 * Only what the orchestrator itself decides on is parsed here; the API validates the rest of the
 * environment (which it inherits) and refuses to start with a list of problems.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { getAddress, isAddress } from 'viem';
import { z } from 'zod';

/** The repository's `.env`, which `npm start` loads and `npm run audit` reads. */
const ROOT_DOT_ENV = fileURLToPath(new URL('../../.env', import.meta.url));

const optional = z.preprocess((value) => (value === '' ? undefined : value), z.string().optional());

const schema = z.object({
  PORT: z.coerce.number().int().min(1).max(65_535).default(4000),
  INDEXER_PORT: z.coerce.number().int().min(1).max(65_535).default(42_069),
  /** The devnet's JSON-RPC port (anvil), when `npm start` runs one. */
  DEVNET_PORT: z.coerce.number().int().min(1).max(65_535).default(8545),
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
  /** A directory: the gateway and read path benchmarks' API process writes a V8 CPU profile there. */
  BENCH_CPU_PROF: optional,
  /** `off`: the gateway benchmark leaves out its peer (Portkey's gateway). */
  BENCH_PEER: z.enum(['on', 'off']).default('on'),
  /** Passed to the benchmark's API process (prices for BENCH_MODEL). */
  LLM_PRICES: optional,
  /** The footprint benchmark: how many `npm start` runs on its fresh data directory (the first is a first start). */
  BENCH_FOOTPRINT_RUNS: z.coerce.number().int().min(1).max(20).default(3),
  /** The footprint benchmark: seconds of sampling after `ready`, for the settled figure. */
  BENCH_FOOTPRINT_SETTLE_S: z.coerce.number().int().min(1).max(600).default(30),
  /**
   * What `npm install` leaves for the first start (the web build and the PGlite template, postinstall.ts):
   * `keep` them as they are; `install`: delete both and run the postinstall step again (timed), as on a
   * fresh clone; `none`: delete both, so that the first start does all the work itself.
   */
  BENCH_FOOTPRINT_CACHES: z.enum(['keep', 'install', 'none']).default('keep'),
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

const optionalNumber = (schema: z.ZodNumber) =>
  z.preprocess((value) => (value === '' ? undefined : value), z.coerce.number().pipe(schema).optional());

const optionalAddress = z.preprocess(
  (value) => (value === '' ? undefined : value),
  z
    .string()
    .trim()
    .refine(
      (value) => isAddress(value, { strict: false }),
      'must be an address: 0x followed by 40 hex digits',
    )
    .transform((value) => getAddress(value))
    .optional(),
);

/**
 * What the audit CLI takes from the platform's own environment (the same variables, read the same way as
 * the API reads them): the chain, the token, the treasury, the confirmations, the database, the port.
 */
const auditSchema = z.object({
  RPC_URL: z.preprocess((value) => (value === '' ? undefined : value), z.url().optional()),
  CHAIN_ID: optionalNumber(z.number().int().positive()),
  USDC_ADDRESS: optionalAddress,
  TREASURY_ADDRESS: optionalAddress,
  CONFIRMATIONS: optionalNumber(z.number().int().min(0).max(1_000)),
  DATABASE_URL: optional,
  PORT: optionalNumber(z.number().int().min(1).max(65_535)),
});

export type AuditEnv = z.infer<typeof auditSchema>;

/** Parses the audit's variables; throws an Error that lists every problem, by variable. */
function loadAuditEnv(source: Record<string, string | undefined>): AuditEnv {
  const parsed = auditSchema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid environment (or .env):\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/**
 * The audit's environment as `npm start` would see it: the process's variables over those of the `.env`
 * file (`envFile`, else the repository's `.env` when there is one; a named file must exist).
 */
export function auditEnvironment(envFile: string | undefined): AuditEnv {
  const file = envFile ?? ROOT_DOT_ENV;
  let fromFile: Record<string, string | undefined> = {};
  if (envFile !== undefined || existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new Error(`cannot read the env file ${file}: ${(error as Error).message}`);
    }
    fromFile = parseEnv(text);
  }
  return loadAuditEnv({ ...fromFile, ...process.env });
}

const soakSchema = z.object({
  /** How long `npm run soak` drives its load (`--duration` wins): `90s`, `10m`, or seconds. */
  SOAK_DURATION: optional,
  /** Where the soak writes its report (`--report` wins). */
  SOAK_REPORT: optional,
});

export type SoakEnv = z.infer<typeof soakSchema>;

export function loadSoakEnv(source: Record<string, string | undefined> = process.env): SoakEnv {
  return soakSchema.parse(source);
}
