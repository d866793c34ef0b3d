import { type Address, getAbiItem, getAddress, type PublicClient } from 'viem';
import { usdcAbi } from '../usdc-abi.ts';
import type { ChainTransfer } from './audit-types.ts';

const transferEvent = getAbiItem({ abi: usdcAbi, name: 'Transfer' });

export interface ScanProgress {
  fromBlock: bigint;
  toBlock: bigint;
  /** Blocks [fromBlock, scannedTo] are done. */
  scannedTo: bigint;
  transfers: number;
}

export interface FetchTreasuryTransfersParameters {
  chainId: number;
  token: Address;
  treasury: Address;
  fromBlock: bigint;
  toBlock: bigint;
  /** Only transfers from this wallet (a per-account proof). */
  from?: Address;
  /** Blocks per first request; adapted afterwards (default 2,000). */
  blockRange?: bigint;
  /** Failed requests in a row before giving up (default 8). */
  maxAttempts?: number;
  onProgress?: (progress: ScanProgress) => void;
}

export class TransferScanError extends Error {
  override name = 'TransferScanError';
}

/** About this many logs per request keeps a response far below viem's 10 MB cap (about 700 bytes a log). */
const TARGET_LOGS_PER_REQUEST = 5_000n;
const MAX_RANGE = 100_000n;

/**
 * Every `Transfer(from, to = treasury, value)` log of the token in [fromBlock, toBlock], read from the
 * RPC with `eth_getLogs` and an event filter on `to` (and `from`, when given). The range is scanned in
 * bounded windows that adapt to the density of logs: a failed request (too many results, a response
 * too large, a timeout) is retried on half the window after a short backoff, and a window that failed
 * is never tried again at that size; a sparse window grows. Ordered by (blockNumber, logIndex).
 *
 * @example
 * const transfers = await fetchTreasuryTransfers(client, { chainId, token, treasury, fromBlock: 0n,
 *   toBlock: await client.getBlockNumber() });
 */
export async function fetchTreasuryTransfers(
  client: PublicClient,
  params: FetchTreasuryTransfersParameters,
): Promise<ChainTransfer[]> {
  const out: ChainTransfer[] = [];
  const maxAttempts = params.maxAttempts ?? 8;
  let range = params.blockRange ?? 2_000n;
  let ceiling = MAX_RANGE;
  let failures = 0;
  let start = params.fromBlock;
  let lastError: unknown;
  while (start <= params.toBlock) {
    const end = start + range - 1n < params.toBlock ? start + range - 1n : params.toBlock;
    let logs: Awaited<ReturnType<typeof getTransferLogs>>;
    try {
      logs = await getTransferLogs(client, params, start, end);
    } catch (error) {
      lastError = error;
      failures++;
      if (failures >= maxAttempts) {
        throw new TransferScanError(
          `eth_getLogs failed ${failures} times in a row for blocks ${start}..${end}: ${firstLine(lastError)}`,
        );
      }
      if (end > start) {
        ceiling = (end - start + 1n) / 2n || 1n;
        range = ceiling;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 50 * 2 ** failures)));
      continue;
    }
    failures = 0;
    for (const log of logs) {
      if (log.blockNumber === null || log.transactionHash === null || log.logIndex === null) continue;
      out.push({
        chainId: params.chainId,
        txHash: log.transactionHash.toLowerCase(),
        logIndex: log.logIndex,
        blockNumber: log.blockNumber,
        blockHash: (log.blockHash ?? '').toLowerCase(),
        from: getAddress(log.args.from),
        value: log.args.value,
      });
    }
    params.onProgress?.({
      fromBlock: params.fromBlock,
      toBlock: params.toBlock,
      scannedTo: end,
      transfers: out.length,
    });
    const span = end - start + 1n;
    start = end + 1n;
    const next = logs.length === 0 ? range * 2n : (span * TARGET_LOGS_PER_REQUEST) / BigInt(logs.length);
    range = next < 1n ? 1n : next > ceiling ? ceiling : next;
  }
  out.sort((a, b) =>
    a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
  );
  return out;
}

function getTransferLogs(
  client: PublicClient,
  params: FetchTreasuryTransfersParameters,
  fromBlock: bigint,
  toBlock: bigint,
) {
  return client.getLogs({
    address: params.token,
    event: transferEvent,
    args: params.from ? { from: params.from, to: params.treasury } : { to: params.treasury },
    fromBlock,
    toBlock,
    strict: true,
  });
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
