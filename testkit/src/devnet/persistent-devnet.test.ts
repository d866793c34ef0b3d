/**
 * `npm start`'s devnet across restarts: what a first start sets up (token, payers' USDC, relayer's ETH,
 * canonical contracts), what a clean restart keeps, and how a chain saved by an older checkout (an
 * older TestUSDC, no relayer ETH) is brought up to date without losing its balances.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, createTestClient, http } from 'viem';
import { afterAll, expect, it } from 'vitest';
import { devAccounts } from './accounts.ts';
import { canonicalContractsPlaced } from './canonical-contracts.ts';
import { eip3009Abi } from './eip3009.ts';
import { startPersistentDevnet } from './persistent-devnet.ts';
import { findFreePort } from './ports.ts';
import { testUsdcRuntimeCode, usdcBalance } from './token.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

it('sets up the devnet, keeps it across a clean restart and updates an older one in place', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cm-persistent-devnet-'));
  dirs.push(dataDir);
  const options = {
    dataDir,
    dependentDirs: [join(dataDir, 'api')],
    port: await findFreePort(),
    blockTime: 1,
  };
  const payer = devAccounts.payers[0]?.address ?? '0x';

  const first = await startPersistentDevnet(options);
  let token = first.token;
  try {
    expect(first.resetReason).toBe('first start');
    const client = createPublicClient({ transport: http(first.anvil.rpcUrl) });
    expect(await client.readContract({ address: token, abi: eip3009Abi, functionName: 'name' })).toBe(
      'USD Coin',
    );
    expect(await usdcBalance(first.anvil.rpcUrl, token, payer)).toBe(10_000_000_000n);
    expect(await client.getBalance({ address: devAccounts.relayer.address })).toBeGreaterThan(0n);
    expect(await canonicalContractsPlaced(first.anvil.rpcUrl)).toBe(true);

    // What an older checkout left behind: a token with other code, a relayer without ETH.
    const test = createTestClient({ mode: 'anvil', transport: http(first.anvil.rpcUrl) });
    await test.setCode({ address: token, bytecode: `${testUsdcRuntimeCode}00` });
    await test.setBalance({ address: devAccounts.relayer.address, value: 0n });
  } finally {
    await first.stop();
  }

  const second = await startPersistentDevnet(options);
  try {
    expect(second.resetReason).toBeNull();
    expect(second.token).toBe(token);
    token = second.token;
    const client = createPublicClient({ transport: http(second.anvil.rpcUrl) });
    // Brought up to date, the balances the indexer saw untouched.
    expect(await client.getCode({ address: token })).toBe(testUsdcRuntimeCode);
    expect(await usdcBalance(second.anvil.rpcUrl, token, payer)).toBe(10_000_000_000n);
    expect(await client.getBalance({ address: devAccounts.relayer.address })).toBeGreaterThan(0n);
    expect(await canonicalContractsPlaced(second.anvil.rpcUrl)).toBe(true);
  } finally {
    await second.stop();
  }
});

it('starts from scratch, wiping the local data, when the restored chain lacks the block it was stopped at', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cm-persistent-devnet-'));
  dirs.push(dataDir);
  const localData = join(dataDir, 'api');
  const options = { dataDir, dependentDirs: [localData], port: await findFreePort(), blockTime: 1 };
  const first = await startPersistentDevnet(options);
  await first.stop();
  mkdirSync(localData);
  writeFileSync(join(localData, 'kept'), 'indexed by the previous run');
  // A chain that is not the one the previous run stopped: the recorded block's hash differs.
  const recordFile = join(dataDir, 'devnet', 'devnet.json');
  const record = JSON.parse(readFileSync(recordFile, 'utf8'));
  record.stoppedAt.blockHash = `0x${'ab'.repeat(32)}`;
  writeFileSync(recordFile, JSON.stringify(record));

  const second = await startPersistentDevnet(options);
  try {
    expect(second.resetReason).toBe('the restored chain does not contain the block it was stopped at');
    expect(existsSync(localData)).toBe(false);
    expect(await usdcBalance(second.anvil.rpcUrl, second.token, devAccounts.payers[0]?.address ?? '0x')).toBe(
      10_000_000_000n,
    );
  } finally {
    await second.stop();
  }
});
