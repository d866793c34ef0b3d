import { parseArgs } from 'node:util';
import { DEVNET_RPC_URL } from '@chainmeter/schema';
import { type Address, getAddress, isAddress } from 'viem';

/** The local `npm start` platform's API origin (CONTRACT.md: PORT defaults to 4000). */
export const DEFAULT_API_ORIGIN = 'http://localhost:4000';

export const AUDIT_USAGE = `Usage: npm run audit -- [options]

Re-derives every credit from the chain (read through the RPC, never through the indexer) and checks it
against the platform's records. Exit code 0: consistent; 1: discrepancies found; 2: could not run.

  --rpc <url>            the chain's JSON-RPC endpoint (default ${DEVNET_RPC_URL})
  --api <origin>         read the records through the API (default ${DEFAULT_API_ORIGIN})
  --key <cm_...>         an API key created by an auditor wallet (AUDITOR_ADDRESSES); needed with --api
  --database <url>       read the records from the API's PostgreSQL instead (operators)
  --from-block <n>       first block to scan (default 0); earlier credits are not matched
  --format <f>           markdown (default) or json
  --proof <file>         verify one account's proof document (from the accountProof query) instead
  --token <address>      the USDC contract         } default: the API's public paymentConfig (or the
  --treasury <address>   the treasury wallet       } proof document); with --database and no API
  --confirmations <n>    blocks on top to be due   } answering, give --token and --treasury
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

/** Parses the command line; throws a `UsageError` that says what is wrong. */
export function parseAuditOptions(argv: readonly string[]): AuditOptions {
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
  return {
    rpcUrl: url('rpc', text('rpc')) ?? DEVNET_RPC_URL,
    apiOrigin: url('api', text('api')) ?? DEFAULT_API_ORIGIN,
    apiGiven: text('api') !== undefined,
    key,
    databaseUrl: url('database', text('database')),
    fromBlock: integer('from-block', text('from-block'), 0n) ?? 0n,
    format,
    proofFile: text('proof'),
    token: address('token', text('token')),
    treasury: address('treasury', text('treasury')),
    confirmations: confirmations === undefined ? undefined : Number(confirmations),
    blockRange: integer('block-range', text('block-range'), 1n) ?? 2_000n,
    quiet: values.quiet === true,
    help: values.help === true,
  };
}
