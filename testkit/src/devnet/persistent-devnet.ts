/**
 * The devnet of `npm start`, kept consistent with the platform's data across restarts.
 *
 * anvil dumps its state to `.data/devnet/anvil-state.json` (every second and on a clean stop) and loads it
 * at the next start, so balances survive. What must never happen is an indexer or an API database that
 * remembers transfers the chain no longer has: so a start keeps the local data only when the previous run
 * stopped cleanly and the restored chain still holds the block recorded at that stop. Otherwise the chain
 * starts from scratch and the local data is wiped with it, and the start says so.
 *
 * This module loads no viem: what needs it (contracts, balances, the check of a restored chain) is
 * `prepare`, by default `prepareDevnetChain` (`devnet-chain.ts`) in this process. `npm start` runs it in a
 * short-lived helper process instead, so that its long-lived supervisor stays small.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEVNET_CHAIN_ID } from '@chainmeter/schema/chains';
import { type Anvil, spawnAnvil } from './anvil-process.ts';

type Address = `0x${string}`;
type Hash = `0x${string}`;

interface DevnetRecord {
  chainId: number;
  token: Address;
  treasury: Address;
  /** Written by a clean stop: the head the chain was left at. Absent while running or after a crash. */
  stoppedAt?: { blockNumber: string; blockHash: Hash };
}

/** The devnet's token and treasury once `prepare` has run. */
export interface DevnetChain {
  token: Address;
  treasury: Address;
}

/**
 * Sets up the chain anvil runs at `rpcUrl`: a fresh one (`kept` null) from nothing; a restored one from the
 * record of the run that stopped it, or `{ reset }` when the chain is not the one that run left.
 */
export type PrepareDevnetChain = (
  rpcUrl: string,
  kept: { token: Address; stoppedAt: { blockNumber: string; blockHash: Hash } } | null,
) => Promise<DevnetChain | { reset: string }>;

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
  /** Default: `prepareDevnetChain`, in this process. */
  prepare?: PrepareDevnetChain;
}): Promise<PersistentDevnet> {
  const prepare = options.prepare ?? (await import('./devnet-chain.ts')).prepareDevnetChain;
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

  const anvilOptions = {
    port: options.port,
    chainId: DEVNET_CHAIN_ID,
    blockTime: options.blockTime,
    stateFile,
    stateIntervalSeconds: 1,
  };
  let anvil = await spawnAnvil(anvilOptions);
  let chain: DevnetChain | { reset: string } | null = null;
  try {
    if (!resetReason && record?.stoppedAt) {
      chain = await prepare(anvil.rpcUrl, { token: record.token, stoppedAt: record.stoppedAt });
      if ('reset' in chain) {
        resetReason = chain.reset;
        await anvil.stop();
        rmSync(stateFile, { force: true });
        anvil = await spawnAnvil(anvilOptions);
      }
    }
    if (!chain || 'reset' in chain) {
      for (const dir of options.dependentDirs) rmSync(dir, { recursive: true, force: true });
      chain = await prepare(anvil.rpcUrl, null);
      if ('reset' in chain) throw new Error(`the devnet could not be set up: ${chain.reset}`);
    }
  } catch (error) {
    await anvil.stop();
    throw error;
  }
  const { token, treasury } = chain;
  // Running: no `stoppedAt`, so a crash from here on is detected at the next start.
  writeRecord(recordFile, { chainId: DEVNET_CHAIN_ID, token, treasury });

  return {
    anvil,
    token,
    treasury,
    resetReason,
    stop: async () => {
      const head = await latestBlock(anvil.rpcUrl).catch(() => null);
      await anvil.stop();
      if (head && existsSync(stateFile)) {
        writeRecord(recordFile, { chainId: DEVNET_CHAIN_ID, token, treasury, stoppedAt: head });
      }
    },
  };
}

/** The head block's number (decimal) and hash, by plain JSON-RPC. */
async function latestBlock(rpcUrl: string): Promise<{ blockNumber: string; blockHash: Hash } | null> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'eth_getBlockByNumber',
      params: ['latest', false],
    }),
    signal: AbortSignal.timeout(5_000),
  });
  const { result } = (await response.json()) as { result?: { number?: string; hash?: Hash } | null };
  if (!result?.number || !result.hash) return null;
  return { blockNumber: BigInt(result.number).toString(), blockHash: result.hash };
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
