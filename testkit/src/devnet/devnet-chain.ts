/**
 * The contracts and balances of `npm start`'s devnet (`persistent-devnet.ts`), with viem: run once per start,
 * in the start's own process for tests, in a short-lived helper process for `npm start` (whose long-lived
 * supervisor thus never loads viem).
 */
import { type Address, createPublicClient, createTestClient, type Hash, http, parseEther } from 'viem';
import { devAccounts } from './accounts.ts';
import { placeCanonicalContracts } from './canonical-contracts.ts';
import type { PrepareDevnetChain } from './persistent-devnet.ts';
import { deployTestUsdc, submitUsdcMint, testUsdcRuntimeCode, waitMined } from './token.ts';

const FUNDING = 10_000n * 1_000_000n; // 10,000 USDC per payer, in base units

/**
 * Places the canonical contracts; then, on a fresh chain, deploys the test USDC and funds the payers; on a
 * restored one, checks that it still holds the block it was stopped at and brings it up to date.
 */
export const prepareDevnetChain: PrepareDevnetChain = async (rpcUrl, kept) => {
  await placeCanonicalContracts(rpcUrl);
  if (!kept) {
    const token = await deployTestUsdc(rpcUrl);
    // All the mints in one block: one at a time, they took a block each (~8 s of a first start).
    const mints: Hash[] = [];
    for (const payer of devAccounts.payers)
      mints.push(await submitUsdcMint(rpcUrl, token, payer.address, FUNDING));
    await Promise.all(mints.map((hash) => waitMined(rpcUrl, hash)));
    return { token, treasury: devAccounts.treasury.address };
  }
  const client = createPublicClient({ transport: http(rpcUrl) });
  const stillThere = await client
    .getBlock({ blockNumber: BigInt(kept.stoppedAt.blockNumber) })
    .then((block) => block.hash === kept.stoppedAt.blockHash)
    .catch(() => false);
  const code = await client.getCode({ address: kept.token }).catch(() => undefined);
  if (!stillThere || !code || code === '0x')
    return { reset: 'the restored chain does not contain the block it was stopped at' };
  await keepDevnetCurrent(rpcUrl, kept.token);
  return { token: kept.token, treasury: devAccounts.treasury.address };
};

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
