/**
 * Benchmark of the audit (issue 5): transfers verified per second on a devnet with 100,000 treasury
 * transfers from 100 wallets, all credited.
 *
 * Set-up (not timed as the audit): a real anvil with the test token; the transfers are real ERC-20
 * `transfer` transactions, sent in JSON-RPC batches from auto-impersonated wallets (no local signing),
 * 500 per block. They are credited into a fresh PostgreSQL by the API's own crediting service
 * (`creditConfirmedTransfers`) fed from the chain's logs: Ponder is left out of the set-up because the
 * audit never reads the indexer, and backfilling 100,000 logs through it would dominate the run.
 *
 * Measured: the audit's phases in-process (RPC log scan, database read, check), then the CLI as a real
 * process end to end on the database path and on the API path (auditor key, GraphQL pages of 1,000).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createOrm, migrateUp } from '@chainmeter/api/db/orm';
import { loadConfig } from '@chainmeter/api/env';
import { findOrCreateAccount } from '@chainmeter/api/modules/accounts/accounts.service';
import { createApiKey } from '@chainmeter/api/modules/apikeys/apikeys.service';
import { startApi } from '@chainmeter/api/server';
import { checkAudit, fetchTreasuryTransfers, usdcAbi } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { mineBlocks, setAutomine, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase } from '@chainmeter/testkit/postgres';
import { deployTestUsdc } from '@chainmeter/testkit/token';
import {
  type Address,
  createPublicClient,
  encodeFunctionData,
  getAddress,
  type Hash,
  http,
  toHex,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { creditTreasuryTransfers } from '../audit/credit-from-chain.ts';
import { readRecordsFromDatabase } from '../audit/platform-records.ts';
import { printTable } from './stats.ts';

const TRANSFERS = 100_000;
const WALLETS = 100;
const PER_BLOCK = 500;
const AUDIT_CLI = fileURLToPath(new URL('../audit.ts', import.meta.url));

interface RpcCall {
  method: string;
  params: unknown[];
}

async function rpcBatch(url: string, calls: RpcCall[]): Promise<unknown[]> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(calls.map((call, id) => ({ jsonrpc: '2.0', id, ...call }))),
  });
  const answers = (await response.json()) as { id: number; result?: unknown; error?: { message: string } }[];
  const failed = answers.find((answer) => answer.error);
  if (failed) throw new Error(`${calls[failed.id]?.method}: ${failed.error?.message}`);
  return answers.sort((a, b) => a.id - b.id).map((answer) => answer.result);
}

const seconds = (since: number) => (performance.now() - since) / 1000;

function runCli(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AUDIT_CLI, '--quiet', '--format', 'json', ...args],
      { maxBuffer: 256 * 1024 * 1024, timeout: 600_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

export async function benchAudit(): Promise<void> {
  const anvil = await startAnvil();
  const database = await createTestDatabase('cm_bench_audit');
  const orm = await createOrm({ databaseUrl: database.url });
  try {
    await migrateUp(orm);
    const rpc = anvil.rpcUrl;
    const token = await deployTestUsdc(rpc);
    const treasury = devAccounts.treasury.address;
    const client = createPublicClient({ transport: http(rpc, { timeout: 60_000, retryCount: 0 }) });

    // Build the chain: 100 wallets, each funded and minted once, then 1,000 transfers each.
    const buildStarted = performance.now();
    const wallets: Address[] = Array.from({ length: WALLETS }, () =>
      getAddress(privateKeyToAccount(generatePrivateKey()).address),
    );
    await setAutomine(rpc, false);
    await rpcBatch(rpc, [{ method: 'anvil_autoImpersonateAccount', params: [true] }]);
    await rpcBatch(
      rpc,
      wallets.map((wallet) => ({ method: 'anvil_setBalance', params: [wallet, toHex(10n ** 21n)] })),
    );
    const deployer = devAccounts.deployer.address;
    const deployerNonce = await client.getTransactionCount({ address: deployer });
    const tx = (from: Address, nonce: number, data: Hash) => ({
      method: 'eth_sendTransaction',
      params: [
        { from, to: token, data, nonce: toHex(nonce), gas: toHex(80_000), gasPrice: toHex(10n ** 12n) },
      ],
    });
    await rpcBatch(
      rpc,
      wallets.map((wallet, i) =>
        tx(
          deployer,
          deployerNonce + i,
          encodeFunctionData({ abi: usdcAbi, functionName: 'mint', args: [wallet, 10n ** 12n] }),
        ),
      ),
    );
    await mineBlocks(rpc, 1);
    const perWalletPerBlock = PER_BLOCK / WALLETS;
    for (let block = 0; block < TRANSFERS / PER_BLOCK; block++) {
      const calls: RpcCall[] = [];
      for (const wallet of wallets) {
        for (let k = 0; k < perWalletPerBlock; k++) {
          const nonce = block * perWalletPerBlock + k;
          calls.push(
            tx(
              wallet,
              nonce,
              encodeFunctionData({
                abi: usdcAbi,
                functionName: 'transfer',
                args: [treasury, 1_000n + BigInt(nonce)],
              }),
            ),
          );
        }
      }
      await rpcBatch(rpc, calls);
      await mineBlocks(rpc, 1);
    }
    await mineBlocks(rpc, 3);
    await setAutomine(rpc, true);
    const head = await client.getBlockNumber();
    const built = seconds(buildStarted);

    // Credit them through the API's crediting service, from the chain's own logs.
    const creditStarted = performance.now();
    const onChain = await creditTreasuryTransfers(orm.em, client, { chainId: 31337, token, treasury, head });
    if (onChain.length !== TRANSFERS)
      throw new Error(`expected ${TRANSFERS} transfers, found ${onChain.length}`);
    const credited = seconds(creditStarted);

    // The audit's phases, in-process, database path.
    const scanStarted = performance.now();
    const transfers = await fetchTreasuryTransfers(client, {
      chainId: 31337,
      token,
      treasury,
      fromBlock: 0n,
      toBlock: head,
    });
    const scan = seconds(scanStarted);
    const readStarted = performance.now();
    const records = await readRecordsFromDatabase(database.url);
    const read = seconds(readStarted);
    const checkStarted = performance.now();
    const report = checkAudit({
      chainId: 31337,
      tokenAddress: token,
      treasuryAddress: treasury,
      confirmations: 2,
      fromBlock: 0n,
      head,
      transfers,
      ...records,
    });
    const check = seconds(checkStarted);
    if (!report.consistent || report.summary.transfersCredited !== TRANSFERS) {
      throw new Error(`the benchmark ledger does not audit clean: ${JSON.stringify(report.counts)}`);
    }

    // The CLI end to end: database path, then API path (the API in this process, no crediting worker).
    const dbStarted = performance.now();
    const viaDb = await runCli([
      '--rpc',
      rpc,
      '--database',
      database.url,
      '--token',
      token,
      '--treasury',
      treasury,
      '--confirmations',
      '2',
    ]);
    const dbSeconds = seconds(dbStarted);
    if (viaDb.code !== 0) throw new Error(`audit CLI (database) exited ${viaDb.code}: ${viaDb.stderr}`);

    const auditor = privateKeyToAccount(generatePrivateKey());
    const api = await startApi(
      loadConfig({
        NODE_ENV: 'test',
        PORT: '0',
        HOST: '127.0.0.1',
        RPC_URL: rpc,
        CHAIN_ID: '31337',
        USDC_ADDRESS: token,
        TREASURY_ADDRESS: treasury,
        CONFIRMATIONS: '2',
        DATABASE_URL: database.url,
        AUDITOR_ADDRESSES: auditor.address,
        LOG_LEVEL: 'warn',
      }),
      { crediting: false },
    );
    let apiSeconds: number;
    try {
      const em = orm.em.fork();
      const account = await findOrCreateAccount(em, auditor.address);
      const { secret } = await createApiKey(em, account.id, { name: 'bench', scope: 'AUDITOR' });
      const apiStarted = performance.now();
      const viaApi = await runCli(['--rpc', rpc, '--api', api.url, '--key', secret]);
      apiSeconds = seconds(apiStarted);
      if (viaApi.code !== 0) throw new Error(`audit CLI (API) exited ${viaApi.code}: ${viaApi.stderr}`);
    } finally {
      await api.close();
    }

    const rate = (s: number) => `${Math.round(TRANSFERS / s).toLocaleString('en-US')}/s`;
    printTable(
      `Audit of ${TRANSFERS.toLocaleString('en-US')} treasury transfers from ${WALLETS} wallets (${head} blocks), all credited`,
      [
        {
          measure: 'RPC log scan (eth_getLogs, adaptive ranges)',
          seconds: scan.toFixed(2),
          'transfers/s': rate(scan),
        },
        {
          measure: 'database read (one REPEATABLE READ snapshot)',
          seconds: read.toFixed(2),
          'transfers/s': rate(read),
        },
        {
          measure: 'check (matching, hash chains, balances)',
          seconds: check.toFixed(2),
          'transfers/s': rate(check),
        },
        {
          measure: 'in-process total, database path',
          seconds: (scan + read + check).toFixed(2),
          'transfers/s': rate(scan + read + check),
        },
        {
          measure: 'CLI process end to end, --database',
          seconds: dbSeconds.toFixed(2),
          'transfers/s': rate(dbSeconds),
        },
        {
          measure: 'CLI process end to end, --api (auditor key)',
          seconds: apiSeconds.toFixed(2),
          'transfers/s': rate(apiSeconds),
        },
      ],
    );
    console.log(
      `(set-up: chain built in ${built.toFixed(1)} s, credited by creditConfirmedTransfers in ${credited.toFixed(1)} s)`,
    );
  } finally {
    await orm.close(true);
    await database.drop();
    await anvil.stop();
  }
}
