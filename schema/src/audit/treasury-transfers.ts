import {
  type Address,
  encodeEventTopics,
  getAddress,
  type Hex,
  numberToHex,
  type PublicClient,
  pad,
} from 'viem';
import { usdcAbi } from '../usdc-abi.ts';
import type { ChainTransfer } from './audit-types.ts';

const [TRANSFER_TOPIC] = encodeEventTopics({ abi: usdcAbi, eventName: 'Transfer' });

interface RpcLog {
  address: string;
  topics: Hex[];
  data: Hex;
  blockNumber: Hex | null;
  blockHash: Hex | null;
  transactionHash: Hex | null;
  logIndex: Hex | null;
  removed?: boolean;
}

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
  /** The widest window a request may cover, in blocks (default 2,000). */
  blockRange?: bigint;
  /** Failed one-block requests in a row before giving up (default 8). */
  maxAttempts?: number;
  onProgress?: (progress: ScanProgress) => void;
}

export class TransferScanError extends Error {
  override name = 'TransferScanError';
}

/** About this many logs per request keeps a response far below viem's 10 MB cap (about 650 bytes a log). */
const TARGET_LOGS_PER_REQUEST = 5_000n;
/** The first window: small, so that a dense range costs no huge failed response before the scan adapts. */
const PROBE_RANGE = 16n;

/**
 * Every `Transfer(from, to = treasury, value)` log of the token in [fromBlock, toBlock], read from the
 * RPC with `eth_getLogs` and an event filter on `to` (and `from`, when given). The range is scanned in
 * windows of at most `blockRange` blocks that adapt to the density of logs (a small first window, then
 * about 5,000 logs a request): a failed request (too
 * many results, a response too large) is retried at once on half the window, and a window size that
 * failed is never tried again; a one-block window that keeps failing (the RPC is down) is retried with
 * backoff, `maxAttempts` times. A sparse window grows. Ordered by (blockNumber, logIndex).
 *
 * Give it a client without transport retries (`http(url, { retryCount: 0 })`): the retries are here,
 * and a transport that retries a too-large window three times first makes a dense chain slow to scan.
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
  let ceiling = params.blockRange ?? 2_000n;
  let range = PROBE_RANGE < ceiling ? PROBE_RANGE : ceiling;
  let failures = 0;
  let start = params.fromBlock;
  let lastError: unknown;
  const senders = new Map<string, string>();
  while (start <= params.toBlock) {
    const end = start + range - 1n < params.toBlock ? start + range - 1n : params.toBlock;
    let logs: RpcLog[];
    try {
      logs = await getTransferLogs(client, params, start, end);
    } catch (error) {
      lastError = error;
      if (end > start) {
        // Most failures of a wide window are its size (too many results, response too large): halve it at
        // once, and never try that size again in this scan.
        ceiling = (end - start + 1n) / 2n || 1n;
        range = ceiling;
        continue;
      }
      failures++;
      if (failures >= maxAttempts) {
        throw new TransferScanError(
          `eth_getLogs failed ${failures} times in a row for block ${start}: ${firstLine(lastError)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** failures)));
      continue;
    }
    failures = 0;
    for (const log of logs) {
      const transfer = decodeTransferLog(log, params, senders);
      if (transfer) out.push(transfer);
    }
    params.onProgress?.({
      fromBlock: params.fromBlock,
      toBlock: params.toBlock,
      scannedTo: end,
      transfers: out.length,
    });
    const span = end - start + 1n;
    start = end + 1n;
    const next = logs.length === 0 ? range * 4n : (span * TARGET_LOGS_PER_REQUEST) / BigInt(logs.length);
    range = next < 1n ? 1n : next > ceiling ? ceiling : next;
  }
  out.sort((a, b) =>
    a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
  );
  return out;
}

/*
 * eth_getLogs is called raw and decoded here rather than through viem's `getLogs`: its generic ABI
 * decoding costs about 50 us a log, most of a 100,000-transfer audit. A Transfer has a fixed layout
 * (topics: signature, from, to; data: value), checked field by field.
 */
function getTransferLogs(
  client: PublicClient,
  params: FetchTreasuryTransfersParameters,
  fromBlock: bigint,
  toBlock: bigint,
): Promise<RpcLog[]> {
  return client.request({
    method: 'eth_getLogs',
    params: [
      {
        address: params.token,
        topics: [
          TRANSFER_TOPIC as Hex,
          params.from ? pad(params.from.toLowerCase() as Hex) : null,
          pad(params.treasury.toLowerCase() as Hex),
        ],
        fromBlock: numberToHex(fromBlock),
        toBlock: numberToHex(toBlock),
      },
    ],
  }) as Promise<RpcLog[]>;
}

const WORD = /^0x[0-9a-fA-F]{64}$/;

function decodeTransferLog(
  log: RpcLog,
  params: FetchTreasuryTransfersParameters,
  senders: Map<string, string>,
): ChainTransfer | null {
  if (log.removed || log.blockNumber === null || log.transactionHash === null || log.logIndex === null)
    return null;
  const [topic, fromTopic, toTopic] = log.topics;
  if (
    log.address.toLowerCase() !== params.token.toLowerCase() ||
    log.topics.length !== 3 ||
    topic?.toLowerCase() !== TRANSFER_TOPIC?.toLowerCase() ||
    !fromTopic ||
    !WORD.test(fromTopic) ||
    toTopic?.toLowerCase() !== pad(params.treasury.toLowerCase() as Hex) ||
    !WORD.test(log.data)
  ) {
    throw new TransferScanError(
      `the RPC answered a log that is not a Transfer to the treasury: ${JSON.stringify(log)}`,
    );
  }
  const sender = `0x${fromTopic.slice(26).toLowerCase()}`;
  let from = senders.get(sender);
  if (!from) {
    from = getAddress(sender);
    senders.set(sender, from);
  }
  return {
    chainId: params.chainId,
    txHash: log.transactionHash.toLowerCase(),
    logIndex: Number(log.logIndex),
    blockNumber: BigInt(log.blockNumber),
    blockHash: (log.blockHash ?? '').toLowerCase(),
    from,
    value: BigInt(log.data),
  };
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
