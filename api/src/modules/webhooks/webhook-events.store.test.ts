import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { sqlOf } from '../../db/sql.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { enqueueWebhookEvents } from './webhook-events.store.ts';

const { orm } = await testOrmForFile();

async function newAccount(): Promise<string> {
  return (await findOrCreateAccount(orm.em.fork(), privateKeyToAddress(generatePrivateKey()))).id;
}

async function addEndpoint(accountId: string, events: string[], deleted = false): Promise<string> {
  const [row] = await orm.em.fork().execute<{ id: string }[]>(
    `insert into webhook_endpoints (account_id, url, secret, events, deleted_at)
     values (?, 'https://example.com/hook', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', ?::text[], ?) returning id`,
    [accountId, `{${events.join(',')}}`, deleted ? new Date() : null],
  );
  return (row as { id: string }).id;
}

interface DeliveryRow {
  endpoint_id: string;
  event_id: string;
  event_type: string;
  data: unknown;
  status: string;
}

async function deliveriesOf(accountId: string): Promise<DeliveryRow[]> {
  return orm.em
    .fork()
    .execute<DeliveryRow[]>(
      'select endpoint_id, event_id, event_type, data, status from webhook_deliveries where account_id = ? order by endpoint_id',
      [accountId],
    );
}

describe('enqueueWebhookEvents', () => {
  it('writes one delivery per live endpoint that wants the type, one event id across endpoints', async () => {
    const alice = await newAccount();
    const both = await addEndpoint(alice, ['DEPOSIT_CREDITED', 'DEPOSIT_PENDING']);
    const credited = await addEndpoint(alice, ['DEPOSIT_CREDITED']);
    await addEndpoint(alice, ['DEPOSIT_CREDITED'], true);
    await addEndpoint(alice, ['BALANCE_LOW']);
    const bob = await newAccount();

    await orm.em.fork().transactional(async (tx) =>
      enqueueWebhookEvents(sqlOf(tx).query, [
        { accountId: alice, type: 'DEPOSIT_CREDITED', data: { depositId: 'd1', amount: 12_000_000n } },
        { accountId: bob, type: 'DEPOSIT_CREDITED', data: { depositId: 'd2' } },
      ]),
    );

    const rows = await deliveriesOf(alice);
    expect(rows.map((row) => row.endpoint_id).sort()).toEqual([both, credited].sort());
    expect(new Set(rows.map((row) => row.event_id)).size).toBe(1);
    for (const row of rows) {
      expect(row).toMatchObject({
        event_type: 'DEPOSIT_CREDITED',
        data: { depositId: 'd1', amount: '12000000' },
        status: 'PENDING',
      });
    }
    expect(await deliveriesOf(bob)).toEqual([]);
  });

  it('writes nothing when the caller rolls back', async () => {
    const carol = await newAccount();
    await addEndpoint(carol, ['DEPOSIT_REORGED']);
    await expect(
      orm.em.fork().transactional(async (tx) => {
        await enqueueWebhookEvents(sqlOf(tx).query, [
          { accountId: carol, type: 'DEPOSIT_REORGED', data: {} },
        ]);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await deliveriesOf(carol)).toEqual([]);
  });
});
