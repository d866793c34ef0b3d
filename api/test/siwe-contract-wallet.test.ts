/**
 * Sign-in for a smart-contract wallet (EIP-1271): the signature is checked on chain, through the API's RPC.
 * The wallet is a tiny contract compiled here with solc and deployed on a real anvil node.
 */
import { readFileSync } from 'node:fs';
import { devAccounts } from '@chainmeter/testkit/accounts';
import { type Anvil, startAnvil } from '@chainmeter/testkit/anvil';
import { createTestDatabase, type TestDatabase } from '@chainmeter/testkit/postgres';
import solc from 'solc';
import { type Abi, createPublicClient, createWalletClient, type Hex, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RunningApi, startApi } from '../src/server.ts';
import { testApiConfig } from './support/config.ts';
import { gql, gqlData } from './support/graphql.ts';

let anvil: Anvil;
let database: TestDatabase;
let api: RunningApi;

function compileOwnedWallet(): { abi: Abi; bytecode: Hex } {
  const source = readFileSync(new URL('./fixtures/OwnedWallet.sol', import.meta.url), 'utf8');
  const output = JSON.parse(
    solc.compile(
      JSON.stringify({
        language: 'Solidity',
        sources: { 'OwnedWallet.sol': { content: source } },
        settings: { evmVersion: 'cancun', outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
      }),
    ),
  );
  const contract = output.contracts['OwnedWallet.sol'].OwnedWallet;
  return { abi: contract.abi, bytecode: `0x${contract.evm.bytecode.object}` };
}

beforeAll(async () => {
  anvil = await startAnvil();
  database = await createTestDatabase('cm_siwe1271');
  api = await startApi(
    testApiConfig({
      RPC_URL: anvil.rpcUrl,
      DATABASE_URL: database.url,
    }),
    { crediting: false },
  );
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
  await anvil?.stop();
});

it('signs in a contract wallet whose owner signed, and refuses a stranger', async () => {
  const owner = privateKeyToAccount(generatePrivateKey());
  const { abi, bytecode } = compileOwnedWallet();
  const deployer = createWalletClient({ account: devAccounts.deployer, transport: http(anvil.rpcUrl) });
  const hash = await deployer.deployContract({ abi, bytecode, args: [owner.address], chain: null });
  const receipt = await createPublicClient({ transport: http(anvil.rpcUrl) }).waitForTransactionReceipt({
    hash,
  });
  const wallet = receipt.contractAddress as Hex;

  const challenge = 'mutation($a: Address!) { siweChallenge(address: $a, chainId: 31337) }';
  const signIn =
    'mutation($m: String!, $s: String!) { signIn(message: $m, signature: $s) { token account { walletAddress } } }';

  const strangerMessage = (await gqlData<{ siweChallenge: string }>(api.url, challenge, { a: wallet }))
    .siweChallenge;
  const stranger = privateKeyToAccount(generatePrivateKey());
  const refused = await gql(api.url, signIn, {
    m: strangerMessage,
    s: await stranger.signMessage({ message: strangerMessage }),
  });
  expect(refused.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

  const message = (await gqlData<{ siweChallenge: string }>(api.url, challenge, { a: wallet })).siweChallenge;
  const session = await gqlData<{ signIn: { token: string; account: { walletAddress: string } } }>(
    api.url,
    signIn,
    {
      m: message,
      s: await owner.signMessage({ message }),
    },
  );
  expect(session.signIn.account.walletAddress.toLowerCase()).toBe(wallet.toLowerCase());
});
