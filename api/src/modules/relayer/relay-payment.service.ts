/**
 * Gasless top-ups: a wallet holding USDC but no ETH signs an EIP-3009 `TransferWithAuthorization` to the
 * treasury (typed data, no transaction) and the relayer submits it, paying the gas. What it moves is an
 * ordinary USDC transfer from the signer to the treasury, so crediting is the usual path: the indexer sees
 * it, the deposit goes PENDING with its confirmations, then CREDITED once (`depositUpdated`). Nothing here
 * credits anything.
 *
 * Everything that can be checked is checked before a transaction is sent, so a refused authorization costs
 * the platform no gas: the recipient is the treasury, the amount is at least `RELAY_MIN_AMOUNT`, the window
 * is open (with a margin for the transaction to be mined), the signature is the payer's for the configured
 * USDC on this chain (an EOA's is recovered here; a contract wallet's is left to the token's own EIP-1271
 * check, through the simulation), the nonce is unused, the payer holds the amount, and the call simulates.
 * Limits: per client IP (every attempt) and per paying wallet (attempts whose signature checked out, so a
 * stranger cannot spend a wallet's budget).
 */
import { transferWithAuthorizationTypes, usdcAuthorizationAbi } from '@chainmeter/schema';
import type { Logger } from 'pino';
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  erc20Abi,
  getAddress,
  type Hash,
  type Hex,
  isAddressEqual,
  isHex,
  recoverTypedDataAddress,
  size,
} from 'viem';
import type { SqlRunner } from '../../db/sql.ts';
import type { ApiConfig } from '../../env.ts';
import { ExpectedError } from '../../errors.ts';
import type { RateLimits } from '../ratelimit/ratelimit.service.ts';
import { claimRelay, releaseRelay } from './relay-claim.store.ts';
import { type Relayer, sendWithFreshNonce } from './relayer.ts';

/** An authorization must stay valid this long after it reaches us: time to simulate, submit and mine. */
export const RELAY_VALIDITY_MARGIN_SECONDS = 30n;
const UINT256_MAX = 2n ** 256n - 1n;

export interface TransferAuthorizationInput {
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
  signature: string;
}

export interface RelayedPayment {
  txHash: Hash;
  amountToken: bigint;
}

/** Why a gasless top-up was refused: `extensions.reason` beside the error's code. */
export type RelayRefusal =
  | 'RELAY_OFF'
  | 'WRONG_RECIPIENT'
  | 'INVALID_AMOUNT'
  | 'BELOW_MINIMUM'
  | 'NOT_YET_VALID'
  | 'EXPIRED'
  | 'INVALID_SIGNATURE'
  | 'AUTHORIZATION_USED'
  | 'AUTHORIZATION_IN_FLIGHT'
  | 'INSUFFICIENT_FUNDS'
  | 'SIMULATION_FAILED'
  | 'RELAYER_UNAVAILABLE';

/** A refused gasless top-up: nothing was submitted. */
export class RelayRefusedError extends ExpectedError {
  override name = 'RelayRefusedError';
  readonly reason: RelayRefusal;
  constructor(reason: RelayRefusal, message: string, field?: keyof TransferAuthorizationInput) {
    const code =
      reason === 'RELAY_OFF'
        ? 'FORBIDDEN'
        : reason === 'RELAYER_UNAVAILABLE'
          ? 'UPSTREAM_UNAVAILABLE'
          : 'BAD_USER_INPUT';
    super(code, message, { reason, ...(field ? { field } : {}) });
    this.reason = reason;
  }
}

export interface RelayPaymentDependencies {
  config: Pick<ApiConfig, 'chainId' | 'usdcAddress' | 'treasuryAddress' | 'relay'>;
  relayer: Relayer | null;
  /**
   * The database every replica shares: an authorization is claimed there while it is relayed
   * (`relay-claim.store.ts`), so another replica refuses it rather than sending a transaction that can only revert.
   */
  sql: SqlRunner | null;
  rateLimits: Pick<RateLimits, 'consumeRelay'>;
  logger: Logger;
  /** Unix seconds now (tests may pin it); default the system clock. */
  now?: () => bigint;
}

/** The EIP-712 domain of the configured token, read from the token itself once and kept. */
const domains = new WeakMap<Relayer, Promise<{ name: string; version: string }>>();

function tokenDomain(relayer: Relayer, token: Address) {
  let domain = domains.get(relayer);
  if (!domain) {
    domain = Promise.all([
      relayer.client.readContract({ address: token, abi: usdcAuthorizationAbi, functionName: 'name' }),
      relayer.client.readContract({ address: token, abi: usdcAuthorizationAbi, functionName: 'version' }),
    ]).then(([name, version]) => ({ name, version }));
    // A failed read is not kept: the next call reads again.
    domain.catch(() => domains.delete(relayer));
    domains.set(relayer, domain);
  }
  return domain;
}

/** Authorizations being relayed by this process: a concurrent replay is refused before it costs gas. */
const inFlight = new Set<string>();

/** How long a relayed authorization stays claimed across replicas: its receipt wait, and a margin. */
const RELAY_CLAIM_SECONDS = 150;

/**
 * Checks a signed EIP-3009 authorization and submits it through the relayer; resolves once the
 * transaction is sent (not mined). Throws `RelayRefusedError` (or `RateLimitedError`) with nothing sent.
 *
 * @example
 * const { txHash } = await relayPayment(deps, authorization, ctx.clientIp);
 */
export async function relayPayment(
  deps: RelayPaymentDependencies,
  input: TransferAuthorizationInput,
  clientIp: string | null,
): Promise<RelayedPayment> {
  const { config, relayer, logger } = deps;
  if (!relayer) {
    throw new RelayRefusedError(
      'RELAY_OFF',
      'Gasless top-ups are off on this platform: pay with a USDC transfer',
    );
  }
  await deps.rateLimits.consumeRelay('ip', clientIp);

  const from = getAddress(input.from);
  if (!isAddressEqual(input.to, config.treasuryAddress)) {
    throw new RelayRefusedError(
      'WRONG_RECIPIENT',
      `The authorization must pay the treasury ${config.treasuryAddress}, not ${getAddress(input.to)}`,
      'to',
    );
  }
  for (const field of ['value', 'validAfter', 'validBefore'] as const) {
    if (input[field] < 0n || input[field] > UINT256_MAX) {
      throw new RelayRefusedError('INVALID_AMOUNT', `${field} must be a uint256`, field);
    }
  }
  if (input.value < config.relay.minAmount) {
    throw new RelayRefusedError(
      'BELOW_MINIMUM',
      `A gasless top-up must be at least ${config.relay.minAmount} token base units; this one is ${input.value}`,
      'value',
    );
  }
  const now = deps.now?.() ?? BigInt(Math.floor(Date.now() / 1000));
  // The token requires validAfter < block.timestamp < validBefore.
  if (input.validAfter >= now) {
    throw new RelayRefusedError(
      'NOT_YET_VALID',
      `The authorization is valid only after ${input.validAfter}`,
      'validAfter',
    );
  }
  if (input.validBefore < now + RELAY_VALIDITY_MARGIN_SECONDS) {
    throw new RelayRefusedError(
      'EXPIRED',
      `The authorization expires at ${input.validBefore}: it must stay valid at least ${RELAY_VALIDITY_MARGIN_SECONDS} s from now (${now}) to be mined`,
      'validBefore',
    );
  }
  if (!isHex(input.signature) || size(input.signature) < 65) {
    throw new RelayRefusedError('INVALID_SIGNATURE', 'The signature must be hex bytes', 'signature');
  }
  const signature = input.signature;
  const authorization = {
    from,
    to: config.treasuryAddress,
    value: input.value,
    validAfter: input.validAfter,
    validBefore: input.validBefore,
    nonce: input.nonce,
  };
  const client = relayer.client;
  const token = config.usdcAddress;
  const domain = await tokenDomain(relayer, token);

  const signer =
    size(signature) === 65
      ? await recoverTypedDataAddress({
          domain: { ...domain, chainId: config.chainId, verifyingContract: token },
          types: transferWithAuthorizationTypes,
          primaryType: 'TransferWithAuthorization',
          message: authorization,
          signature,
        }).catch(() => null)
      : null;
  if (!signer || !isAddressEqual(signer, from)) {
    // A contract wallet signs by EIP-1271: the token checks it, in the simulation below. Any other
    // mismatch is a wrong signer, token, chain or field.
    const code = await client.getCode({ address: from });
    if (!code || code === '0x') {
      throw new RelayRefusedError(
        'INVALID_SIGNATURE',
        `The signature is not ${from}'s TransferWithAuthorization for the token ${token} ("${domain.name}" version ${domain.version}) on chain ${config.chainId} with these fields`,
        'signature',
      );
    }
  }
  await deps.rateLimits.consumeRelay('wallet', from);

  const key = `${from}:${input.nonce.toLowerCase()}`;
  if (inFlight.has(key)) {
    throw new RelayRefusedError(
      'AUTHORIZATION_IN_FLIGHT',
      'This authorization is being relayed already',
      'nonce',
    );
  }
  inFlight.add(key);
  let submitted = false;
  let claimedUntil: Date | null = null;
  try {
    if (deps.sql) {
      const claimedAt = new Date();
      const until = new Date(claimedAt.getTime() + RELAY_CLAIM_SECONDS * 1_000);
      if (!(await claimRelay(deps.sql, from, input.nonce.toLowerCase(), until, claimedAt))) {
        // Claimed by a replica that relayed it: mined by now (a replay), or still on its way.
        const used = await client.readContract({
          address: token,
          abi: usdcAuthorizationAbi,
          functionName: 'authorizationState',
          args: [from, input.nonce],
        });
        throw used
          ? new RelayRefusedError(
              'AUTHORIZATION_USED',
              'This authorization was used or canceled already',
              'nonce',
            )
          : new RelayRefusedError(
              'AUTHORIZATION_IN_FLIGHT',
              'This authorization is being relayed already',
              'nonce',
            );
      }
      claimedUntil = until;
    }
    const [used, balance] = await Promise.all([
      client.readContract({
        address: token,
        abi: usdcAuthorizationAbi,
        functionName: 'authorizationState',
        args: [from, input.nonce],
      }),
      client.readContract({ address: token, abi: erc20Abi, functionName: 'balanceOf', args: [from] }),
    ]);
    if (used) {
      throw new RelayRefusedError(
        'AUTHORIZATION_USED',
        'This authorization was used or canceled already',
        'nonce',
      );
    }
    if (balance < input.value) {
      throw new RelayRefusedError(
        'INSUFFICIENT_FUNDS',
        `${from} holds ${balance} token base units, less than the ${input.value} authorized`,
        'value',
      );
    }
    const args = [
      from,
      authorization.to,
      input.value,
      input.validAfter,
      input.validBefore,
      input.nonce,
      signature,
    ] as const;
    const { request } = await client
      .simulateContract({
        address: token,
        abi: usdcAuthorizationAbi,
        functionName: 'transferWithAuthorization',
        args,
      })
      .catch((error: unknown) => {
        throw new RelayRefusedError(
          'SIMULATION_FAILED',
          `The token refuses this authorization: ${revertReason(error)}`,
        );
      });
    let txHash: Hash;
    try {
      txHash = await sendWithFreshNonce(relayer, () => client.writeContract(request));
    } catch (error) {
      logger.error({ err: error, from, nonce: input.nonce }, 'relayer could not submit an authorization');
      throw new RelayRefusedError(
        'RELAYER_UNAVAILABLE',
        'The relayer could not submit the authorization; nothing moved. Try again later',
      );
    }
    submitted = true;
    logger.info({ txHash, from, value: input.value.toString() }, 'relayed a gasless top-up');
    // Until it is mined the chain still calls the nonce unused: the key stays taken meanwhile. A revert (a
    // race with another submitter of the same authorization) is worth a look.
    void client
      .waitForTransactionReceipt({ hash: txHash, timeout: 120_000 })
      .then(
        (receipt) => {
          if (receipt.status !== 'success')
            logger.error({ txHash, from }, 'a relayed top-up reverted on chain');
        },
        (error: unknown) => logger.warn({ err: error, txHash }, 'no receipt for a relayed top-up'),
      )
      .finally(() => inFlight.delete(key));
    return { txHash, amountToken: input.value };
  } finally {
    if (!submitted) {
      inFlight.delete(key);
      if (deps.sql && claimedUntil) {
        await releaseRelay(deps.sql, from, input.nonce.toLowerCase(), claimedUntil).catch((error: unknown) =>
          logger.warn({ err: error, from, nonce: input.nonce }, 'could not release a relay claim'),
        );
      }
    }
  }
}

/** The token's revert reason, or the node's short message. */
function revertReason(error: unknown): string {
  if (error instanceof BaseError) {
    const reverted = error.walk((cause) => cause instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      return reverted.reason ?? reverted.data?.errorName ?? reverted.shortMessage;
    }
    return error.shortMessage;
  }
  return String(error);
}
