/**
 * The audit CLI's `--database` read (operators): the platform's records straight from the API's
 * PostgreSQL, with the statements and row parsers the API itself uses (@chainmeter/schema
 * `audit-records.store.ts`), in one read-only REPEATABLE READ snapshot.
 */
import {
  type AuditAccount,
  type AuditLedgerEntry,
  type AuditPaidCall,
  readAllAuditRecords,
} from '@chainmeter/schema';
import type pg from 'pg';

/** Every account, entry and paid call (x402); `client` is connected and outside a transaction. */
export async function readAuditSnapshot(
  client: pg.Client,
): Promise<{ accounts: AuditAccount[]; entries: AuditLedgerEntry[]; paidCalls: AuditPaidCall[] }> {
  await client.query('begin isolation level repeatable read read only');
  const records = await readAllAuditRecords(async (statement, values) => {
    return (await client.query({ text: statement.text, values: [...values] })).rows;
  });
  await client.query('commit');
  return records;
}
