/**
 * The relayer: the platform's own wallet (`RELAYER_PRIVATE_KEY`) that submits other people's signed
 * authorizations (x402 settlements, gasless top-ups) and pays their gas. It never holds USDC: what it
 * submits moves the signer's tokens to the treasury, never its own.
 *
 * - Its account carries viem's `nonceManager`, so submissions running at once take consecutive nonces
 *   instead of colliding (without it, concurrent sends read the same pending nonce and all but one fail).
 * - Its client polls receipts every `pollingIntervalMs` (viem's default, 4 s, would add seconds to every
 *   settlement on a chain with 1 s blocks; 250 ms on the devnet).
 * - Its ETH balance is exported on `/metrics` (`chainmeter_relayer_gas_balance_wei`), refreshed by
 *   {@link startGasBalanceRefresh}; `ChainMeterRelayerGasLow` alerts before it runs dry.
 */
import type { Logger } from 'pino';
import {
  type Account,
  type Address,
  BaseError,
  type Chain,
  type Client,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  type PublicActions,
  publicActions,
  type RpcSchema,
  type Transport,
  type WalletActions,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createNonceManager, jsonRpc } from 'viem/nonce';

/** A wallet client of the relayer's account with the public actions (reads, simulation, receipts) beside. */
export type RelayerClient = Client<
  Transport,
  Chain,
  Account,
  RpcSchema | undefined,
  WalletActions<Chain, Account> & PublicActions<Transport, Chain, Account>
>;

export interface Relayer {
  /** The relayer's wallet: the `from` of every transaction it submits. */
  address: Address;
  /** Signs and submits as the relayer (nonces managed); reads and simulates through the same RPC. */
  client: RelayerClient;
  /** The relayer's ETH balance (wei), read from the chain now. */
  gasBalance(): Promise<bigint>;
  /**
   * Forgets the nonces handed out, so the next one is read from the chain (its pending count). After a
   * reorg whose removed transactions the node dropped, the nonce manager would otherwise go on from the
   * last nonce it used, leaving a gap no transaction fills.
   */
  resetNonce(): void;
}

export interface CreateRelayerParameters {
  rpcUrl: string;
  privateKey: Hex;
  chainId: number;
  logger: Logger;
  /** How often receipts and blocks are polled (ms): 250 on the devnet, about half a block time elsewhere. */
  pollingIntervalMs: number;
}

/**
 * @example
 * const relayer = createRelayer({ rpcUrl, privateKey, chainId: 31337, logger, pollingIntervalMs: 250 });
 * const hash = await relayer.client.writeContract({ address: usdc, abi, functionName: 'transferWithAuthorization', args });
 * await relayer.client.waitForTransactionReceipt({ hash });
 */
export function createRelayer(parameters: CreateRelayerParameters): Relayer {
  // Its own manager (not viem's shared one), so resetting it touches this relayer only.
  const nonceManager = createNonceManager({ source: jsonRpc() });
  const account = privateKeyToAccount(parameters.privateKey, { nonceManager });
  // Only the id matters: transactions are signed for it (EIP-155) and the RPC is the one given.
  const chain = defineChain({
    id: parameters.chainId,
    name: `chain ${parameters.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [parameters.rpcUrl] } },
  });
  const client = createWalletClient({
    account,
    chain,
    transport: http(parameters.rpcUrl, { timeout: 15_000 }),
    pollingInterval: parameters.pollingIntervalMs,
  }).extend(publicActions);
  parameters.logger.info({ relayer: account.address, chainId: parameters.chainId }, 'relayer configured');
  return {
    address: account.address,
    client: client as RelayerClient,
    gasBalance: () => client.getBalance({ address: account.address }),
    resetNonce: () => nonceManager.reset({ address: account.address, chainId: parameters.chainId }),
  };
}

/** Sends a collision may refuse before the one that gets through; more would mean something else is wrong. */
const NONCE_ATTEMPTS = 4;

/**
 * Whether a send was refused for its nonce: another process with the same relayer wallet (every API replica has
 * it) took that nonce first, so the node calls it too low, or a replacement of a pending transaction, or a copy.
 */
export function isNonceCollision(error: unknown): boolean {
  const refusedForNonce = (cause: unknown) =>
    /nonce too low|replacement transaction underpriced|already known|already imported/i.test(
      cause instanceof BaseError
        ? `${cause.shortMessage} ${cause.details}`
        : cause instanceof Error
          ? cause.message
          : '',
    );
  // viem's errors carry the node's answer in their chain of causes (at most 8 deep: never a cycle).
  for (
    let cause = error, depth = 0;
    cause && depth < 8;
    cause = (cause as { cause?: unknown }).cause, depth++
  ) {
    if (refusedForNonce(cause)) return true;
  }
  return false;
}

/**
 * Runs `send` (a transaction of the relayer's), and again with the nonce read afresh from the node when another
 * replica sharing the wallet took its nonce first: viem's nonce manager counts this process's sends only.
 *
 * @example
 * const hash = await sendWithFreshNonce(relayer, () => relayer.client.writeContract(request));
 */
export async function sendWithFreshNonce<T>(
  relayer: Pick<Relayer, 'resetNonce'>,
  send: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= NONCE_ATTEMPTS || !isNonceCollision(error)) throw error;
      relayer.resetNonce();
    }
  }
}

export interface GasBalanceRefresh {
  stop(): void;
}

/**
 * Reads the relayer's balance now and every `intervalMs`, handing each reading to `onBalance` (the gauge).
 * A failed read is logged once per outage and leaves `onBalance(null)`: the gauge disappears rather than
 * showing a stale figure.
 */
export function startGasBalanceRefresh(parameters: {
  relayer: Relayer;
  intervalMs: number;
  logger: Logger;
  onBalance(balance: bigint | null): void;
}): GasBalanceRefresh {
  const { relayer, logger, onBalance } = parameters;
  let failing = false;
  let stopped = false;
  const refresh = async () => {
    try {
      const balance = await relayer.gasBalance();
      if (stopped) return;
      if (failing) logger.info({ relayer: relayer.address }, 'relayer gas balance readable again');
      failing = false;
      onBalance(balance);
    } catch (error) {
      if (stopped) return;
      if (!failing)
        logger.warn({ err: error, relayer: relayer.address }, 'cannot read the relayer gas balance');
      failing = true;
      onBalance(null);
    }
  };
  void refresh();
  const timer = setInterval(() => void refresh(), parameters.intervalMs);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
