import { checkAudit } from '@chainmeter/schema';
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts';
import { beforeAll, describe, expect, it } from 'vitest';
import { testOrmForFile } from '../../../test/support/database.ts';
import { InvalidCursorError } from '../../db/cursor.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import { appendLedgerEntry } from '../ledger/ledger.service.ts';
import { buildAccountProof, listAuditAccounts, listAuditEntries, readAuditRecords } from './audit.service.ts';

const { orm } = await testOrmForFile();
const wallets = Array.from({ length: 3 }, () => privateKeyToAddress(generatePrivateKey()));

beforeAll(async () => {
  for (const [i, wallet] of wallets.entries()) {
    const account = await findOrCreateAccount(orm.em.fork(), wallet);
    for (let n = 1; n <= 3 + i; n++) {
      await appendLedgerEntry(orm.em.fork(), {
        accountId: account.id,
        amount: BigInt(n * 100),
        reason: 'ADJUSTMENT',
        referenceId: `r${n}`,
        // Credits without a deposit are an operator's, with a reason (else the audit names them).
        operator: { address: wallets[0] as string, reason: 'test credit' },
      });
    }
  }
});

describe('auditor pages', () => {
  it('walk every entry of every account once, in (account, seq) order, whatever the page size', async () => {
    const { accounts, entries } = await readAuditRecords(orm.em.fork());
    expect(accounts).toHaveLength(3);
    expect(entries).toHaveLength(3 + 4 + 5);
    for (const size of [1, 2, 5, 1000]) {
      const seen: string[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await listAuditEntries(orm.em.fork(), { first: size, after });
        seen.push(...page.entries.map((e) => `${e.accountId}:${e.seq}`));
        if (!page.hasNextPage) break;
        after = page.endCursor;
      }
      expect(seen).toEqual(entries.map((e) => `${e.accountId}:${e.seq}`));
    }
    const firstAccounts = await listAuditAccounts(orm.em.fork(), { first: 2 });
    const rest = await listAuditAccounts(orm.em.fork(), { first: 2, after: firstAccounts.endCursor });
    expect([...firstAccounts.entries, ...rest.entries]).toEqual(accounts);
    expect(rest.hasNextPage).toBe(false);
  });

  it('refuse bad cursors and oversized pages as the caller’s mistake', async () => {
    await expect(listAuditEntries(orm.em.fork(), { after: 'garbage' })).rejects.toBeInstanceOf(
      InvalidCursorError,
    );
    await expect(listAuditEntries(orm.em.fork(), { first: 1001 })).rejects.toBeInstanceOf(InvalidCursorError);
    const forged = Buffer.from("audit-entry:x' or 1=1:1").toString('base64url');
    await expect(listAuditEntries(orm.em.fork(), { after: forged })).rejects.toBeInstanceOf(
      InvalidCursorError,
    );
  });

  it('read records that the shared checker finds consistent (no chain activity, no deposits)', async () => {
    const records = await readAuditRecords(orm.em.fork());
    const report = checkAudit({
      chainId: 31337,
      tokenAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      treasuryAddress: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
      confirmations: 2,
      fromBlock: 0n,
      head: 100n,
      transfers: [],
      ...records,
    });
    expect(report.discrepancies).toEqual([]);
    expect(report.summary.totalBalance).toBe(600n + 1000n + 1500n);
  });

  it('build a proof of one account, or null for a wallet without one', async () => {
    const config = {
      chainId: 31337,
      usdcAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      treasuryAddress: '0xa0Ee7A142d267C1f36714E4a8F75612F20a79720',
      confirmations: 2,
    } as const;
    const proof = await buildAccountProof(orm.em.fork(), config, wallets[1] as `0x${string}`);
    expect(proof?.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(proof?.account.balance).toBe(1000n);
    expect(
      await buildAccountProof(orm.em.fork(), config, privateKeyToAddress(generatePrivateKey())),
    ).toBeNull();
  });
});
