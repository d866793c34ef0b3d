/**
 * The audit end to end: real anvil, real Ponder, real PostgreSQL, the API crediting real payments. The CLI
 * runs as a real process (`node scripts/src/audit.ts`) through both record paths (auditor API key and
 * database). An untouched platform audits clean; then each kind of tampering, done with plain SQL the
 * constraints allow, is named with its kind, account and transaction, and undone.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOrCreateAccount } from '@chainmeter/api/modules/accounts/accounts.service';
import { createApiKey } from '@chainmeter/api/modules/apikeys/apikeys.service';
import { appendLedgerEntry } from '@chainmeter/api/modules/ledger/ledger.service';
import type { RunningApi } from '@chainmeter/api/server';
import { eventually, gql, gqlData } from '@chainmeter/api/testing/graphql';
import { devPayer, type Platform, startPlatform } from '@chainmeter/api/testing/platform';
import { sample, scrape } from '@chainmeter/api/testing/prometheus';
import { formatCredits, type MicroUsd, parseCredits } from '@chainmeter/schema';
import { mineBlocks, reorg } from '@chainmeter/testkit/anvil';
import { mintUsdc, transferUsdc, usdcBalance } from '@chainmeter/testkit/token';
import pg from 'pg';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const AUDIT_CLI = fileURLToPath(new URL('../audit.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let platform: Platform;
let api: RunningApi;
let db: pg.Client;
let auditorKey: string;
let userKey: string;
let scratch: string;
const auditor = privateKeyToAccount(generatePrivateKey());
const [alice, bob, carol] = [devPayer(0), devPayer(1), devPayer(2)];
const OPERATOR = devPayer(3).address;
const payments: { wallet: typeof alice; txHash: string }[] = [];

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a real child process (async: the API answering it runs in this process). */
function runAudit(args: string[]): Promise<Cli> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AUDIT_CLI, '--quiet', ...args],
      { cwd: ROOT, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

interface JsonReport {
  consistent: boolean;
  summary: Record<string, number | string>;
  solvency: Record<string, string | null>;
  discrepancies: {
    kind: string;
    accountId: string | null;
    txHash: string | null;
    walletAddress: string | null;
  }[];
}

const viaApi = () => [
  '--rpc',
  platform.anvil.rpcUrl,
  '--api',
  api.url,
  '--key',
  auditorKey,
  '--format',
  'json',
];
const viaDatabase = () => [
  '--rpc',
  platform.anvil.rpcUrl,
  '--database',
  platform.database?.url as string,
  '--token',
  platform.token,
  '--treasury',
  platform.treasury,
  '--confirmations',
  '2',
  '--format',
  'json',
];

async function audit(args: string[]): Promise<{ code: number | null; report: JsonReport; stderr: string }> {
  const result = await runAudit(args);
  if (result.code !== 0 && result.code !== 1)
    throw new Error(`audit exited ${result.code}: ${result.stderr}`);
  return { code: result.code, report: JSON.parse(result.stdout) as JsonReport, stderr: result.stderr };
}

function paymentTx(index: number): string {
  const payment = payments[index];
  if (!payment) throw new Error(`no payment ${index}`);
  return payment.txHash;
}

const kinds = (report: JsonReport) => report.discrepancies.map((d) => d.kind).sort();

async function accountIdOf(wallet: string): Promise<string> {
  const { rows } = await db.query<{ id: string }>('select id from accounts where wallet_address = $1', [
    wallet,
  ]);
  if (!rows[0]) throw new Error(`no account for ${wallet}`);
  return rows[0].id;
}

async function depositOf(txHash: string) {
  const { rows } = await db.query('select * from deposits where tx_hash = $1', [txHash.toLowerCase()]);
  if (!rows[0]) throw new Error(`no deposit for ${txHash}`);
  return rows[0] as Record<string, unknown> & { id: string; account_id: string };
}

async function reinsert(table: string, row: Record<string, unknown>): Promise<void> {
  const columns = Object.keys(row);
  await db.query(
    `insert into ${table} (${columns.join(', ')}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`,
    columns.map((c) => row[c]),
  );
}

/** Applies a tampering, runs `check`, then undoes it; the platform audits clean again afterwards. */
async function tampered(
  apply: () => Promise<() => Promise<void>>,
  check: () => Promise<void>,
): Promise<void> {
  const undo = await apply();
  try {
    await check();
  } finally {
    await undo();
  }
  expect((await audit(viaDatabase())).report.discrepancies).toEqual([]);
}

beforeAll(async () => {
  platform = await startPlatform({ confirmations: 2 });
  api = await platform.startApi({ AUDITOR_ADDRESSES: auditor.address });
  db = new pg.Client({ connectionString: platform.database?.url });
  await db.connect();
  scratch = mkdtempSync(path.join(tmpdir(), 'chainmeter-audit-'));
  const rpc = platform.anvil.rpcUrl;
  for (const wallet of [alice, bob, carol]) await mintUsdc(rpc, platform.token, wallet.address, 100_000_000n);
  for (const [wallet, amount] of [
    [alice, 5_000_000n],
    [bob, 2_500_000n],
    [alice, 1_234_567n],
    [carol, 750_000n],
  ] as const) {
    const { txHash } = await transferUsdc(rpc, platform.token, wallet, platform.treasury, amount);
    payments.push({ wallet, txHash });
  }
  // Neither a zero-value transfer nor a mint to the treasury credits anything: the audit agrees.
  await transferUsdc(rpc, platform.token, carol, platform.treasury, 0n);
  await mintUsdc(rpc, platform.token, platform.treasury, 1n);
  await mineBlocks(rpc, 3);
  await eventually(
    async () => {
      const { rows } = await db.query("select count(*)::int as n from deposits where status = 'CREDITED'");
      return rows[0].n === payments.length ? true : undefined;
    },
    30_000,
    'every payment credited',
  );
  const em = api.services.orm.em.fork();
  const aliceId = await accountIdOf(alice.address);
  await appendLedgerEntry(em, {
    accountId: aliceId,
    amount: -4_321n,
    reason: 'USAGE',
    referenceId: 'usage-1',
  });
  // An operator's goodwill credit: legitimate because it names the operator and the reason.
  await appendLedgerEntry(em, {
    accountId: aliceId,
    amount: 1_000n,
    reason: 'ADJUSTMENT',
    referenceId: 'adj-1',
    operator: { address: OPERATOR, reason: 'goodwill after the outage' },
  });
  const auditorAccount = await findOrCreateAccount(em, auditor.address);
  auditorKey = (await createApiKey(em, auditorAccount.id, { name: 'audit', scope: 'AUDITOR' })).secret;
  userKey = (await createApiKey(em, await accountIdOf(bob.address), { name: 'bob' })).secret;
});

afterAll(async () => {
  await db?.end();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  await platform?.close();
});

describe('an untouched platform', () => {
  it('audits clean through the auditor API key', async () => {
    const { code, report } = await audit(viaApi());
    expect(report.discrepancies).toEqual([]);
    expect(code).toBe(0);
    expect(report.summary).toMatchObject({
      transfersNotCreditable: 2,
      transfersDue: 4,
      transfersCredited: 4,
      depositCredits: 4,
      accounts: 4,
      ledgerEntries: 6,
      totalDueMicroUsd: '9484567',
      totalBalanceMicroUsd: String(9_484_567 - 4_321 + 1_000),
      operatorAdjustments: 1,
      totalOperatorAdjustedMicroUsd: '1000',
    });
  });

  it("prints the solvency figures: the treasury's balanceOf at the head, and the API's own figures", async () => {
    const { report } = await audit(viaDatabase());
    const treasury = await usdcBalance(platform.anvil.rpcUrl, platform.token, platform.treasury);
    expect(report.solvency).toEqual({
      treasuryBalanceMicroUsd: String(treasury),
      asOfBlock: expect.stringMatching(/^\d+$/),
      outstandingCreditsMicroUsd: String(9_484_567 - 4_321 + 1_000),
      heldCreditsMicroUsd: '0',
      creditedDepositsMicroUsd: '9484567',
      chargedUsageMicroUsd: '4321',
      operatorAdjustmentsMicroUsd: '1000',
      accountDebtMicroUsd: '0',
    });
    // The same figures as the platform's public `solvency` (in credits there), read with no key.
    const { solvency } = await gqlData<{ solvency: Record<string, string> }>(
      api.url,
      '{ solvency { treasuryBalance outstandingCredits heldCredits creditedDeposits chargedUsage operatorAdjustments accountDebt asOfBlock } }',
    );
    const { asOfBlock, ...figures } = solvency;
    // Read at the chain's newest block then, never before the audit's head.
    expect(BigInt(asOfBlock as string)).toBeGreaterThanOrEqual(BigInt(report.solvency.asOfBlock as string));
    const micro = (credits: string) => String(parseCredits(credits));
    expect(Object.fromEntries(Object.entries(figures).map(([k, v]) => [`${k}MicroUsd`, micro(v)]))).toEqual({
      treasuryBalanceMicroUsd: report.solvency.treasuryBalanceMicroUsd,
      outstandingCreditsMicroUsd: report.solvency.outstandingCreditsMicroUsd,
      heldCreditsMicroUsd: report.solvency.heldCreditsMicroUsd,
      creditedDepositsMicroUsd: report.solvency.creditedDepositsMicroUsd,
      chargedUsageMicroUsd: report.solvency.chargedUsageMicroUsd,
      operatorAdjustmentsMicroUsd: report.solvency.operatorAdjustmentsMicroUsd,
      accountDebtMicroUsd: report.solvency.accountDebtMicroUsd,
    });
    const markdown = await runAudit(viaDatabase().slice(0, -2));
    expect(markdown.stdout).toContain(
      `| treasury balance on chain | ${formatCredits(treasury as MicroUsd)} |`,
    );
  });

  it('audits clean from the database, in Markdown too', async () => {
    const { code, report } = await audit(viaDatabase());
    expect(code).toBe(0);
    expect(report.summary.transfersCredited).toBe(4);
    const markdown = await runAudit(viaDatabase().slice(0, -2));
    expect(markdown.code).toBe(0);
    expect(markdown.stdout).toContain('# ChainMeter audit: consistent');
    expect(markdown.stdout).toContain('| TRANSFER_NOT_CREDITED | 0 |');
  });
});

describe('a tampered ledger', () => {
  it("names an ADJUSTMENT stripped of its operator: neither a deposit's correction nor an operator's", async () => {
    await tampered(
      async () => {
        const { rows } = await db.query(
          "select operator, reason_text from ledger_entries where reference_id = 'adj-1'",
        );
        await db.query(
          "update ledger_entries set operator = null, reason_text = null where reference_id = 'adj-1'",
        );
        return async () => {
          await db.query(
            'update ledger_entries set operator = $1, reason_text = $2 where reference_id = $3',
            [rows[0].operator, rows[0].reason_text, 'adj-1'],
          );
        };
      },
      async () => {
        for (const args of [viaDatabase(), viaApi()]) {
          const { code, report } = await audit(args);
          expect(code).toBe(1);
          expect(kinds(report)).toEqual(['CREDIT_WITHOUT_TRANSFER', 'HASH_CHAIN_BROKEN']);
        }
      },
    );
  });

  it('names an edited credit amount (and the hash and balance it breaks)', async () => {
    const deposit = await depositOf(paymentTx(1));
    await tampered(
      async () => {
        await db.query('update ledger_entries set amount = amount + 1000 where deposit_id = $1', [
          deposit.id,
        ]);
        return async () => {
          await db.query('update ledger_entries set amount = amount - 1000 where deposit_id = $1', [
            deposit.id,
          ]);
        };
      },
      async () => {
        for (const args of [viaDatabase(), viaApi()]) {
          const { code, report } = await audit(args);
          expect(code).toBe(1);
          expect(kinds(report)).toEqual([
            'AMOUNT_MISMATCH',
            'BALANCE_MISMATCH',
            'BALANCE_MISMATCH',
            'HASH_CHAIN_BROKEN',
          ]);
          const amount = report.discrepancies.find((d) => d.kind === 'AMOUNT_MISMATCH');
          expect(amount).toMatchObject({
            accountId: deposit.account_id,
            txHash: paymentTx(1).toLowerCase(),
          });
        }
      },
    );
  });

  it('names a deleted credit: the transfer is not credited, and the account no longer adds up', async () => {
    const deposit = await depositOf(paymentTx(1));
    await tampered(
      async () => {
        const { rows } = await db.query('select * from ledger_entries where deposit_id = $1', [deposit.id]);
        await db.query('delete from ledger_entries where deposit_id = $1', [deposit.id]);
        await db.query('delete from deposits where id = $1', [deposit.id]);
        return async () => {
          await reinsert('deposits', deposit);
          await reinsert('ledger_entries', rows[0]);
        };
      },
      async () => {
        const { code, report } = await audit(viaDatabase());
        expect(code).toBe(1);
        expect(kinds(report)).toEqual(['BALANCE_MISMATCH', 'HASH_CHAIN_BROKEN', 'TRANSFER_NOT_CREDITED']);
        expect(report.discrepancies.find((d) => d.kind === 'TRANSFER_NOT_CREDITED')).toMatchObject({
          accountId: deposit.account_id,
          walletAddress: bob.address,
          txHash: paymentTx(1).toLowerCase(),
        });
      },
    );
  });

  it('names a well-chained credit that no transfer backs', async () => {
    const carolId = await accountIdOf(carol.address);
    const fakeTx = `0x${'ab'.repeat(32)}`;
    await tampered(
      async () => {
        const before = (await db.query('select * from accounts where id = $1', [carolId])).rows[0];
        const { rows } = await db.query(
          `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
             amount_token, amount, status, confirmations, credited_at)
           values (31337, $1, 0, 3, $1, $2, $3, 9000000, 9000000, 'CREDITED', 5, now()) returning id`,
          [fakeTx, carol.address, carolId],
        );
        const depositId = rows[0].id as string;
        // Through the real append, so the hash chain and balance are perfectly consistent.
        await appendLedgerEntry(api.services.orm.em.fork(), {
          accountId: carolId,
          amount: 9_000_000n,
          reason: 'DEPOSIT',
          referenceId: depositId,
          depositId,
        });
        return async () => {
          await db.query('delete from ledger_entries where deposit_id = $1', [depositId]);
          await db.query('delete from deposits where id = $1', [depositId]);
          await db.query(
            'update accounts set balance = $2, ledger_seq = $3, ledger_head = $4 where id = $1',
            [carolId, before.balance, before.ledger_seq, before.ledger_head],
          );
        };
      },
      async () => {
        const { code, report } = await audit(viaApi());
        expect(code).toBe(1);
        expect(report.discrepancies).toMatchObject([
          { kind: 'CREDIT_WITHOUT_TRANSFER', accountId: carolId, txHash: fakeTx },
        ]);
      },
    );
  });

  it('names a broken hash', async () => {
    const aliceId = await accountIdOf(alice.address);
    await tampered(
      async () => {
        await db.query("update ledger_entries set reference_id = 'usage-x' where reference_id = 'usage-1'");
        return async () => {
          await db.query("update ledger_entries set reference_id = 'usage-1' where reference_id = 'usage-x'");
        };
      },
      async () => {
        const { code, report } = await audit(viaDatabase());
        expect(code).toBe(1);
        expect(report.discrepancies).toMatchObject([{ kind: 'HASH_CHAIN_BROKEN', accountId: aliceId }]);
      },
    );
  });

  it('names a second credit of one transfer', async () => {
    const original = await depositOf(paymentTx(0));
    const carolId = await accountIdOf(carol.address);
    // The same log, its hash spelt in capitals: the unique constraints allow it, the audit does not.
    const lookalike = `0x${paymentTx(0).slice(2).toUpperCase()}`;
    await tampered(
      async () => {
        const before = (await db.query('select * from accounts where id = $1', [carolId])).rows[0];
        const { rows } = await db.query(
          `insert into deposits (chain_id, tx_hash, log_index, block_number, block_hash, from_address, account_id,
             amount_token, amount, status, confirmations, credited_at)
           select chain_id, $2, log_index, block_number, block_hash, from_address, $3, amount_token, amount,
             'CREDITED', confirmations, now() from deposits where id = $1 returning id`,
          [original.id, lookalike, carolId],
        );
        const depositId = rows[0].id as string;
        await appendLedgerEntry(api.services.orm.em.fork(), {
          accountId: carolId,
          amount: 5_000_000n,
          reason: 'DEPOSIT',
          referenceId: depositId,
          depositId,
        });
        return async () => {
          await db.query('delete from ledger_entries where deposit_id = $1', [depositId]);
          await db.query('delete from deposits where id = $1', [depositId]);
          await db.query(
            'update accounts set balance = $2, ledger_seq = $3, ledger_head = $4 where id = $1',
            [carolId, before.balance, before.ledger_seq, before.ledger_head],
          );
        };
      },
      async () => {
        for (const args of [viaDatabase(), viaApi()]) {
          const { code, report } = await audit(args);
          expect(code).toBe(1);
          expect(report.discrepancies).toMatchObject([
            { kind: 'DUPLICATE_CREDIT', txHash: lookalike.toLowerCase() },
          ]);
        }
      },
    );
  });

  it('names a changed stored balance, also in the GraphQL report', async () => {
    const bobId = await accountIdOf(bob.address);
    await tampered(
      async () => {
        await db.query('update accounts set balance = balance + 5 where id = $1', [bobId]);
        return async () => {
          await db.query('update accounts set balance = balance - 5 where id = $1', [bobId]);
        };
      },
      async () => {
        const { code, report } = await audit(viaDatabase());
        expect(code).toBe(1);
        expect(report.discrepancies).toMatchObject([
          { kind: 'BALANCE_MISMATCH', accountId: bobId, walletAddress: bob.address },
        ]);
        const { auditReport } = await gqlData<{
          auditReport: { consistent: boolean; discrepancies: { kind: string; accountId: string }[] };
        }>(api.url, '{ auditReport { consistent discrepancies { kind accountId } } }', {}, auditorKey);
        expect(auditReport).toEqual({
          consistent: false,
          discrepancies: [{ kind: 'BALANCE_MISMATCH', accountId: bobId }],
        });
      },
    );
  });
});

describe('the GraphQL report', () => {
  const REPORT = `{ auditReport { consistent head summary { transfersDue transfersCredited totalBalance }
    counts { kind count } discrepancies { kind } markdown } }`;

  it('is served to an auditor key', async () => {
    const { auditReport } = await gqlData<{
      auditReport: {
        consistent: boolean;
        summary: { transfersCredited: number; totalBalance: string };
        markdown: string;
      };
    }>(api.url, REPORT, {}, auditorKey);
    expect(auditReport.consistent).toBe(true);
    expect(auditReport.summary).toMatchObject({
      transfersDue: 4,
      transfersCredited: 4,
      totalBalance: '9481.246',
    });
    expect(auditReport.markdown).toContain('consistent');
  });

  it('is FORBIDDEN to a normal user, UNAUTHENTICATED without a credential', async () => {
    for (const query of [REPORT, '{ audit { accounts { edges { node { accountId } } } } }']) {
      const asUser = await gql(api.url, query, {}, userKey);
      expect(asUser.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const anonymous = await gql(api.url, query, {});
      expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });
});

describe('a per-account proof', () => {
  const PROOF =
    'query($wallet: Address) { accountProof(walletAddress: $wallet) { walletAddress entryCount document } }';

  it('is fetched by its owner and verified against the chain by the CLI', async () => {
    const { accountProof } = await gqlData<{
      accountProof: { walletAddress: string; entryCount: number; document: string };
    }>(api.url, PROOF, {}, userKey);
    expect(accountProof).toMatchObject({ walletAddress: bob.address, entryCount: 1 });
    const file = path.join(scratch, 'bob.json');
    writeFileSync(file, accountProof.document);
    const ok = await runAudit(['--proof', file, '--rpc', platform.anvil.rpcUrl, '--format', 'json']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).summary).toMatchObject({ transfersCredited: 1, transfersDue: 1 });

    // An edited proof fails: the amount no longer hashes, nor matches the transfer on chain.
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.entries[0].amountMicroUsd = '9999999';
    doc.entries[0].balanceAfterMicroUsd = '9999999';
    doc.account.balanceMicroUsd = '9999999';
    writeFileSync(file, JSON.stringify(doc));
    const bad = await runAudit(['--proof', file, '--rpc', platform.anvil.rpcUrl, '--format', 'json']);
    expect(bad.code).toBe(1);
    expect(kinds(JSON.parse(bad.stdout))).toEqual(['AMOUNT_MISMATCH', 'HASH_CHAIN_BROKEN']);
  });

  it("is refused for someone else's account unless the caller is an auditor", async () => {
    const other = await gql(api.url, PROOF, { wallet: alice.address }, userKey);
    expect(other.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const { accountProof } = await gqlData<{ accountProof: { entryCount: number; document: string } }>(
      api.url,
      PROOF,
      { wallet: alice.address },
      auditorKey,
    );
    expect(accountProof.entryCount).toBe(4);
    const file = path.join(scratch, 'alice.json');
    writeFileSync(file, accountProof.document);
    expect((await runAudit(['--proof', file, '--rpc', platform.anvil.rpcUrl])).code).toBe(0);
  });
});

describe('a reorg deeper than CONFIRMATIONS after a credit (last: it rewrites the chain)', () => {
  it('reports credits reversed in full or down to a debt, and names a forgiven debt', async () => {
    const rpc = platform.anvil.rpcUrl;
    const carolId = await accountIdOf(carol.address);
    const bobId = await accountIdOf(bob.address);
    const { rows: before } = await db.query(
      "select count(*)::int as n from deposits where status = 'CREDITED'",
    );
    const { rows: bobBefore } = await db.query<{ balance: string }>(
      'select balance::text as balance from accounts where id = $1',
      [bobId],
    );
    const carolPays = await transferUsdc(rpc, platform.token, carol, platform.treasury, 3_000_000n);
    const bobPays = await transferUsdc(rpc, platform.token, bob, platform.treasury, 2_000_000n);
    await mineBlocks(rpc, 2);
    await eventually(async () => {
      const { rows } = await db.query("select count(*)::int as n from deposits where status = 'CREDITED'");
      return rows[0].n === before[0].n + 2 ? true : undefined;
    });
    // Bob spends more than he had before this payment: the reversal cannot take all of it back. He had B,
    // got 2,000,000 and spent 3,000,000: the reversal takes the B - 1,000,000 left, and he owes
    // 2,000,000 - (B - 1,000,000) = 3,000,000 - B.
    await appendLedgerEntry(api.services.orm.em.fork(), {
      accountId: bobId,
      amount: -3_000_000n,
      reason: 'USAGE',
      referenceId: 'spent-before-the-reorg',
    });
    const owed = 3_000_000n - BigInt(bobBefore[0]?.balance ?? 'x');
    // Both payments' blocks and the two on top: 4 blocks deep, past CONFIRMATIONS = 2.
    await reorg(rpc, 4);
    await mineBlocks(rpc, 1);
    await eventually(async () => {
      const { rows } = await db.query("select count(*)::int as n from deposits where status = 'REORGED'");
      return rows[0].n === 2 ? true : undefined;
    }, 30_000);
    const { rows: debts } = await db.query<{ debt: string }>(
      'select debt::text as debt from accounts where id = $1',
      [bobId],
    );
    expect(debts[0]?.debt).toBe(owed.toString());

    for (const args of [viaDatabase(), viaApi()]) {
      const { code, report } = await audit(args);
      expect(report.discrepancies).toEqual([]);
      expect(code).toBe(0);
      expect(report.summary.creditsReversed).toBe(2);
      const reversed = (report as unknown as { reversedCredits: unknown[] }).reversedCredits;
      expect(reversed).toHaveLength(2);
      expect(reversed).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            accountId: carolId,
            txHash: carolPays.txHash.toLowerCase(),
            amount: '3000000',
            owed: '0',
          }),
          expect.objectContaining({
            accountId: bobId,
            txHash: bobPays.txHash.toLowerCase(),
            amount: '2000000',
            owed: owed.toString(),
          }),
        ]),
      );
    }
    const markdown = await runAudit(viaDatabase().slice(0, -2));
    expect(markdown.stdout).toContain('## Credits reversed after a reorg deeper than the confirmations');

    // Bob's debt forgiven behind the ledger's back: his deposit still owes it.
    await tampered(
      async () => {
        await db.query('update accounts set debt = 0 where id = $1', [bobId]);
        return async () => {
          await db.query('update accounts set debt = $2 where id = $1', [bobId, owed.toString()]);
        };
      },
      async () => {
        for (const args of [viaDatabase(), viaApi()]) {
          const { code, report } = await audit(args);
          expect(code).toBe(1);
          expect(report.discrepancies).toMatchObject([{ kind: 'BALANCE_MISMATCH', accountId: bobId }]);
        }
      },
    );
  });
});

describe('an audit that cannot run', () => {
  it('exits 2 with a message, never a stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['--format', 'xml'], /--format must be json or markdown/],
      [['--nonsense'], /Unknown option '--nonsense'/],
      [['--from-block', '-3'], /--from-block/],
      [['--rpc', 'http://127.0.0.1:9', '--api', api.url, '--key', auditorKey], /cannot reach the RPC/],
      [['--rpc', platform.anvil.rpcUrl, '--api', api.url], /no auditor API key/],
      [['--rpc', platform.anvil.rpcUrl, '--api', api.url, '--key', userKey], /refused the key \(FORBIDDEN/],
      [
        ['--rpc', platform.anvil.rpcUrl, '--api', 'http://127.0.0.1:9', '--key', auditorKey],
        /cannot reach the API/,
      ],
      [
        [
          '--rpc',
          platform.anvil.rpcUrl,
          '--database',
          'postgresql://nobody@127.0.0.1:9/x',
          '--token',
          platform.token,
          '--treasury',
          platform.treasury,
        ],
        /cannot connect to the database/,
      ],
      [
        ['--proof', path.join(scratch, 'missing.json'), '--rpc', platform.anvil.rpcUrl],
        /cannot read the proof file/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runAudit(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
    // Nine CLI processes one after another: 41 s in a CI run, past a minute on a busier machine.
  }, 180_000);
});

describe('the scheduled audit (AUDIT_INTERVAL_MS)', () => {
  it('keeps the audit metrics current without anybody asking: a discrepancy appears, then goes', async () => {
    const scheduled = await platform.startApi({
      AUDIT_INTERVAL_MS: '200',
      AUDITOR_ADDRESSES: auditor.address,
    });
    const mismatches = async () =>
      sample(await scrape(scheduled.url), 'chainmeter_audit_discrepancies', { kind: 'BALANCE_MISMATCH' });
    const ranAfter = async (time: number) => {
      const lastRun = sample(await scrape(scheduled.url), 'chainmeter_audit_last_run_timestamp_seconds');
      return lastRun !== undefined && lastRun * 1000 > time ? lastRun : undefined;
    };
    const started = Date.now();
    await eventually(() => ranAfter(started), 30_000, 'a first scheduled run');
    expect(await mismatches()).toBe(0);
    // (The tests above leave other kinds behind, e.g. the deep reorg's reversal: only this kind is watched.)
    const bobId = await accountIdOf(bob.address);
    await db.query('update accounts set balance = balance + 5 where id = $1', [bobId]);
    try {
      await eventually(
        async () => ((await mismatches()) === 1 ? true : undefined),
        30_000,
        'the scheduled audit to count the mismatch',
      );
    } finally {
      await db.query('update accounts set balance = balance - 5 where id = $1', [bobId]);
    }
    const undone = Date.now();
    await eventually(() => ranAfter(undone), 30_000, 'a run after the repair');
    await eventually(async () => ((await mismatches()) === 0 ? true : undefined), 30_000, 'a clean run');
    await scheduled.close();
  });
});
