import { type Address, getAddress, type Hash } from 'viem';

/** The newest block the indexer has processed. */
export interface IndexerHead {
  chainId: number;
  blockNumber: bigint;
  blockHash: Hash;
  timestamp: bigint;
}

/** A USDC transfer to the treasury as the indexer stored it. */
export interface IndexedTransfer {
  chainId: number;
  txHash: Hash;
  logIndex: number;
  blockNumber: bigint;
  blockHash: Hash;
  from: Address;
  to: Address;
  value: bigint;
  timestamp: bigint;
}

/** The transfers a reorg could still remove, and how far the indexer's rows are complete. */
export interface IndexerWindow {
  /**
   * Every transfer at or below this block (and at or above the window's start) is in `transfers`;
   * read in the same snapshot. Below the head while the indexer recovers from a crash.
   */
  indexedTo: bigint;
  transfers: IndexedTransfer[];
}

/** A position in the (blockNumber, logIndex) order of transfers; reads are strictly after it. */
export interface TransferCursor {
  blockNumber: bigint;
  logIndex: number;
}

/**
 * The largest `afterLogIndex` the indexer accepts (nine digits), far above any real log index: a cursor
 * (block, this) is the end of that block, so reads resume at the start of the next one.
 */
export const END_OF_BLOCK_LOG_INDEX = 999_999_999;

/** The indexer did not answer, or answered with something that is not its contract. Retryable. */
export class IndexerUnavailableError extends Error {
  override name = 'IndexerUnavailableError';
  readonly retryable = true;
}

export interface IndexerClient {
  head(): Promise<IndexerHead>;
  /** Ascending, strictly after `cursor` (from the start when null), blockNumber <= toBlock, at most `limit`. */
  transfersAfter(cursor: TransferCursor | null, toBlock: bigint, limit: number): Promise<IndexedTransfer[]>;
  /** Every transfer with blockNumber >= fromBlock (the indexer caps the answer at its max limit). */
  window(fromBlock: bigint): Promise<IndexerWindow>;
}

/** The indexer's largest page; a window answer this long may be truncated. */
export const INDEXER_MAX_LIMIT = 5_000;

export interface IndexerClientOptions {
  /** Per request; a hung indexer must not stall the crediting worker. */
  timeoutMs?: number;
}

/**
 * A client of the indexer's `/chainmeter/*` routes.
 *
 * @example
 * const indexer = createIndexerClient('http://127.0.0.1:42069');
 * const head = await indexer.head();
 */
export function createIndexerClient(baseUrl: string, options: IndexerClientOptions = {}): IndexerClient {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const base = baseUrl.replace(/\/+$/, '');

  async function get(path: string, query: Record<string, string> = {}): Promise<unknown> {
    const url = `${base}/chainmeter/${path}${Object.keys(query).length ? `?${new URLSearchParams(query)}` : ''}`;
    let response: Response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (cause) {
      throw new IndexerUnavailableError(`indexer unreachable at ${url}: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (!response.ok) {
      const body = await response.text().catch(() => '');
      throw new IndexerUnavailableError(
        `indexer answered ${response.status} for ${url}: ${body.slice(0, 200)}`,
      );
    }
    try {
      return await response.json();
    } catch (cause) {
      throw new IndexerUnavailableError(`indexer sent invalid JSON for ${url}`, { cause });
    }
  }

  async function transfers(path: string, query: Record<string, string>): Promise<IndexedTransfer[]> {
    return transfersOf(path, await get(path, query));
  }

  return {
    async head() {
      return parseHead(await get('head'));
    },
    transfersAfter(cursor, toBlock, limit) {
      const query: Record<string, string> = { toBlock: String(toBlock), limit: String(limit) };
      if (cursor) {
        query.afterBlock = String(cursor.blockNumber);
        query.afterLogIndex = String(cursor.logIndex);
      }
      return transfers('transfers', query);
    },
    async window(fromBlock) {
      const body = await get('window', { fromBlock: String(fromBlock < 0n ? 0n : fromBlock) });
      return { indexedTo: bigintField(asObject(body), 'indexedTo'), transfers: transfersOf('window', body) };
    },
  };
}

type Json = Record<string, unknown>;

function field(object: Json, key: string): unknown {
  if (!(key in object)) throw new IndexerUnavailableError(`indexer response lacks "${key}"`);
  return object[key];
}

function bigintField(object: Json, key: string): bigint {
  const value = field(object, key);
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw new IndexerUnavailableError(
      `indexer field "${key}" is not a decimal string: ${JSON.stringify(value)}`,
    );
  }
  return BigInt(value);
}

function intField(object: Json, key: string): number {
  const value = field(object, key);
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0) {
    throw new IndexerUnavailableError(`indexer field "${key}" is not an integer: ${JSON.stringify(value)}`);
  }
  return number;
}

function hashField(object: Json, key: string): Hash {
  const value = field(object, key);
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(value)) {
    throw new IndexerUnavailableError(`indexer field "${key}" is not a hash: ${JSON.stringify(value)}`);
  }
  return value.toLowerCase() as Hash;
}

function addressField(object: Json, key: string): Address {
  const value = field(object, key);
  try {
    return getAddress(value as string);
  } catch {
    throw new IndexerUnavailableError(`indexer field "${key}" is not an address: ${JSON.stringify(value)}`);
  }
}

function asObject(value: unknown): Json {
  if (typeof value !== 'object' || value === null)
    throw new IndexerUnavailableError('indexer sent a non-object');
  return value as Json;
}

function transfersOf(path: string, body: unknown): IndexedTransfer[] {
  const list = asObject(body).transfers;
  if (!Array.isArray(list)) throw new IndexerUnavailableError(`indexer ${path}: no transfers array`);
  return list.map(parseTransfer);
}

function parseHead(value: unknown): IndexerHead {
  const object = asObject(value);
  return {
    chainId: intField(object, 'chainId'),
    blockNumber: bigintField(object, 'blockNumber'),
    blockHash: hashField(object, 'blockHash'),
    timestamp: bigintField(object, 'timestamp'),
  };
}

function parseTransfer(value: unknown): IndexedTransfer {
  const object = asObject(value);
  return {
    chainId: intField(object, 'chainId'),
    txHash: hashField(object, 'txHash'),
    logIndex: intField(object, 'logIndex'),
    blockNumber: bigintField(object, 'blockNumber'),
    blockHash: hashField(object, 'blockHash'),
    from: addressField(object, 'from'),
    to: addressField(object, 'to'),
    value: bigintField(object, 'value'),
    timestamp: bigintField(object, 'timestamp'),
  };
}
