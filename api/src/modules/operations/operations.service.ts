/**
 * What operators do (issue 12), with the role checked here, in the service, for every transport:
 *
 * - Operators are the wallets in `OPERATOR_ADDRESSES`, acting through a session (SIWE like everyone); an
 *   API key never carries the role (`Viewer.operator`), so a leaked integration key cannot move balances.
 *   Anyone else is refused: UNAUTHENTICATED signed out, FORBIDDEN signed in.
 * - Every action is a record carrying the operator's wallet and their reason: the ledger entry it writes
 *   (`operator`, `reasonText`, both covered by the entry's hash) and, for a resolved call, its usage row.
 *
 * `adjustBalance`: an ADJUSTMENT of the account of `wallet` by a signed amount, referencing
 * `operator:<uuid>` (never a deposit, so the audit does not count it as a deposit's correction). A debit
 * may only take what the account can spend (balance - held - debt): the holds of calls in flight stay for
 * their settlement and a deep-reorg debt is paid first; otherwise INSUFFICIENT_CREDITS, with the balance,
 * held, debt and spendable amounts in the message and `extensions`. A credit does not pay a reorg debt (a
 * debt is settled by credits of the chain, deposit by deposit, as the audit checks it).
 *
 * `resolveUsage`: a NEEDS_REVIEW call was charged its hold. BILL charges the stated price instead, WAIVE
 * charges 0; the difference is one USAGE entry referencing the call (a refund when positive). A BILL above
 * what was charged must fit what the account can spend, or it is refused (INSUFFICIENT_CREDITS, saying how
 * much can be charged): never a partial charge the operator did not state. Under retries and concurrency it
 * happens once: the usage row is locked, and a call already resolved is refused with CONFLICT, naming who
 * resolved it and when. The key's spend counters are not changed: a key's spend is what its calls were
 * charged when they were made.
 */
import { randomUUID } from 'node:crypto';
import { getAddress } from 'viem';
import {
  cursorTime,
  cursorUuid,
  decodeCursor,
  encodeCursor,
  type Page,
  type PageArgs,
  pageSize,
} from '../../db/cursor.ts';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { badInput, conflict, forbidden, notFound, unauthenticated } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { Account } from '../accounts/accounts.entity.ts';
import { appendLedgerEntry } from '../ledger/ledger.service.ts';
import type { LedgerEntryView } from '../ledger/ledger.store.ts';
import type { UsageResolution } from '../metering/metering.entity.ts';
import type { UsageView } from '../metering/metering.service.ts';
import {
  lockUsageForResolution,
  type RevenueBucket,
  type RevenueGroupBy,
  readNeedsReviewPage,
  readRevenueBuckets,
  writeUsageResolution,
} from '../metering/usage-resolution.store.ts';

/** The longest reason an operator may give, in characters. */
export const REASON_MAX_LENGTH = 500;
/** The largest amount one adjustment or one billed price may be: 1,000,000 USD, in micro-USD (a typo guard). */
export const OPERATOR_AMOUNT_MAX = 1_000_000_000_000n;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CONTROL = /\p{Cc}/u;

/** The viewer, when it is an operator's session; else UNAUTHENTICATED (signed out) or FORBIDDEN. */
export function assertOperator(viewer: Viewer | null): Viewer {
  if (!viewer)
    throw unauthenticated('Sign in first: operators act through a session (sign in with Ethereum)');
  if (!viewer.operator) {
    throw forbidden(
      viewer.credential.kind === 'apiKey'
        ? 'API keys never carry the operator role: sign in with an operator wallet'
        : 'This needs the operator role (a wallet listed in OPERATOR_ADDRESSES)',
    );
  }
  return viewer;
}

/** A reason as recorded: trimmed, 1 to 500 characters, no control characters. */
export function checkedReason(reason: string): string {
  const text = reason.trim();
  if (text.length === 0) throw badInput('A reason is required: it is recorded with the action', 'reason');
  if ([...text].length > REASON_MAX_LENGTH) {
    throw badInput(`The reason is limited to ${REASON_MAX_LENGTH} characters`, 'reason');
  }
  if (CONTROL.test(text))
    throw badInput('The reason must be one line of text (no control characters)', 'reason');
  return text;
}

export interface AdjustBalanceInput {
  wallet: string;
  /** Signed micro-USD. */
  amount: bigint;
  reason: string;
}

/** Adjusts the balance of `wallet`'s account by `amount` (see the module comment); returns its entry. */
export async function adjustBalance(
  em: Em,
  viewer: Viewer | null,
  input: AdjustBalanceInput,
): Promise<LedgerEntryView> {
  const operator = assertOperator(viewer);
  const reason = checkedReason(input.reason);
  if (input.amount === 0n) throw badInput('The amount must not be 0', 'amount');
  if (input.amount > OPERATOR_AMOUNT_MAX || -input.amount > OPERATOR_AMOUNT_MAX) {
    throw badInput(`One adjustment is at most ${OPERATOR_AMOUNT_MAX} micro-USD either way`, 'amount');
  }
  const account = await em.findOne(Account, { walletAddress: getAddress(input.wallet) });
  if (!account) {
    throw notFound(
      `No account for ${getAddress(input.wallet)}: an account is created when its wallet first signs in or pays`,
    );
  }
  return appendLedgerEntry(em, {
    accountId: account.id,
    amount: input.amount,
    reason: 'ADJUSTMENT',
    referenceId: `operator:${randomUUID()}`,
    operator: { address: operator.walletAddress, reason },
    withinSpendable: true,
  });
}

export interface ResolveUsageInput {
  action: UsageResolution;
  /** The price to charge (BILL; micro-USD); null or 0 for WAIVE. */
  price: bigint | null | undefined;
  reason: string;
}

export interface ResolvedUsage {
  usage: UsageView;
  /** The USAGE entry of the difference; null when the stated price is what was charged already. */
  entry: LedgerEntryView | null;
}

/** Resolves a NEEDS_REVIEW call (see the module comment). */
export async function resolveUsage(
  em: Em,
  viewer: Viewer | null,
  usageId: string,
  input: ResolveUsageInput,
): Promise<ResolvedUsage> {
  const operator = assertOperator(viewer);
  const reason = checkedReason(input.reason);
  if (!UUID.test(usageId)) throw notFound(`No call ${usageId}`);
  let price: bigint;
  if (input.action === 'BILL') {
    if (input.price === null || input.price === undefined)
      throw badInput('BILL needs the price to charge', 'price');
    if (input.price < 0n) throw badInput('The price must not be negative', 'price');
    if (input.price > OPERATOR_AMOUNT_MAX)
      throw badInput(`The price is at most ${OPERATOR_AMOUNT_MAX} micro-USD`, 'price');
    price = input.price;
  } else {
    if (input.price !== null && input.price !== undefined && input.price !== 0n) {
      throw badInput('WAIVE charges nothing: leave the price out', 'price');
    }
    price = 0n;
  }
  return inTransaction(em, async (tx) => {
    const query = sqlOf(tx).query;
    const record = await lockUsageForResolution(query, usageId);
    if (!record) throw notFound(`No call ${usageId}`);
    if (record.resolution) {
      throw conflict(
        `Call ${usageId} was already resolved (${record.resolution}) by ${record.resolvedBy} at ${record.resolvedAt?.toISOString()}`,
        {
          resolution: record.resolution,
          resolvedBy: record.resolvedBy,
          resolvedAt: record.resolvedAt?.toISOString(),
        },
      );
    }
    if (record.status !== 'NEEDS_REVIEW') {
      throw badInput(
        `Only NEEDS_REVIEW calls are resolved by an operator; call ${usageId} is ${record.status}`,
        'id',
      );
    }
    const difference = record.userPrice - price;
    const entry =
      difference === 0n
        ? null
        : await appendLedgerEntry(tx, {
            accountId: record.accountId,
            amount: difference,
            reason: 'USAGE',
            referenceId: usageId,
            operator: { address: operator.walletAddress, reason },
            withinSpendable: true,
          });
    const usage = await writeUsageResolution(query, {
      usageId,
      action: input.action,
      price,
      operator: operator.walletAddress,
      reason,
      at: new Date(),
    });
    // The row is locked and was open: the guarded update cannot miss it.
    if (!usage) throw new Error(`usage ${usageId}: resolution not written under its lock`);
    return { usage, entry };
  });
}

const REVIEW_CURSOR = 'review';

export function reviewCursor(usage: Pick<UsageView, 'createdAt' | 'id'>): string {
  return encodeCursor(REVIEW_CURSOR, [usage.createdAt.getTime(), usage.id]);
}

/** The NEEDS_REVIEW calls of every account, oldest first. */
export async function listNeedsReview(
  em: Em,
  viewer: Viewer | null,
  args: PageArgs = {},
): Promise<Page<UsageView>> {
  assertOperator(viewer);
  const first = pageSize(args.first);
  let after = null;
  if (args.after) {
    const [millis, id] = decodeCursor(REVIEW_CURSOR, args.after, 2);
    after = { createdAt: cursorTime(REVIEW_CURSOR, millis), id: cursorUuid(REVIEW_CURSOR, id) };
  }
  const rows = await readNeedsReviewPage(sqlOf(em).query, after, first + 1);
  const entries = rows.slice(0, first);
  const last = entries.at(-1);
  return { entries, hasNextPage: rows.length > first, endCursor: last ? reviewCursor(last) : null };
}

/** Revenue of every account's calls made in [from, to), by UTC day or model. */
export async function revenue(
  em: Em,
  viewer: Viewer | null,
  range: { from: Date; to: Date },
  groupBy: RevenueGroupBy,
): Promise<RevenueBucket[]> {
  assertOperator(viewer);
  if (!(range.from.getTime() < range.to.getTime())) throw badInput('`from` must be before `to`', 'from');
  return readRevenueBuckets(sqlOf(em).query, range, groupBy);
}
