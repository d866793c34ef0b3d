/**
 * The devnet of `npm start`, kept consistent with the platform's data across restarts.
 *
 * anvil dumps its state to `.data/devnet/anvil-state.json` (every second and on a clean stop) and loads it
 * at the next start, so balances survive. What must never happen is an indexer or an API database that
 * remembers transfers the chain no longer has: so a start keeps the local data only when the previous run
 * stopped cleanly and the restored chain still holds the block recorded at that stop. Otherwise the chain
 * starts from scratch and the local data is wiped with it, and the start says so.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEVNET_CHAIN_ID } from '@chainmeter/schema';
import { type Address, createPublicClient, createTestClient, type Hash, http, parseEther } from 'viem';
import { devAccounts } from './accounts.ts';
import { type Anvil, startAnvil } from './anvil.ts';
import { deployTestUsdc, mintUsdc, testUsdcRuntimeCode } from './token.ts';

const FUNDING = 10_000n * 1_000_000n; // 10,000 USDC per payer, in base units

interface DevnetRecord {
  chainId: number;
  token: Address;
  treasury: Address;
  /** Written by a clean stop: the head the chain was left at. Absent while running or after a crash. */
  stoppedAt?: { blockNumber: string; blockHash: Hash };
}

export interface PersistentDevnet {
  anvil: Anvil;
  token: Address;
  treasury: Address;
  /** Why the chain (and the local data with it) started from scratch, or null when both were kept. */
  resetReason: string | null;
  stop(): Promise<void>;
}

export async function startPersistentDevnet(options: {
  dataDir: string;
  /** Folders of local data that must be wiped when the chain starts from scratch. */
  dependentDirs: string[];
  port: number;
  blockTime: number;
}): Promise<PersistentDevnet> {
  const devnetDir = path.join(options.dataDir, 'devnet');
  const stateFile = path.join(devnetDir, 'anvil-state.json');
  const recordFile = path.join(devnetDir, 'devnet.json');
  mkdirSync(devnetDir, { recursive: true });
  const record = readRecord(recordFile);

  let resetReason: string | null = null;
  if (!record) {
    resetReason = existsSync(stateFile) ? 'the devnet record is missing' : 'first start';
  } else if (!record.stoppedAt) {
    resetReason = 'the previous run did not stop cleanly, so the saved chain may be behind what was indexed';
  } else if (!existsSync(stateFile)) {
    resetReason = 'the saved chain state is missing';
  }
  if (resetReason) rmSync(stateFile, { force: true });

  let anvil = await startAnvil({
    port: options.port,
    chainId: DEVNET_CHAIN_ID,
    blockTime: options.blockTime,
    stateFile,
    stateIntervalSeconds: 1,
  });
  if (!resetReason && record?.stoppedAt) {
    const client = createPublicClient({ transport: http(anvil.rpcUrl) });
    const kept = await client
      .getBlock({ blockNumber: BigInt(record.stoppedAt.blockNumber) })
      .then((block) => block.hash === record.stoppedAt?.blockHash)
      .catch(() => false);
    const code = await client.getCode({ address: record.token }).catch(() => undefined);
    if (!kept || !code || code === '0x') {
      resetReason = 'the restored chain does not contain the block it was stopped at';
      await anvil.stop();
      rmSync(stateFile, { force: true });
      anvil = await startAnvil({
        port: options.port,
        chainId: DEVNET_CHAIN_ID,
        blockTime: options.blockTime,
        stateFile,
        stateIntervalSeconds: 1,
      });
    }
  }

  let token: Address;
  if (resetReason || !record) {
    for (const dir of options.dependentDirs) rmSync(dir, { recursive: true, force: true });
    token = await deployTestUsdc(anvil.rpcUrl);
    for (const payer of devAccounts.payers) await mintUsdc(anvil.rpcUrl, token, payer.address, FUNDING);
  } else {
    token = record.token;
    await keepDevnetCurrent(anvil.rpcUrl, token);
  }
  const treasury = devAccounts.treasury.address;
  // Running: no `stoppedAt`, so a crash from here on is detected at the next start.
  writeRecord(recordFile, { chainId: DEVNET_CHAIN_ID, token, treasury });

  return {
    anvil,
    token,
    treasury,
    resetReason,
    stop: async () => {
      const client = createPublicClient({ transport: http(anvil.rpcUrl) });
      const head = await client.getBlock().catch(() => null);
      await anvil.stop();
      if (head?.hash && existsSync(stateFile)) {
        writeRecord(recordFile, {
          chainId: DEVNET_CHAIN_ID,
          token,
          treasury,
          stoppedAt: { blockNumber: head.number.toString(), blockHash: head.hash },
        });
      }
    },
  };
}

/**
 * A chain kept from an older checkout may carry an older TestUSDC (before EIP-3009) or predate the
 * relayer account. The token's code is replaced in place (its storage layout only ever grows at the
 * end, so balances stay as the indexer saw them) and the relayer gets its ETH.
 */
async function keepDevnetCurrent(rpcUrl: string, token: Address): Promise<void> {
  const client = createTestClient({ mode: 'anvil', transport: http(rpcUrl) });
  const publicClient = createPublicClient({ transport: http(rpcUrl) });
  if ((await publicClient.getCode({ address: token })) !== testUsdcRuntimeCode) {
    await client.setCode({ address: token, bytecode: testUsdcRuntimeCode });
  }
  if ((await publicClient.getBalance({ address: devAccounts.relayer.address })) === 0n) {
    await client.setBalance({ address: devAccounts.relayer.address, value: parseEther('10000') });
  }
}

function readRecord(file: string): DevnetRecord | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DevnetRecord;
  } catch {
    return null;
  }
}

function writeRecord(file: string, record: DevnetRecord): void {
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
}
