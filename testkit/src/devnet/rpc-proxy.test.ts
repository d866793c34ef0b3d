import { pad } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devAccounts } from './accounts.ts';
import { type Anvil, mineBlocks, startAnvil } from './anvil.ts';
import { droppedLogs, laggingHead, type RpcProxy, rpcErrors, startRpcProxy } from './rpc-proxy.ts';
import { deployTestUsdc, mintUsdc } from './token.ts';

let anvil: Anvil;
let proxy: RpcProxy;

beforeAll(async () => {
  anvil = await startAnvil();
  proxy = await startRpcProxy(anvil.rpcUrl);
});

afterAll(async () => {
  await proxy?.close();
  await anvil?.stop();
});

/** One JSON-RPC call (or a batch) through the proxy, as a client sends it. */
async function rpc(body: object): Promise<unknown> {
  const response = await fetch(proxy.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return response.json();
}

const call = (method: string, params: unknown[] = [], id = 1) => ({ jsonrpc: '2.0', id, method, params });

describe('the RPC proxy', () => {
  it('forwards what no interceptor changes, batches included', async () => {
    await mineBlocks(anvil.rpcUrl, 3);
    const head = BigInt(((await rpc(call('eth_blockNumber'))) as { result: string }).result);
    expect(head).toBeGreaterThanOrEqual(3n);
    const batch = (await rpc([call('eth_chainId', [], 7), call('eth_blockNumber', [], 8)])) as {
      id: number;
      result: string;
    }[];
    expect(batch.map((reply) => [reply.id, BigInt(reply.result)])).toEqual([
      [7, 31337n],
      [8, head],
    ]);
    expect(proxy.calls('eth_blockNumber')).toBe(2);
  });

  it('serves an older head, and no block above it, while it lags; then the node again', async () => {
    await mineBlocks(anvil.rpcUrl, 5);
    const head = BigInt(((await rpc(call('eth_blockNumber'))) as { result: string }).result);
    const lagging = laggingHead(3, { times: 2 });
    proxy.intercept(lagging);
    expect(await rpc(call('eth_blockNumber'))).toMatchObject({ result: `0x${(head - 3n).toString(16)}` });
    const latest = (await rpc(call('eth_getBlockByNumber', ['latest', false]))) as {
      result: { number: string };
    };
    expect(BigInt(latest.result.number)).toBe(head - 3n);
    expect(lagging.lagged).toBe(2);
    // Its two stale answers given: the node answers.
    expect(await rpc(call('eth_blockNumber'))).toMatchObject({ result: `0x${head.toString(16)}` });
    proxy.reset();

    proxy.intercept(laggingHead({ at: head - 2n }));
    const above = await rpc(call('eth_getBlockByNumber', [`0x${head.toString(16)}`, false]));
    expect(above).toMatchObject({ result: null });
    proxy.reset();
  });

  it('fails the calls it is told to, then forwards them', async () => {
    proxy.intercept(rpcErrors(['eth_chainId'], 1));
    expect(await rpc(call('eth_chainId'))).toMatchObject({ error: { code: -32603 } });
    expect(await rpc(call('eth_chainId'))).toMatchObject({ result: '0x7a69' });
    proxy.reset();
  });

  it('leaves the logs it is told to out of eth_getLogs', async () => {
    const token = await deployTestUsdc(anvil.rpcUrl);
    const [alice, bob] = devAccounts.payers;
    if (!alice || !bob) throw new Error('the devnet has no payers');
    await mintUsdc(anvil.rpcUrl, token, alice.address, 1n);
    await mintUsdc(anvil.rpcUrl, token, bob.address, 2n);
    const filter = { address: token, fromBlock: '0x0', toBlock: 'latest' };
    const before = (await rpc(call('eth_getLogs', [filter]))) as { result: { topics: string[] }[] };
    expect(before.result).toHaveLength(2);
    const aliceTopic = pad(alice.address.toLowerCase() as `0x${string}`);
    proxy.intercept(droppedLogs((log) => log.topics?.[2] === aliceTopic));
    const after = (await rpc(call('eth_getLogs', [filter]))) as { result: { topics: string[] }[] };
    expect(after.result.map((log) => log.topics[2])).toEqual([
      pad(bob.address.toLowerCase() as `0x${string}`),
    ]);
    proxy.reset();
  });
});
