import { createTestClient, type Hash, http } from 'viem';
import { type Anvil, type StartAnvilOptions, spawnAnvil } from './anvil-process.ts';
import { placeCanonicalContracts } from './canonical-contracts.ts';

export { type Anvil, AnvilStartError, type StartAnvilOptions } from './anvil-process.ts';

/**
 * Starts anvil on 127.0.0.1 and resolves once it answers `eth_chainId`, with the devnet's accounts
 * (`devAccounts`, relayer included) funded and the canonical contracts placed (Permit2, the x402
 * Permit2 proxies, Multicall3: see `canonical-contracts.ts`).
 *
 * @example
 * const anvil = await startAnvil();
 * try { await deployTestUsdc(anvil.rpcUrl); } finally { await anvil.stop(); }
 */
export function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  // Permit2, the x402 proxies and Multicall3 at their canonical addresses, as on Base.
  return spawnAnvil(options, placeCanonicalContracts);
}

function testClient(rpcUrl: string) {
  return createTestClient({ mode: 'anvil', transport: http(rpcUrl), pollingInterval: 50 });
}

/** Mines `n` empty blocks (or blocks of whatever is pending). */
export async function mineBlocks(rpcUrl: string, n: number): Promise<void> {
  await testClient(rpcUrl).mine({ blocks: n });
}

/** Turns automine on or off (off: transactions wait in the pool until `mineBlocks`). */
export async function setAutomine(rpcUrl: string, enabled: boolean): Promise<void> {
  await testClient(rpcUrl).setAutomine(enabled);
}

/**
 * Mines a block every `seconds` instead of one per transaction (anvil turns automine off): a chain that
 * moves on by itself, as a live one does. 0 stops it; `setAutomine(rpcUrl, true)` goes back to automine.
 */
export async function setIntervalMining(rpcUrl: string, seconds: number): Promise<void> {
  await testClient(rpcUrl).setIntervalMining({ interval: seconds });
}

/** `evm_snapshot`: an id to `revert` to. */
export async function snapshot(rpcUrl: string): Promise<Hash> {
  return testClient(rpcUrl).snapshot();
}

/**
 * `evm_revert`: the chain goes back to the snapshot (blocks after it are dropped, their transactions
 * forgotten). Mine more blocks afterwards to move the head past the old height, as a reorg would.
 */
export async function revert(rpcUrl: string, id: Hash): Promise<void> {
  await testClient(rpcUrl).revert({ id });
}

/**
 * `anvil_reorg`: replaces the newest `depth` blocks with new empty blocks at the same heights (new
 * hashes), dropping their transactions; the head keeps its height.
 */
export async function reorg(rpcUrl: string, depth: number): Promise<void> {
  await testClient(rpcUrl).request({
    method: 'anvil_reorg' as never,
    params: [depth, []] as never,
  });
}
