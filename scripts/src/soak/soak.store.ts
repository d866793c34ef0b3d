/**
 * What the soak reads from the API's PostgreSQL database (directly, never through the relay it pauses): the
 * deposits, the charged calls, the ledger's sums and what is still held. Read only.
 */
import type pg from 'pg';
import { z } from 'zod';

const hashRow = z.object({ tx_hash: z.string() });

/** Which of `txHashes` the API has credited (status CREDITED). */
export async function creditedAmong(
  client: pg.ClientBase,
  txHashes: readonly string[],
): Promise<Set<string>> {
  const { rows } = await client.query(
    /* creditedAmong */ `select tx_hash from deposits where status = 'CREDITED' and lower(tx_hash) = any($1::text[])`,
    [txHashes.map((hash) => hash.toLowerCase())],
  );
  return new Set(rows.map((row) => hashRow.parse(row).tx_hash.toLowerCase()));
}

/** Deposits of `txHashes` in a state a transfer gone from the chain must not stay in (PENDING, CREDITED). */
export async function countLiveAmong(client: pg.ClientBase, txHashes: readonly string[]): Promise<number> {
  const { rows } = await client.query(
    /* countLiveAmong */ `select count(*)::int as n from deposits
       where status in ('PENDING', 'CREDITED') and lower(tx_hash) = any($1::text[])`,
    [txHashes.map((hash) => hash.toLowerCase())],
  );
  return z.object({ n: z.number().int() }).parse(rows[0]).n;
}

const depositRow = z.object({
  tx_hash: z.string(),
  log_index: z.number().int(),
  block_number: z.string(),
  from_address: z.string(),
  amount: z.string(),
  status: z.enum(['PENDING', 'CREDITED', 'REORGED']),
  credited_at: z.date().nullable(),
});
export type DepositRow = z.infer<typeof depositRow>;

export async function readDeposits(client: pg.ClientBase): Promise<DepositRow[]> {
  const { rows } = await client.query(
    /* readDeposits */ `select tx_hash, log_index, block_number::text, from_address, amount::text, status, credited_at
       from deposits`,
  );
  return rows.map((row) => depositRow.parse(row));
}

const usageRow = z.object({ request_id: z.string(), status: z.string(), user_price: z.string() });
export type UsageRow = z.infer<typeof usageRow>;

/** Every usage record: the charged ones (BILLED, NEEDS_REVIEW) and the others (RELEASED, or still open). */
export async function readUsage(client: pg.ClientBase): Promise<UsageRow[]> {
  const { rows } = await client.query(
    /* readUsage */ 'select request_id, status, user_price::text from usage_records',
  );
  return rows.map((row) => usageRow.parse(row));
}

/**
 * The settlement each paid call points at now: the one the load saw, or the one the platform submitted again
 * after a reorg deeper than CONFIRMATIONS removed it (lowercase hashes).
 */
export async function readPaidCallSettlements(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query(
    /* readPaidCallSettlements */ 'select payment_tx_hash from usage_records where payment_tx_hash is not null',
  );
  return rows.map((row) =>
    z.object({ payment_tx_hash: z.string() }).parse(row).payment_tx_hash.toLowerCase(),
  );
}

const booksRow = z.object({
  balance: z.string(),
  held: z.string(),
  debt: z.string(),
  open_records: z.number().int(),
  open_detail: z.string(),
  credited: z.string(),
  charged: z.string(),
  usage_entries: z.number().int(),
  usage_entries_sum: z.string(),
  deposit_entries_twice: z.number().int(),
});
export type Books = z.infer<typeof booksRow>;

/** The sums the books are checked with, read in one snapshot. */
export async function readBooks(client: pg.ClientBase): Promise<Books> {
  const { rows } = await client.query(/* readBooks */ `select
      (select coalesce(sum(balance), 0)::text from accounts) as balance,
      (select coalesce(sum(held), 0)::text from accounts) as held,
      (select coalesce(sum(debt), 0)::text from accounts) as debt,
      (select count(*)::int from usage_records where status in ('HELD', 'UNSETTLED', 'AWAITING_PAYMENT')) as open_records,
      (select coalesce(string_agg(status || ' ' || n || ' ' || kind, ', '), '') from (select status, count(*) as n,
           case when payment_scheme is null then 'keyed' else 'paid ' || payment_scheme end
             || case when account_held then '' else ', not on its account' end
             || ', oldest ' || extract(epoch from now() - min(created_at))::int || ' s ago' as kind
         from usage_records where status in ('HELD', 'UNSETTLED', 'AWAITING_PAYMENT')
         group by status, payment_scheme, account_held) as open) as open_detail,
      (select coalesce(sum(amount), 0)::text from deposits where status = 'CREDITED') as credited,
      (select coalesce(sum(user_price), 0)::text from usage_records where status in ('BILLED', 'NEEDS_REVIEW')) as charged,
      (select count(*)::int from ledger_entries where reason = 'USAGE') as usage_entries,
      (select coalesce(sum(amount), 0)::text from ledger_entries where reason = 'USAGE') as usage_entries_sum,
      (select count(*)::int from (select deposit_id from ledger_entries where reason = 'DEPOSIT'
         group by deposit_id having count(*) > 1) as twice) as deposit_entries_twice`);
  return booksRow.parse(rows[0]);
}

const entryTime = z.object({ created_at: z.date() });

/** When each ledger entry of these wallets' accounts was written: each is one `balanceUpdated` event. */
export async function readLedgerTimes(client: pg.ClientBase, wallets: readonly string[]): Promise<number[]> {
  const { rows } = await client.query(
    /* readLedgerTimes */ `select e.created_at from ledger_entries e join accounts a on a.id = e.account_id
       where lower(a.wallet_address) = any($1::text[])`,
    [wallets.map((wallet) => wallet.toLowerCase())],
  );
  return rows.map((row) => entryTime.parse(row).created_at.getTime());
}
