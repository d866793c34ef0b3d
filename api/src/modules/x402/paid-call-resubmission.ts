/**
 * Paid calls whose settlement a reorg deeper than CONFIRMATIONS removed. The payer's signed authorization
 * (EIP-3009's nonce, or Permit2's for `upto`) is unused again on the new chain and stays valid until its
 * `validBefore` / `deadline`, so the platform submits it again through the same facilitator and relayer:
 * - an AWAITING_PAYMENT call whose settlement has no receipt (and is not pending) on the current chain, or a
 *   charged call (BILLED, NEEDS_REVIEW) whose settlement's deposit is REORGED and whose transaction has no
 *   receipt: its authorization is submitted again, and once the new transaction succeeded the row's
 *   `payment_tx_hash` is replaced by it (a guarded update that requires the old hash). Crediting then charges
 *   the AWAITING call as usual when it credits the new transfer; for a charged call the new transfer is an
 *   ordinary deposit that pays the account's reorg debt first, so the books end exact;
 * - its authorization is already used on chain (the original transaction mined again, or another replica
 *   submitted it first): nothing to do, crediting links the transfer by its hash;
 * - its authorization expired: the call is UNPAID (served, never paid; see `markPaidCallUnpaid` for a
 *   charged call's debt).
 * No money can be taken twice: the token (or Permit2) spends the authorization's nonce with the transfer, so
 * of the original transaction mined again and any number of resubmissions (by this or another replica) one
 * moves the money and every other reverts. Only a successful one replaces the row's hash, and the guard
 * lets one replica do it once.
 *
 * An `upto` call whose settlement failed after serving (UNPAID: the payer's wallet was empty then, or the
 * relayer, the RPC or a nonce collision failed) is settled again the same way, for the call's price (never
 * more), while its authorization is unused and valid ({@link retryUnpaidSettlements}): once a submission
 * succeeded, the call gets its transaction's hash and amount and awaits its payment (AWAITING_PAYMENT, a
 * guarded update that requires the UNPAID status and the failed settlement's hash), and crediting charges it
 * when it credits that transfer. Each attempt is recorded on the call, and the next one waits as long as the
 * call had been unpaid by then (at least `unpaidRetryMs`, at most an hour), so a payer that never pays again
 * costs the relayer little. Expired, or spent by a transaction that is not the call's: UNPAID for good. A
 * call whose own settlement was broadcast and then mined after its receipt wait gave up is charged by crediting
 * when it credits that transfer (`claimPaidCalls`), like an AWAITING_PAYMENT one.
 *
 * Every replica runs one; each pass handles the oldest calls first, one at a time, each at most once.
 */
import type { Logger } from 'pino';
import {
  type Hash,
  type PublicClient,
  TransactionNotFoundError,
  TransactionReceiptNotFoundError,
} from 'viem';
import type { SqlRunner } from '../../db/sql.ts';
import {
  claimUnpaidRetries,
  endUnpaidRetries,
  findUnsettledPaidCalls,
  markPaidCallUnpaid,
  type PaymentScheme,
  recoverUnpaidCall,
  replacePaymentTx,
} from '../metering/paid-call.store.ts';
import type { Resubmission, X402Service } from './x402.service.ts';

export interface PaidCallResubmissionOptions {
  sql: SqlRunner;
  chain: Pick<PublicClient, 'getTransactionReceipt' | 'getTransaction'>;
  x402: Pick<X402Service, 'resubmit'>;
  logger: Logger;
  /** A call that ended UNPAID because its authorization expired (the unpaid calls metric). */
  onUnpaid?: (scheme: PaymentScheme) => void;
  /** At most this many calls are looked at per pass (of each kind). */
  batchSize?: number;
  /** The least time between two attempts to settle an UNPAID call again (default 5 s). */
  unpaidRetryMs?: number;
}

/** What one pass did. */
export interface ResubmissionPass {
  resubmitted: number;
  unpaid: number;
}

/** The longest wait between two attempts to settle an UNPAID call again. */
const MAX_UNPAID_RETRY_MS = 3_600_000;

/** Whether the transaction is on neither the current chain nor in the node's pool. */
async function transactionGone(chain: PaidCallResubmissionOptions['chain'], hash: Hash): Promise<boolean> {
  const receipt = await chain.getTransactionReceipt({ hash }).catch((error: unknown) => {
    if (error instanceof TransactionReceiptNotFoundError) return null;
    throw error;
  });
  if (receipt) return false;
  // Sent but not mined yet (the node put it back in its pool): it will be mined, nothing to do.
  const pending = await chain.getTransaction({ hash }).catch((error: unknown) => {
    if (error instanceof TransactionNotFoundError) return null;
    throw error;
  });
  return pending === null;
}

/** One pass over the calls whose settlement may be gone; see the module comment. */
export async function resubmitRemovedSettlements(
  options: PaidCallResubmissionOptions,
): Promise<ResubmissionPass> {
  const { sql, chain, x402, logger } = options;
  const pass: ResubmissionPass = { resubmitted: 0, unpaid: 0 };
  // An AWAITING_PAYMENT call's settlement was mined before the call was priced (a settlement resolves on
  // its receipt), so no receipt now means a reorg removed it, whatever its age.
  const calls = await findUnsettledPaidCalls(sql, options.batchSize ?? 50);
  for (const call of calls) {
    if (!(await transactionGone(chain, call.txHash as Hash))) continue;
    const result = await x402.resubmit(call.payload, call.amount);
    const log = { usageId: call.id, status: call.status, txHash: call.txHash };
    if (result.outcome === 'submitted') {
      if (await replacePaymentTx(sql, call.id, call.txHash, result.txHash)) {
        pass.resubmitted++;
        logger.warn(
          { ...log, newTxHash: result.txHash },
          'x402: settlement removed by a reorg, submitted again',
        );
      }
    } else if (result.outcome === 'expired') {
      if (await markPaidCallUnpaid(sql, call.id, call.txHash, new Date())) {
        pass.unpaid++;
        options.onUnpaid?.(call.scheme);
        logger.error(log, 'x402: settlement removed by a reorg and its authorization expired: call unpaid');
      }
    } else if (result.outcome === 'failed') {
      logger.warn({ ...log, reason: result.reason }, 'x402: could not submit a removed settlement again');
    } else {
      // Used on this chain by another transaction: the original mined again (crediting links it by its
      // hash once it has a receipt) or another replica's resubmission, whose hash replaces this one.
      logger.debug(log, 'x402: removed settlement already spent on chain');
    }
  }
  return pass;
}

/**
 * Settles again the UNPAID `upto` calls due for an attempt (see the module comment); how many now await their
 * payment.
 */
export async function retryUnpaidSettlements(options: PaidCallResubmissionOptions): Promise<number> {
  const { sql, x402, logger } = options;
  let recovered = 0;
  const calls = await claimUnpaidRetries(sql, new Date(), options.batchSize ?? 50, {
    minMs: options.unpaidRetryMs ?? 5_000,
    maxMs: MAX_UNPAID_RETRY_MS,
  });
  for (const call of calls) {
    const log = { usageId: call.id, txHash: call.txHash, price: call.price.toString() };
    const result = await x402
      .resubmit(call.payload, call.price)
      .catch((error: unknown): Resubmission => ({ outcome: 'failed', reason: String(error) }));
    if (result.outcome === 'submitted') {
      if (await recoverUnpaidCall(sql, call.id, call.txHash, result.txHash, call.price)) {
        recovered++;
        logger.warn({ ...log, newTxHash: result.txHash }, 'x402: an unpaid call was settled again');
      }
    } else if (result.outcome === 'failed') {
      logger.info({ ...log, reason: result.reason }, 'x402: an unpaid call could not be settled yet');
    } else {
      // Expired, or its nonce spent: by the call's own settlement, mined after its receipt wait gave up
      // (crediting charges the call when it credits that transfer), or by another transaction.
      await endUnpaidRetries(sql, call.id);
      logger.warn({ ...log, outcome: result.outcome }, 'x402: an unpaid call can no longer be settled');
    }
  }
  return recovered;
}

export interface PaidCallResubmission {
  stop(): Promise<void>;
}

/** Runs {@link resubmitRemovedSettlements} (and {@link retryUnpaidSettlements}) every `intervalMs` (one pass at a time) until stopped. */
export function startPaidCallResubmission(
  options: PaidCallResubmissionOptions & { intervalMs: number },
): PaidCallResubmission {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = resubmitRemovedSettlements(options)
      .then(
        () => undefined,
        (error: unknown) => options.logger.warn({ err: error }, 'x402: resubmission pass failed'),
      )
      .then(() => retryUnpaidSettlements(options))
      .then(
        () => undefined,
        (error: unknown) => options.logger.warn({ err: error }, 'x402: unpaid retry pass failed'),
      )
      .finally(() => {
        if (stopped) return;
        timer = setTimeout(tick, options.intervalMs);
        timer.unref();
      });
  };
  timer = setTimeout(tick, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
