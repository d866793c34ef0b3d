/**
 * The treasury log scan against a real anvil, behind a small JSON-RPC proxy that behaves like a strict
 * provider: eth_getLogs over more than 8 blocks answers "query returned more than 10000 results", and
 * for a while every request fails as if the RPC were down. The scan must still find every transfer once.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchTreasuryTransfers, TransferScanError } from '@chainmeter/schema';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, mineBlocks, startAnvil } from '@chainmeter/testkit/anvil';
import { deployTestUsdc, mintUsdc, submitUsdcTransfer, transferUsdc } from '@chainmeter/testkit/token';
import { createPublicClient, http, type PublicClient } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let anvil: Anvil;
let proxy: Server;
let proxyUrl: string;
let token: `0x${string}`;
let head: bigint;
const treasury = devAccounts.treasury.address;
function payer(index: number) {
  const account = devAccounts.payers[index];
  if (!account) throw new Error(`no devnet payer ${index}`);
  return account;
}
const [alice, bob] = [payer(0), payer(1)];
const behaviour = { maxSpan: 8n, failNext: 0, requests: 0, refused: 0 };

beforeAll(async () => {
  anvil = await startAnvil();
  token = await deployTestUsdc(anvil.rpcUrl);
  for (const wallet of [alice, bob]) await mintUsdc(anvil.rpcUrl, token, wallet.address, 10_000_000n);
  for (let i = 0; i < 30; i++) {
    const wallet = i % 3 === 0 ? bob : alice;
    await transferUsdc(anvil.rpcUrl, token, wallet, treasury, BigInt(1_000 + i));
    if (i % 4 === 0) await mineBlocks(anvil.rpcUrl, 5);
  }
  // A transfer elsewhere (not to the treasury) never shows up.
  await submitUsdcTransfer(anvil.rpcUrl, token, alice, bob.address, 5n);
  await mineBlocks(anvil.rpcUrl, 2);
  proxy = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    behaviour.requests++;
    if (behaviour.failNext > 0) {
      behaviour.failNext--;
      res.writeHead(502).end('bad gateway');
      return;
    }
    if (body.method === 'eth_getLogs') {
      const { fromBlock, toBlock } = body.params[0];
      if (BigInt(toBlock) - BigInt(fromBlock) + 1n > behaviour.maxSpan) {
        behaviour.refused++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: body.id,
            error: { code: -32005, message: 'query returned more than 10000 results' },
          }),
        );
        return;
      }
    }
    const upstream = await fetch(anvil.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  head = await createPublicClient({ transport: http(anvil.rpcUrl) }).getBlockNumber();
});

afterAll(async () => {
  await new Promise((resolve) => proxy?.close(resolve));
  await anvil?.stop();
});

const client = (): PublicClient => createPublicClient({ transport: http(proxyUrl, { retryCount: 0 }) });

describe('fetchTreasuryTransfers', () => {
  it('pages around a provider that refuses wide windows and finds every transfer once, in order', async () => {
    Object.assign(behaviour, { maxSpan: 8n, failNext: 0, requests: 0, refused: 0 });
    const progress: bigint[] = [];
    const transfers = await fetchTreasuryTransfers(client(), {
      chainId: 31337,
      token,
      treasury,
      fromBlock: 0n,
      toBlock: head,
      onProgress: (p) => progress.push(p.scannedTo),
    });
    expect(transfers).toHaveLength(30);
    expect(transfers.map((t) => t.value)).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(1_000 + i)));
    expect(transfers.filter((t) => t.from === bob.address)).toHaveLength(10);
    expect(new Set(transfers.map((t) => `${t.txHash}:${t.logIndex}`)).size).toBe(30);
    expect(behaviour.refused).toBeGreaterThan(0);
    expect(progress.at(-1)).toBe(head);

    const fromBob = await fetchTreasuryTransfers(client(), {
      chainId: 31337,
      token,
      treasury,
      from: bob.address,
      fromBlock: 0n,
      toBlock: head,
    });
    expect(fromBob.map((t) => t.value)).toEqual(
      transfers.filter((t) => t.from === bob.address).map((t) => t.value),
    );
  });

  it('rides out a short outage, and gives up with a clear error on a long one', async () => {
    Object.assign(behaviour, { maxSpan: 1_000n, failNext: 3, requests: 0, refused: 0 });
    const transfers = await fetchTreasuryTransfers(client(), {
      chainId: 31337,
      token,
      treasury,
      fromBlock: 0n,
      toBlock: head,
    });
    expect(transfers).toHaveLength(30);

    Object.assign(behaviour, { failNext: 1_000 });
    const error = await fetchTreasuryTransfers(client(), {
      chainId: 31337,
      token,
      treasury,
      fromBlock: 0n,
      toBlock: head,
      maxAttempts: 3,
    }).catch((e: unknown) => e);
    behaviour.failNext = 0;
    expect(error).toBeInstanceOf(TransferScanError);
    expect((error as Error).message).toMatch(/eth_getLogs failed 3 times in a row/);
  });
});
