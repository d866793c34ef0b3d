/**
 * Low-balance alerts: an account's threshold and BALANCE_LOW, once per downward crossing (armed while the
 * balance is at or above the threshold, fired when a change takes it below, re-armed when one takes it back
 * to the threshold or above). The crossing is detected by the statement that changes the balance
 * (alerts.store.ts), so every charge, adjustment and reorg reversal is covered, on every replica.
 */
import { formatCredits, type MicroUsd } from '@chainmeter/schema';
import type { Em } from '../../db/orm.ts';
import { sqlOf } from '../../db/sql.ts';
import { badInput, notFound } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { Account, type IAccount } from '../accounts/accounts.entity.ts';
import { enqueueWebhookEvents } from '../webhooks/webhook-events.store.ts';
import { setLowBalanceThreshold } from './alerts.store.ts';

/**
 * Sets the viewer's low-balance threshold (micro-USD), or turns the alert off with null. Setting it above the
 * balance is a crossing: BALANCE_LOW fires now (once; not again while the account stays below).
 *
 * @example await setLowBalanceAlert(em, viewer, 5_000_000n) // alert below 5,000 credits ($5)
 */
export async function setLowBalanceAlert(
  em: Em,
  viewer: Viewer,
  threshold: bigint | null,
): Promise<IAccount> {
  if (threshold !== null && threshold <= 0n) {
    throw badInput('The threshold must be more than zero (null turns the alert off)', 'threshold');
  }
  await sqlOf(em).transaction(async (query) => {
    const set = await setLowBalanceThreshold(query, viewer.accountId, threshold);
    if (!set) throw notFound('No such account');
    if (set.crossed && threshold !== null) {
      await enqueueWebhookEvents(query, [
        {
          accountId: viewer.accountId,
          type: 'BALANCE_LOW',
          data: {
            balance: formatCredits(set.balance as MicroUsd),
            threshold: formatCredits(threshold as MicroUsd),
          },
        },
      ]);
    }
  });
  return em.findOneOrFail(Account, { id: viewer.accountId }, { refresh: true });
}
