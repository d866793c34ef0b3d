import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, http, parseAbiItem } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { devAccounts } from './accounts.ts';
import { mineBlocks, reorg, revert, snapshot, startAnvil } from './anvil.ts';
import { findProcesses } from './process-group.ts';
import { deployTestUsdc, mintUsdc, transferUsdc, usdcBalance } from './token.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Every live process whose command line mentions `--port <port>` and anvil (the binary, and a wrapper if any). */
function processesOnPort(port: number): number[] {
  return findProcesses((args) => {
    const at = args.indexOf('--port');
    return at >= 0 && args[at + 1] === String(port) && args.some((arg) => arg.includes('anvil'));
  });
}

describe('devnet', () => {
  it('starts anvil without its Node wrapper, and stop leaves nothing behind', async () => {
    const anvil = await startAnvil();
    // The real binary only: no `.bin/anvil` Node process (~50 MB) in between.
    const pids = processesOnPort(anvil.port);
    expect(pids.length).toBe(1);
    expect(readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').split('\0')[0]).toMatch(/\/bin\/anvil$/);
    await anvil.stop();
    expect(processesOnPort(anvil.port)).toEqual([]);
    await anvil.stop(); // idempotent
  });

  it('refuses a port another node already answers on, instead of using that node', async () => {
    const first = await startAnvil();
    try {
      await expect(startAnvil({ port: first.port })).rejects.toThrow(/exited before it was ready/);
      // The node that was there is untouched and still the only one on its port.
      expect(processesOnPort(first.port).length).toBe(1);
    } finally {
      await first.stop();
    }
  });

  it('deploys the token, mints and transfers, with the dev accounts by role', async () => {
    expect(devAccounts.deployer.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
    expect(devAccounts.treasury.index).toBe(9);
    expect(devAccounts.payers.map((a) => a.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(devAccounts.relayer.index).toBe(10);
    const anvil = await startAnvil({ chainId: 31337 });
    try {
      // Every role has anvil's 10,000 ETH for gas, the relayer (beyond anvil's default ten) included.
      const client = createPublicClient({ transport: http(anvil.rpcUrl) });
      for (const account of [
        devAccounts.deployer,
        devAccounts.treasury,
        ...devAccounts.payers,
        devAccounts.relayer,
      ])
        expect(await client.getBalance({ address: account.address })).toBe(10_000n * 10n ** 18n);
      const token = await deployTestUsdc(anvil.rpcUrl);
      const [payer] = devAccounts.payers;
      if (!payer) throw new Error('no payer');
      await mintUsdc(anvil.rpcUrl, token, payer.address, 5_000_000n);
      const paid = await transferUsdc(anvil.rpcUrl, token, payer, devAccounts.treasury.address, 1_250_000n);
      expect(paid.blockNumber).toBeGreaterThan(0n);
      expect(await usdcBalance(anvil.rpcUrl, token, payer.address)).toBe(3_750_000n);
      expect(await usdcBalance(anvil.rpcUrl, token, devAccounts.treasury.address)).toBe(1_250_000n);
    } finally {
      await anvil.stop();
    }
  });

  it('removes a mined transfer with anvil_reorg and with snapshot/revert', async () => {
    const anvil = await startAnvil();
    try {
      const client = createPublicClient({ transport: http(anvil.rpcUrl), cacheTime: 0 });
      const token = await deployTestUsdc(anvil.rpcUrl);
      const [payer] = devAccounts.payers;
      if (!payer) throw new Error('no payer');
      await mintUsdc(anvil.rpcUrl, token, payer.address, 100n);
      const treasury = devAccounts.treasury.address;

      const paid = await transferUsdc(anvil.rpcUrl, token, payer, treasury, 10n);
      await mineBlocks(anvil.rpcUrl, 2);
      const oldHash = (await client.getBlock({ blockNumber: paid.blockNumber })).hash;
      await reorg(anvil.rpcUrl, 3);
      await mineBlocks(anvil.rpcUrl, 1);
      expect(await client.getBlockNumber()).toBe(paid.blockNumber + 3n);
      expect((await client.getBlock({ blockNumber: paid.blockNumber })).hash).not.toBe(oldHash);
      await expect(client.getTransactionReceipt({ hash: paid.txHash })).rejects.toThrow();
      expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(0n);

      const id = await snapshot(anvil.rpcUrl);
      const again = await transferUsdc(anvil.rpcUrl, token, payer, treasury, 20n);
      await revert(anvil.rpcUrl, id);
      await mineBlocks(anvil.rpcUrl, 3);
      expect(await client.getBlockNumber()).toBe(again.blockNumber + 2n);
      await expect(client.getTransactionReceipt({ hash: again.txHash })).rejects.toThrow();
      expect(await usdcBalance(anvil.rpcUrl, token, treasury)).toBe(0n);
    } finally {
      await anvil.stop();
    }
  });

  it('keeps its chain in a state file across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cm-anvil-state-'));
    dirs.push(dir);
    const stateFile = join(dir, 'state.json');
    const first = await startAnvil({ stateFile });
    const token = await deployTestUsdc(first.rpcUrl);
    const [payer] = devAccounts.payers;
    if (!payer) throw new Error('no payer');
    const minted = await mintUsdc(first.rpcUrl, token, payer.address, 42n);
    await first.stop();
    expect(existsSync(stateFile)).toBe(true);

    const second = await startAnvil({ stateFile });
    try {
      const client = createPublicClient({ transport: http(second.rpcUrl), cacheTime: 0 });
      expect(await client.getBlockNumber()).toBe(minted.blockNumber);
      expect(await usdcBalance(second.rpcUrl, token, payer.address)).toBe(42n);
      // The history is there too: an indexer started afterwards finds the old logs.
      const logs = await client.getLogs({
        address: token,
        event: parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 value)'),
        fromBlock: 0n,
      });
      expect(logs.map((log) => log.transactionHash)).toEqual([minted.txHash]);
    } finally {
      await second.stop();
    }
  });
});
