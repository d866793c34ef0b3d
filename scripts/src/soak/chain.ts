/**
 * The soak's side of the chain: funding the wallets, sending their deposits, and a watcher that records when
 * each block was first seen and which transactions it holds (a deposit's confirmation time is when the block
 * CONFIRMATIONS above its own was first seen).
 */
import { usdcAbi } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeFunctionData,
  type Hash,
  http,
  type PrivateKeyAccount,
  parseAbiItem,
} from 'viem';
import { anvil as anvilChain } from 'viem/chains';
import { sleep } from './processes.ts';

const GAS = 100_000n;
const FEES = { maxFeePerGas: 20_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n } as const;

export function chainClients(rpcUrl: string) {
  const transport = http(rpcUrl, { timeout: 10_000, retryCount: 0 });
  return {
    public: createPublicClient({ chain: anvilChain, transport, pollingInterval: 200 }),
    test: createTestClient({ chain: anvilChain, mode: 'anvil', transport }),
  };
}

function transferData(to: Address, amount: bigint) {
  return encodeFunctionData({ abi: usdcAbi, functionName: 'transfer', args: [to, amount] });
}

/** Gas money and `usdcEach` of the test token for every wallet, in a block or two (mints signed with explicit nonces). */
export async function fundWallets(
  rpcUrl: string,
  token: Address,
  wallets: readonly PrivateKeyAccount[],
  usdcEach: bigint,
): Promise<void> {
  const { public: client, test } = chainClients(rpcUrl);
  for (const wallet of wallets) await test.setBalance({ address: wallet.address, value: 10n ** 21n });
  const deployer = createWalletClient({
    chain: anvilChain,
    account: devAccounts.deployer,
    transport: http(rpcUrl),
  });
  const first = await client.getTransactionCount({
    address: devAccounts.deployer.address,
    blockTag: 'pending',
  });
  const hashes = await Promise.all(
    wallets.map((wallet, i) =>
      deployer.sendTransaction({
        to: token,
        data: encodeFunctionData({ abi: usdcAbi, functionName: 'mint', args: [wallet.address, usdcEach] }),
        gas: GAS,
        nonce: first + i,
        ...FEES,
      }),
    ),
  );
  for (const hash of hashes) {
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: 60_000 });
    if (receipt.status !== 'success') throw new Error(`mint ${hash} reverted`);
  }
}

/** Sends `amount` of the token from `wallet` to `to` (the nonce read from the chain's pending state). */
export async function sendTransfer(
  rpcUrl: string,
  token: Address,
  wallet: PrivateKeyAccount,
  to: Address,
  amount: bigint,
): Promise<Hash> {
  const client = createWalletClient({
    chain: anvilChain,
    account: wallet,
    transport: http(rpcUrl, { timeout: 10_000 }),
  });
  return client.sendTransaction({ to: token, data: transferData(to, amount), gas: GAS, ...FEES });
}

export interface SeenBlock {
  number: bigint;
  hash: Hash;
  seenAt: number;
  transactions: Hash[];
}

/** Polls the chain's head and records every block the first time it is seen. */
export class BlockWatcher {
  readonly blocks = new Map<bigint, SeenBlock>();
  /** A transaction's block, as last seen (a reorg that drops it does not remove it: see `resync`). */
  readonly blockOf = new Map<Hash, bigint>();
  head = 0n;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly client;

  constructor(rpcUrl: string) {
    this.client = chainClients(rpcUrl).public;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.poll().catch(() => {});
        await sleep(200);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async poll(): Promise<void> {
    const head = await this.client.getBlockNumber({ cacheTime: 0 });
    const from = this.head === 0n ? head : this.head + 1n;
    for (let number = from; number <= head; number++) await this.record(number);
    if (head > this.head) this.head = head;
  }

  private async record(number: bigint): Promise<void> {
    const block = await this.client.getBlock({ blockNumber: number });
    const previous = this.blocks.get(number);
    this.blocks.set(number, {
      number,
      hash: block.hash as Hash,
      seenAt: previous?.seenAt ?? Date.now(),
      transactions: block.transactions as Hash[],
    });
    for (const hash of block.transactions as Hash[]) this.blockOf.set(hash, number);
  }

  /** After a reorg: reads the blocks from `from` to the head again, forgetting transactions no longer there. */
  async resync(from: bigint): Promise<void> {
    for (const [hash, number] of this.blockOf) if (number >= from) this.blockOf.delete(hash);
    const head = await this.client.getBlockNumber({ cacheTime: 0 });
    for (let number = from; number <= head; number++) await this.record(number);
    if (head > this.head) this.head = head;
  }

  /** When the block that gives a transaction of `block` its CONFIRMATIONS was first seen. */
  confirmedAt(block: bigint, confirmations: number): number | undefined {
    return this.blocks.get(block + BigInt(confirmations))?.seenAt;
  }
}

export interface ChainTransfer {
  txHash: Hash;
  logIndex: number;
  blockNumber: bigint;
  from: Address;
  value: bigint;
}

const TRANSFER = parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 value)');

/** Every transfer of the token to the treasury up to `toBlock`, read from the chain itself (not the indexer). */
export async function treasuryTransfers(
  rpcUrl: string,
  token: Address,
  treasury: Address,
  toBlock: bigint,
): Promise<ChainTransfer[]> {
  const client = chainClients(rpcUrl).public;
  const out: ChainTransfer[] = [];
  for (let from = 0n; from <= toBlock; from += 1_000n) {
    const to = from + 999n < toBlock ? from + 999n : toBlock;
    const logs = await client.getLogs({
      address: token,
      event: TRANSFER,
      args: { to: treasury },
      fromBlock: from,
      toBlock: to,
    });
    for (const log of logs) {
      out.push({
        txHash: log.transactionHash as Hash,
        logIndex: log.logIndex as number,
        blockNumber: log.blockNumber as bigint,
        from: log.args.from as Address,
        value: log.args.value as bigint,
      });
    }
  }
  return out;
}
