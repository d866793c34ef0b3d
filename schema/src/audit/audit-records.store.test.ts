import { describe, expect, it } from 'vitest';
import { auditAccountFromRow, auditEntryFromRow, readAllAuditRecords } from './audit-records.store.ts';
import { AuditFormatError } from './record-fields.ts';

const ACCOUNT_ID = '00000000-0000-4000-8000-000000000001';

const accountRow = {
  id: ACCOUNT_ID,
  wallet_address: '0x70997970C51812dc3A010C7d50e604F7d7Fa41BA',
  balance: '1500',
  held: '20',
  debt: '0',
  ledger_seq: 1,
  ledger_head: 'aa',
};

const entryRow = {
  account_id: ACCOUNT_ID,
  seq: 1,
  amount: '1500',
  balance_after: '1500',
  reason: 'DEPOSIT',
  reference_id: 'ref',
  created_at: new Date('2026-11-24T05:45:12.000Z'),
  prev_hash: null,
  hash: 'aa',
  operator: null,
  reason_text: null,
  chain_id: 31337,
  tx_hash: `0x${'AB'.repeat(32)}`,
  log_index: 0,
  block_number: '7',
  from_address: '0x70997970C51812dc3A010C7d50e604F7d7Fa41BA',
  amount_token: '1500',
  deposit_amount: '1500',
  deposit_status: 'CREDITED',
};

describe('audit rows, checked where they enter', () => {
  it('parses an account and an entry with its deposit (a timestamp as a Date or as text)', () => {
    expect(auditAccountFromRow(accountRow)).toEqual({
      accountId: ACCOUNT_ID,
      walletAddress: accountRow.wallet_address,
      balance: 1500n,
      held: 20n,
      debt: 0n,
      ledgerSeq: 1,
      ledgerHead: 'aa',
    });
    const entry = auditEntryFromRow(entryRow);
    expect(entry.deposit).toMatchObject({ txHash: `0x${'ab'.repeat(32)}`, blockNumber: 7n, amount: 1500n });
    expect(entry).toMatchObject({ operator: null, reasonText: null });
    const byOperator = auditEntryFromRow({
      ...entryRow,
      operator: accountRow.wallet_address,
      reason_text: 'refund',
    });
    expect(byOperator).toMatchObject({ operator: accountRow.wallet_address, reasonText: 'refund' });
    expect(auditEntryFromRow({ ...entryRow, created_at: '2026-11-24T05:45:12.000Z' }).createdAt).toEqual(
      entry.createdAt,
    );
  });

  it('reads an entry without a deposit when the join found none', () => {
    const entry = auditEntryFromRow({
      ...entryRow,
      reason: 'USAGE',
      ...Object.fromEntries(
        [
          'chain_id',
          'tx_hash',
          'log_index',
          'block_number',
          'from_address',
          'amount_token',
          'deposit_amount',
          'deposit_status',
        ].map((column) => [column, null]),
      ),
    });
    expect(entry.deposit).toBeNull();
  });

  it('refuses a row that is not what the select list promises, naming the column', () => {
    expect(() => auditAccountFromRow({ ...accountRow, balance: 1500 })).toThrow(AuditFormatError);
    expect(() => auditAccountFromRow({ ...accountRow, balance: 1500 })).toThrow(/"balance"/);
    expect(() => auditEntryFromRow({ ...entryRow, created_at: 'yesterday' })).toThrow(/"created_at"/);
    expect(() => auditEntryFromRow({ ...entryRow, block_number: null })).toThrow(/"block_number"/);
    expect(() => auditEntryFromRow(null)).toThrow(AuditFormatError);
  });

  it('reads every account, then every entry, then every paid call, through the query it is given', async () => {
    const asked: string[] = [];
    const paidCallRow = {
      id: '7c1c5b0e-5f7a-4a55-8c55-0b6f2b1d2a10',
      account_id: accountRow.id,
      payer_address: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      payment_scheme: 'upto',
      status: 'BILLED',
      hold_amount: '900',
      user_price: '250',
      payment_tx_hash: `0x${'AB'.repeat(32)}`,
      settlement_block: '12',
      settlement_credited: true,
    };
    const records = await readAllAuditRecords(async (statement) => {
      asked.push(statement.name);
      if (statement.name.includes('paid_calls')) return [paidCallRow];
      return statement.name.includes('accounts') ? [accountRow] : [entryRow];
    });
    expect(asked).toEqual(['cm_audit_all_accounts', 'cm_audit_all_entries', 'cm_audit_all_paid_calls']);
    expect(records.accounts).toHaveLength(1);
    expect(records.entries).toHaveLength(1);
    expect(records.paidCalls).toEqual([
      {
        usageId: paidCallRow.id,
        accountId: accountRow.id,
        payer: paidCallRow.payer_address,
        scheme: 'upto',
        status: 'BILLED',
        holdAmount: 900n,
        userPrice: 250n,
        txHash: `0x${'ab'.repeat(32)}`,
        settlementBlock: 12n,
        settlementCredited: true,
      },
    ]);
  });
});
