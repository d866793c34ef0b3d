/**
 * The soak's end checks, each independent of the code under test: the audit CLI (its exit code), the books
 * (sums read from the tables), the deposits against the chain's own transfer logs and what the load sent,
 * and the calls against what the load was answered.
 */

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGroup } from '@chainmeter/testkit/process-group';
import type { ChainTransfer } from './chain.ts';
import type { CallRecord, DepositRecord } from './load.ts';
import type { Books, DepositRow, UsageRow } from './soak.store.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const AUDIT = fileURLToPath(new URL('../audit.ts', import.meta.url));

/** `npm run audit` against the API's database and the chain's RPC; passes on exit code 0. */
export async function runAudit(options: {
  rpcUrl: string;
  databaseUrl: string;
  env: Record<string, string>;
  runDir: string;
}): Promise<Check> {
  const args = [
    AUDIT,
    '--rpc',
    options.rpcUrl,
    '--database',
    options.databaseUrl,
    '--format',
    'json',
    '--quiet',
  ];
  const child = spawnGroup(process.execPath, args, {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const file = path.join(options.runDir, 'audit.json');
  writeFileSync(file, stdout);
  let summary = '';
  try {
    const report = JSON.parse(stdout) as { discrepancies?: { kind: string }[]; transfers?: unknown[] };
    const kinds = new Map<string, number>();
    for (const discrepancy of report.discrepancies ?? [])
      kinds.set(discrepancy.kind, (kinds.get(discrepancy.kind) ?? 0) + 1);
    summary = kinds.size ? [...kinds].map(([kind, n]) => `${kind} ${n}`).join(', ') : 'no discrepancy';
  } catch {
    summary = stderr.trim().split('\n').slice(-3).join(' ');
  }
  return { name: 'audit exits 0', ok: code === 0, detail: `exit ${code}: ${summary} (${file})` };
}

const sum = (values: Iterable<bigint>) => {
  let total = 0n;
  for (const value of values) total += value;
  return total;
};

export function checkBooks(books: Books): Check[] {
  const balance = BigInt(books.balance);
  const debt = BigInt(books.debt);
  const credited = BigInt(books.credited);
  const charged = BigInt(books.charged);
  return [
    {
      name: 'books exact',
      ok: balance - debt === credited - charged,
      detail: `balances ${balance} - debts ${debt} = ${balance - debt}; credited deposits ${credited} - charged usage ${charged} = ${credited - charged} (micro-USD)`,
    },
    {
      name: 'nothing held',
      ok: books.held === '0' && books.open_records === 0,
      detail: `held ${books.held} micro-USD, ${books.open_records} usage records still open${books.open_detail ? ` (${books.open_detail})` : ''}`,
    },
    {
      name: 'one USAGE entry per charged call',
      ok: BigInt(books.usage_entries_sum) === -charged,
      detail: `${books.usage_entries} USAGE entries summing ${books.usage_entries_sum}; charged ${charged}`,
    },
  ];
}

/**
 * No deposit lost or credited twice: every transfer to the treasury the chain holds (confirmed) is one
 * CREDITED deposit of the same sender and amount; no CREDITED deposit lacks its transfer; no deposit has two
 * DEPOSIT entries; and every transfer on chain is one the load sent (so the chain's figures are the load's).
 */
export function checkDeposits(
  chain: readonly ChainTransfer[],
  deposits: readonly DepositRow[],
  sent: readonly DepositRecord[],
  depositEntriesTwice: number,
  removedByReorgs: ReadonlySet<string>,
  /** Settlements of paid calls (x402): transfers the load caused, of amounts the platform chose. */
  settlements: ReadonlySet<string> = new Set(),
): Check[] {
  const key = (hash: string, logIndex: number) => `${hash.toLowerCase()}:${logIndex}`;
  const credited = new Map(
    deposits.filter((d) => d.status === 'CREDITED').map((d) => [key(d.tx_hash, d.log_index), d]),
  );
  const onChain = new Set(chain.map((t) => key(t.txHash, t.logIndex)));
  const lost = chain.filter((t) => !credited.has(key(t.txHash, t.logIndex)));
  const wrong = chain.filter((t) => {
    const deposit = credited.get(key(t.txHash, t.logIndex));
    return (
      deposit &&
      (BigInt(deposit.amount) !== t.value || deposit.from_address.toLowerCase() !== t.from.toLowerCase())
    );
  });
  const phantom = [...credited.keys()].filter((k) => !onChain.has(k));
  const sentHashes = new Map(sent.filter((d) => d.hash).map((d) => [(d.hash as string).toLowerCase(), d]));
  const chainHashes = new Set(chain.map((t) => t.txHash.toLowerCase()));
  const unknown = chain.filter(
    (t) => !sentHashes.has(t.txHash.toLowerCase()) && !settlements.has(t.txHash.toLowerCase()),
  );
  const deposited = chain.filter((t) => !settlements.has(t.txHash.toLowerCase()));
  const sentOnChain = [...sentHashes.values()].filter((d) =>
    chainHashes.has((d.hash as string).toLowerCase()),
  );
  const removed = [...sentHashes.keys()].filter((hash) => removedByReorgs.has(hash));
  const neverMined = [...sentHashes.keys()].filter(
    (hash) => !chainHashes.has(hash) && !removedByReorgs.has(hash),
  );
  const notSent = sent.filter((d) => !d.hash).length;
  const chainTotal = sum(chain.map((t) => t.value));
  const depositedTotal = sum(deposited.map((t) => t.value));
  const paidOnChain = chain.length - deposited.length;
  return [
    {
      name: 'no deposit lost',
      ok: lost.length === 0 && wrong.length === 0,
      detail: `${chain.length} confirmed transfers to the treasury on chain (${chainTotal} micro-USD): ${lost.length} not credited, ${wrong.length} credited with another sender or amount`,
    },
    {
      name: 'no deposit credited twice or without its transfer',
      ok: phantom.length === 0 && depositEntriesTwice === 0,
      detail: `${phantom.length} CREDITED deposits without a transfer on chain, ${depositEntriesTwice} deposits with two DEPOSIT entries`,
    },
    {
      name: 'the chain holds what the load sent',
      ok:
        unknown.length === 0 &&
        sentOnChain.length === deposited.length &&
        sum(sentOnChain.map((d) => d.amount)) === depositedTotal,
      detail: `sent ${sent.length}: ${sentOnChain.length} on chain, ${removed.length} removed by reorgs, ${neverMined.length} never mined, ${notSent} refused by the RPC; ${paidOnChain} settlements of paid calls; ${unknown.length} transfers on chain the load did not cause`,
    },
  ];
}

/**
 * Every served call charged once: each whole answer (200) the load received has its usage record charged
 * (BILLED or NEEDS_REVIEW; one per request id, which the table makes unique). A charged call the load saw
 * no whole answer for is allowed only where an answer was lost (a replica killed after its settlement
 * committed, a stream cut), so there can be no more of them than failed calls.
 */
export function checkCalls(calls: readonly CallRecord[], usage: readonly UsageRow[]): Check[] {
  const charged = new Map(
    usage
      .filter((row) => row.status === 'BILLED' || row.status === 'NEEDS_REVIEW')
      .map((row) => [row.request_id, row]),
  );
  const served = calls.filter((call) => call.served);
  const withoutId = served.filter((call) => !call.requestId).length;
  const servedIds = new Set(served.map((call) => call.requestId as string));
  const notCharged = served.filter((call) => call.requestId && !charged.has(call.requestId));
  const unpriced = served.filter((call) => charged.get(call.requestId as string)?.user_price === '0').length;
  const chargedNotServed = [...charged.keys()].filter((id) => !servedIds.has(id));
  const failed = calls.filter((call) => !call.served);
  const knownLost = chargedNotServed.filter((id) => failed.some((call) => call.requestId === id)).length;
  return [
    {
      name: 'every served call charged once',
      ok: notCharged.length === 0 && withoutId === 0,
      detail: `${served.length} whole answers: ${notCharged.length} without a charged usage record, ${withoutId} without a request id, ${unpriced} charged 0`,
    },
    {
      name: 'no call charged without a reason',
      ok: chargedNotServed.length <= failed.length,
      detail: `${charged.size} charged usage records; ${chargedNotServed.length} of them without a whole answer (${knownLost} of those the load saw fail with their id), against ${failed.length} failed calls`,
    },
  ];
}
