import { z } from 'zod';

/**
 * Query parameters of the routes the API consumes. Anything malformed is a 400 with every problem
 * listed, never a 500: the caller is another service and should see what it got wrong.
 */

const blockNumber = z
  .string()
  .regex(/^\d{1,20}$/, 'must be a non-negative integer')
  .transform(BigInt);
const smallInteger = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const MAX_LIMIT = 5_000;
const DEFAULT_LIMIT = 1_000;

const transfersQuery = z
  .object({
    afterBlock: blockNumber.optional(),
    afterLogIndex: smallInteger(0, 1_000_000_000).optional(),
    toBlock: blockNumber.optional(),
    limit: smallInteger(1, MAX_LIMIT).default(DEFAULT_LIMIT),
  })
  .strict()
  .refine((q) => q.afterLogIndex === undefined || q.afterBlock !== undefined, {
    message: 'afterLogIndex needs afterBlock',
    path: ['afterLogIndex'],
  });

const windowQuery = z
  .object({
    fromBlock: blockNumber,
    limit: smallInteger(1, MAX_LIMIT).default(MAX_LIMIT),
  })
  .strict();

/**
 * The position after which to read: (blockNumber, logIndex). A cursor without a log index stands
 * after the whole block.
 */
export type TransferCursor = { blockNumber: bigint; logIndex: number | undefined };

export type TransfersQuery = {
  after: TransferCursor | undefined;
  toBlock: bigint | undefined;
  limit: number;
};
export type WindowQuery = { fromBlock: bigint; limit: number };

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'query'}: ${issue.message}`).join('; ');
}

export function parseTransfersQuery(query: Record<string, string>): ParseResult<TransfersQuery> {
  const parsed = transfersQuery.safeParse(query);
  if (!parsed.success) return { ok: false, error: describe(parsed.error) };
  const { afterBlock, afterLogIndex, toBlock, limit } = parsed.data;
  return {
    ok: true,
    value: {
      after: afterBlock === undefined ? undefined : { blockNumber: afterBlock, logIndex: afterLogIndex },
      toBlock,
      limit,
    },
  };
}

export function parseWindowQuery(query: Record<string, string>): ParseResult<WindowQuery> {
  const parsed = windowQuery.safeParse(query);
  if (!parsed.success) return { ok: false, error: describe(parsed.error) };
  return { ok: true, value: parsed.data };
}
