import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IndexedTransfer, IndexerHead } from '../../src/modules/deposits/indexer.client.ts';

/**
 * A real HTTP server speaking the indexer's `/chainmeter/*` contract from arrays the test controls, so
 * crediting tests can move the head, add transfers and roll them back at will. Listens on a free port.
 */
export interface FakeIndexer {
  url: string;
  head: IndexerHead;
  /** Every transfer the "indexer" has; tests push, splice and edit it freely. */
  transfers: IndexedTransfer[];
  /** When true every route answers 503, as a stopped indexer would (the socket stays up). */
  down: boolean;
  /**
   * When set, `/window` holds only the transfers up to this block and says so, as Ponder does while
   * it re-indexes after a crash recovery that began after `/head` answered. Null: complete to the head.
   */
  windowIndexedTo: bigint | null;
  requests: number;
  setHead(blockNumber: bigint): void;
  close(): Promise<void>;
}

export async function startFakeIndexer(chainId: number): Promise<FakeIndexer> {
  const state = {
    head: { chainId, blockNumber: 0n, blockHash: blockHash(0n), timestamp: 1_700_000_000n },
    transfers: [] as IndexedTransfer[],
    down: false,
    windowIndexedTo: null as bigint | null,
    requests: 0,
  };
  const server: Server = createServer((request, response) => {
    state.requests++;
    const url = new URL(request.url ?? '/', 'http://localhost');
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
    };
    if (state.down) return send(503, { error: 'indexer not ready' });
    const sorted = [...state.transfers]
      .filter((t) => t.blockNumber <= state.head.blockNumber)
      .sort((a, b) =>
        a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
      );
    const q = url.searchParams;
    switch (url.pathname) {
      case '/chainmeter/head':
        return send(200, state.head);
      case '/chainmeter/transfers': {
        const afterBlock = q.has('afterBlock') ? BigInt(q.get('afterBlock') as string) : -1n;
        const afterLogIndex = q.has('afterLogIndex')
          ? Number(q.get('afterLogIndex'))
          : Number.MAX_SAFE_INTEGER;
        const toBlock = q.has('toBlock') ? BigInt(q.get('toBlock') as string) : state.head.blockNumber;
        const limit = Math.min(Number(q.get('limit') ?? 1000), 5000);
        const page = sorted
          .filter(
            (t) =>
              (t.blockNumber > afterBlock || (t.blockNumber === afterBlock && t.logIndex > afterLogIndex)) &&
              t.blockNumber <= toBlock,
          )
          .slice(0, limit);
        return send(200, { transfers: page });
      }
      case '/chainmeter/window': {
        const fromBlock = BigInt(q.get('fromBlock') ?? '0');
        const indexedTo = state.windowIndexedTo ?? state.head.blockNumber;
        const window = sorted.filter((t) => t.blockNumber >= fromBlock && t.blockNumber <= indexedTo);
        return send(200, { indexedTo, transfers: window.slice(0, 5000) });
      }
      default:
        return send(404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    setHead(blockNumber: bigint) {
      state.head = { ...state.head, blockNumber, blockHash: blockHash(blockNumber) };
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  });
}

export function blockHash(blockNumber: bigint, fork = 0): `0x${string}` {
  return `0x${fork.toString(16).padStart(8, '0')}${blockNumber.toString(16).padStart(56, '0')}`;
}

let txCounter = 0;

/** A transfer to the treasury; distinct tx hashes unless one is given. */
export function makeTransfer(
  chainId: number,
  from: `0x${string}`,
  value: bigint,
  blockNumber: bigint,
  logIndex = 0,
  fork = 0,
): IndexedTransfer {
  txCounter++;
  return {
    chainId,
    txHash: `0x${txCounter.toString(16).padStart(64, '0')}`,
    logIndex,
    blockNumber,
    blockHash: blockHash(blockNumber, fork),
    from,
    to: '0x000000000000000000000000000000000000dA0a' as `0x${string}`,
    value,
    timestamp: 1_700_000_000n + blockNumber,
  };
}
