import { type Hex, toHex } from 'viem';
import { mnemonicToAccount, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { ANVIL_ACCOUNT_COUNT } from './anvil-process.ts';

/** anvil's default mnemonic: its funded accounts are public knowledge, devnet only. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk';
export { ANVIL_ACCOUNT_COUNT } from './anvil-process.ts';

/** The DAO wallet on the devnet. A fixed index, so every devnet run pays the same address. */
const TREASURY_ACCOUNT_INDEX = 9;
/** Submits x402 settlements and gasless top-ups, paying their gas: never a payer nor the treasury. */
const RELAYER_ACCOUNT_INDEX = 10;

export type DevAccount = PrivateKeyAccount & { privateKey: Hex; index: number };

function deriveAccount(index: number): DevAccount {
  const privateKey = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index }).getHdKey().privateKey;
  if (!privateKey) throw new Error(`no private key derived for anvil account ${index}`);
  const hex = toHex(privateKey);
  return Object.assign(privateKeyToAccount(hex), { privateKey: hex, index });
}

const all = Array.from({ length: ANVIL_ACCOUNT_COUNT }, (_, index) => deriveAccount(index));

function at(index: number): DevAccount {
  const account = all[index];
  if (!account) throw new Error(`anvil has no account ${index}`);
  return account;
}

/**
 * The anvil accounts by role: `deployer` (0) deploys the test token, `treasury` (9) receives
 * payments, `payers` (1-8) pay, `relayer` (10) submits others' signed authorizations and pays their
 * gas (ETH only, no USDC).
 */
export const devAccounts: {
  all: readonly DevAccount[];
  deployer: DevAccount;
  treasury: DevAccount;
  payers: readonly DevAccount[];
  relayer: DevAccount;
} = {
  all,
  deployer: at(0),
  treasury: at(TREASURY_ACCOUNT_INDEX),
  payers: all.filter(
    (account) =>
      account.index !== 0 &&
      account.index !== TREASURY_ACCOUNT_INDEX &&
      account.index !== RELAYER_ACCOUNT_INDEX,
  ),
  relayer: at(RELAYER_ACCOUNT_INDEX),
};
