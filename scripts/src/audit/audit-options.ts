import { parseArgs } from 'node:util';
import { DEVNET_RPC_URL } from '@chainmeter/schema';
import { type Address, getAddress, isAddress } from 'viem';
import type { AuditEnv } from '../env.ts';

/** The local `npm start` platform's API origin (docs/api.md: PORT defaults to 4000). */
const DEFAULT_API_ORIGIN = 'http://localhost:4000';

export const AUDIT_USAGE = `Usage: npm run audit -- [options]

Re-derives every credit from the chain (read through the RPC, never through the indexer) and checks it
against the platform's records. Exit code 0: consistent; 1: discrepancies found; 2: could not run.

Like the platform, it reads RPC_URL, CHAIN_ID, USDC_ADDRESS, TREASURY_ADDRESS, CONFIRMATIONS, DATABASE_URL
and PORT from the environment and from the repository's .env (the environment wins); options override them.

  --rpc <url>            the chain's JSON-RPC endpoint (default RPC_URL, else ${DEVNET_RPC_URL})
  --api <origin>         read the records through the API (default http://localhost:$PORT, PORT 4000)
  --key <cm_...>         an API key created by an auditor wallet (AUDITOR_ADDRESSES); needed with --api
  --database <url>       read the records from the API's PostgreSQL instead (operators; default
                         DATABASE_URL unless --api or --key is given)
  --from-block <n>       first block to scan (default 0); earlier credits are not matched
  --format <f>           markdown (default) or json
  --proof <file>         verify one account's proof document (from the accountProof query) instead
  --token <address>      the USDC contract         } default: USDC_ADDRESS (on Base, Circle's USDC),
  --treasury <address>   the treasury wallet       } TREASURY_ADDRESS, CONFIRMATIONS; what is still
  --confirmations <n>    blocks on top to be due   } unknown, from the API's public paymentConfig
  --dotenv <file>        read this .env file instead of the repository's
  --block-range <n>      widest eth_getLogs window in blocks (default 2000; narrower on dense ranges)
  --quiet                no progress on stderr
  --help
`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface AuditOptions {
  rpcUrl: string;
  apiOrigin: string;
  /** True when --api was given explicitly. */
  apiGiven: boolean;
  key: string | undefined;
  databaseUrl: string | undefined;
  fromBlock: bigint;
  format: 'json' | 'markdown';
  proofFile: string | undefined;
  token: Address | undefined;
  treasury: Address | undefined;
  confirmations: number | undefined;
  /** CHAIN_ID from the environment: the RPC must serve this chain. */
  chainId: number | undefined;
  blockRange: bigint;
  quiet: boolean;
  help: boolean;
}

function integer(name: string, value: string | undefined, min: bigint): bigint | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,30}$/.test(value) || BigInt(value) < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${value}"`);
  }
  return BigInt(value);
}

function address(name: string, value: string | undefined): Address | undefined {
  if (value === undefined) return undefined;
  if (!isAddress(value, { strict: false })) throw new UsageError(`--${name} "${value}" is not an address`);
  return getAddress(value);
}

function url(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = new URL(value);
    if (!['http:', 'https:', 'ws:', 'wss:', 'postgres:', 'postgresql:'].includes(parsed.protocol))
      throw new Error();
  } catch {
    throw new UsageError(`--${name} "${value}" is not a URL`);
  }
  return value.replace(/\/$/, '');
}

/**
 * Parses the command line over the platform's environment (`environment(envFile)`, given the `--dotenv`
 * option; see `auditEnvironment`): an option wins over its variable. Throws a `UsageError` that says what is
 * wrong.
 */
export function parseAuditOptions(
  argv: readonly string[],
  environment: (envFile: string | undefined) => AuditEnv = () => ({}),
): AuditOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        rpc: { type: 'string' },
        api: { type: 'string' },
        key: { type: 'string' },
        database: { type: 'string' },
        'from-block': { type: 'string' },
        format: { type: 'string' },
        proof: { type: 'string' },
        token: { type: 'string' },
        treasury: { type: 'string' },
        confirmations: { type: 'string' },
        'block-range': { type: 'string' },
        dotenv: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const text = (name: string) => values[name] as string | undefined;
  const format = text('format') ?? 'markdown';
  if (format !== 'json' && format !== 'markdown') {
    throw new UsageError(`--format must be json or markdown, got "${format}"`);
  }
  const key = text('key');
  if (key !== undefined && !/^cm_[A-Za-z0-9_-]{10,200}$/.test(key)) {
    throw new UsageError('--key must be an API key (cm_...)');
  }
  const confirmations = integer('confirmations', text('confirmations'), 0n);
  if (confirmations !== undefined && confirmations > 1_000n) {
    throw new UsageError('--confirmations must be at most 1000');
  }
  let platformEnv: AuditEnv;
  try {
    platformEnv = environment(text('dotenv'));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  // A proof document names its own chain, token, treasury and confirmations: only the RPC comes from here.
  const env: AuditEnv = text('proof') === undefined ? platformEnv : { RPC_URL: platformEnv.RPC_URL };
  const apiGiven = text('api') !== undefined;
  return {
    rpcUrl: url('rpc', text('rpc')) ?? env.RPC_URL?.replace(/\/$/, '') ?? DEVNET_RPC_URL,
    apiOrigin: url('api', text('api')) ?? (env.PORT ? `http://localhost:${env.PORT}` : DEFAULT_API_ORIGIN),
    apiGiven,
    key,
    // DATABASE_URL names the platform's own database; an explicit API (or key) means the API's records.
    databaseUrl: url('database', text('database')) ?? (apiGiven || key ? undefined : env.DATABASE_URL),
    fromBlock: integer('from-block', text('from-block'), 0n) ?? 0n,
    format,
    proofFile: text('proof'),
    token: address('token', text('token')) ?? env.USDC_ADDRESS,
    treasury: address('treasury', text('treasury')) ?? env.TREASURY_ADDRESS,
    confirmations: confirmations === undefined ? env.CONFIRMATIONS : Number(confirmations),
    chainId: env.CHAIN_ID,
    blockRange: integer('block-range', text('block-range'), 1n) ?? 2_000n,
    quiet: values.quiet === true,
    help: values.help === true,
  };
}
