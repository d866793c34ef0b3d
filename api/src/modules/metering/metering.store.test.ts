/**
 * The hot path's SQL on a real PostgreSQL: holds are all-or-nothing, settlements are exactly-once and a
 * batch keeps every ledger invariant (hash chain, balance = sum of entries, key totals).
 */
import { randomBytes } from 'node:crypto';
import type { MicroUsd } from '@chainmeter/schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestOrm } from '../../../test/support/database.ts';
import { checkLedgerInvariants } from '../../../test/support/ledger-invariants.ts';
import type { Orm } from '../../db/orm.ts';
import { createApiKey } from '../apikeys/apikeys.service.ts';
import { appendLedgerEntry } from '../ledger/ledger.service.ts';
import {
  applyChargedSettlements,
  applySettlement,
  InsufficientCreditsError,
  placeHold,
  type Settlement,
} from './metering.store.ts';

let orm: Orm;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ orm, close } = await createTestOrm());
});
afterAll(async () => close?.());

async function newAccount(balance: bigint): Promise<string> {
  const em = orm.em.fork();
  const [row] = await em.execute<{ id: string }[]>(
    'insert into accounts (wallet_address) values (?) returning id',
    [`0x${randomBytes(20).toString('hex')}`],
  );
  if (!row) throw new Error('no account');
  if (balance > 0n) {
    await appendLedgerEntry(em, {
      accountId: row.id,
      amount: balance,
      reason: 'ADJUSTMENT',
      referenceId: 'setup',
    });
  }
  return row.id;
}

const hold = (accountId: string, amount: bigint, apiKeyId: string | null = null) =>
  placeHold(orm.em.fork(), {
    accountId,
    apiKeyId,
    requestId: `req_${randomBytes(8).toString('hex')}`,
    model: 'chainmeter-dev',
    hold: amount as MicroUsd,
    streamed: false,
    now: new Date(),
    holdExpiresAt: new Date(Date.now() + 60_000),
  });

const billed = (price: bigint): Settlement => ({
  status: 'BILLED',
  promptTokens: 10,
  completionTokens: 20,
  providerCost: (price / 2n) as MicroUsd,
  userPrice: price as MicroUsd,
  latencyMs: 3,
  flags: [],
  error: null,
});

async function state(accountId: string) {
  const [row] = await orm.em
    .fork()
    .execute<{ balance: string; held: string }[]>(
      'select balance::text as balance, held::text as held from accounts where id = ?',
      [accountId],
    );
  return row;
}

describe('holds', () => {
  it('refuses a hold above the available balance and changes nothing', async () => {
    const accountId = await newAccount(1_000n);
    await hold(accountId, 600n);
    await expect(hold(accountId, 600n)).rejects.toBeInstanceOf(InsufficientCreditsError);
    expect(await state(accountId)).toEqual({ balance: '1000', held: '600' });
  });

  it("refuses a hold past the key's spend limit, without holding on the account either", async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k', spendLimit: 1_000n });
    await hold(accountId, 700n, apiKey.id);
    const error = await hold(accountId, 700n, apiKey.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InsufficientCreditsError);
    expect((error as InsufficientCreditsError).scope).toBe('apiKey');
    expect(await state(accountId)).toEqual({ balance: '1000000', held: '700' });
  });
});

describe('settlement', () => {
  it('settles a batch on one account and key in order, each record once', async () => {
    const accountId = await newAccount(1_000_000n);
    const { apiKey } = await createApiKey(orm.em.fork(), accountId, { name: 'k' });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await hold(accountId, 1_000n, apiKey.id));
    const other = await newAccount(1_000_000n);
    const otherId = await hold(other, 1_000n);
    const first = ids[0] as string;
    await applySettlement(orm.em.fork(), first, billed(100n));
    const results = await applyChargedSettlements(orm.em.fork(), [
      ...ids.map((usageId, i) => ({ usageId, settlement: billed(BigInt(100 + i)) })),
      { usageId: otherId, settlement: billed(500n) },
      { usageId: ids[1] as string, settlement: billed(999n) }, // a duplicate: ignored
    ]);
    expect(results.has(first)).toBe(false); // already settled before the batch
    expect(results.size).toBe(5);
    // 100 (single) + 101 + 102 + 103 + 104
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 510), held: '0' });
    expect(await state(other)).toEqual({ balance: String(1_000_000 - 500), held: '0' });
    const [key] = await orm.em
      .fork()
      .execute<{ spent: string; held: string }[]>(
        'select spent::text as spent, held::text as held from api_keys where id = ?',
        [apiKey.id],
      );
    expect(key).toEqual({ spent: '510', held: '0' });
    const entries = await orm.em
      .fork()
      .execute<{ seq: number; amount: string; reference_id: string }[]>(
        `select seq, amount::text as amount, reference_id from ledger_entries where account_id = ? order by seq`,
        [accountId],
      );
    expect(entries.map((e) => [e.seq, e.amount, e.reference_id])).toEqual([
      [1, '1000000', 'setup'],
      [2, '-100', first],
      [3, '-101', ids[1]],
      [4, '-102', ids[2]],
      [5, '-103', ids[3]],
      [6, '-104', ids[4]],
    ]);
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
    // Settling again, alone or in a batch, does nothing.
    expect(await applySettlement(orm.em.fork(), first, billed(100n))).toEqual({
      settled: false,
      reason: 'already settled',
    });
    expect(
      (await applyChargedSettlements(orm.em.fork(), [{ usageId: otherId, settlement: billed(5n) }])).size,
    ).toBe(0);
  });

  it('concurrent settlements of the same records charge each once', async () => {
    const accountId = await newAccount(1_000_000n);
    const ids = [];
    for (let i = 0; i < 20; i++) ids.push(await hold(accountId, 1_000n));
    const items = ids.map((usageId) => ({ usageId, settlement: billed(10n) }));
    await Promise.all([
      applyChargedSettlements(orm.em.fork(), items),
      applyChargedSettlements(orm.em.fork(), [...items].reverse()),
      ...ids.map((id) => applySettlement(orm.em.fork(), id, billed(10n))),
    ]);
    expect(await state(accountId)).toEqual({ balance: String(1_000_000 - 200), held: '0' });
    expect((await checkLedgerInvariants(orm.em.fork())).problems).toEqual([]);
  });

  it('a release charges nothing and frees the hold', async () => {
    const accountId = await newAccount(5_000n);
    const id = await hold(accountId, 5_000n);
    expect(await state(accountId)).toEqual({ balance: '5000', held: '5000' });
    const result = await applySettlement(orm.em.fork(), id, {
      ...billed(0n),
      status: 'RELEASED',
      providerCost: null,
    });
    expect(result.settled).toBe(true);
    expect(await state(accountId)).toEqual({ balance: '5000', held: '0' });
  });
});
