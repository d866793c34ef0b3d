/**
 * Pay per request (x402 v2) on `POST /v1/chat/completions`: the platform is a resource server and its own
 * facilitator, built from the x402 packages (`@x402/core` server and facilitator, `@x402/evm` schemes), never
 * hand-written protocol code. What is ours:
 * - the offer: `exact` (EIP-3009 on the configured USDC) and, where Permit2 and the x402 upto proxy have code
 *   at their canonical addresses, `upto`; both for the call's maximum price (its hold), `payTo` the treasury,
 *   `extra` the token's own EIP-712 name and version, read from the chain once;
 * - the checks around the facilitator's: the payment must match one of the requirements offered for this
 *   very request (scheme, network, asset, payTo, amount, timeout), an `exact` authorization may not outlast
 *   the offer and an `upto` deadline may not end before it (upto settles after serving), then the facilitator
 *   verifies signature, time window, value, unused nonce and balance (by simulating the transfer);
 * - the settlement through the relayer's wallet (its client manages nonces, so settlements may run
 *   concurrently), with a hook that hands metering the transaction's hash the moment it is broadcast (the
 *   usage row is linked to it before the indexer can see it).
 * Metering decides when money moves (`CallPayment`): `exact` before the upstream, `upto` after, for the price.
 * The payment as accepted (payload and requirements) is kept on the call's row: if a reorg deeper than
 * CONFIRMATIONS removes the settlement, `resubmit` submits the same signed authorization again
 * (`paid-call-resubmission.ts`).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { MicroUsd } from '@chainmeter/schema';
import { x402Facilitator } from '@x402/core/facilitator';
import {
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  encodePaymentResponseHeader,
} from '@x402/core/http';
import { x402ResourceServer } from '@x402/core/server';
import type {
  Network,
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  SupportedResponse,
} from '@x402/core/types';
import { eip3009ABI, PERMIT2_ADDRESS, toFacilitatorEvmSigner, x402UptoPermit2ProxyAddress } from '@x402/evm';
import { ExactEvmScheme as ExactFacilitatorScheme } from '@x402/evm/exact/facilitator';
import { ExactEvmScheme as ExactServerScheme } from '@x402/evm/exact/server';
import { UptoEvmScheme as UptoFacilitatorScheme } from '@x402/evm/upto/facilitator';
import { UptoEvmScheme as UptoServerScheme } from '@x402/evm/upto/server';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { type Address, erc20Abi, getAddress, type Hash, type Hex, type PublicClient, parseAbi } from 'viem';
import { z } from 'zod';
import { ExpectedError } from '../../errors.ts';
import { METRIC_PREFIX } from '../../observability/metrics.ts';
import { PaymentRefusedError } from '../metering/metering.errors.ts';
import type { CallPayment } from '../metering/metering.service.ts';
import type { PaymentScheme } from '../metering/paid-call.store.ts';
import { type Relayer, sendWithFreshNonce } from '../relayer/relayer.ts';

export interface X402Options {
  relayer: Pick<Relayer, 'address' | 'client' | 'resetNonce'>;
  chain: PublicClient;
  chainId: number;
  usdcAddress: Address;
  treasuryAddress: Address;
  logger: Logger;
  /** Prometheus registry the x402 counters are registered in. */
  registry?: import('prom-client').Registry;
  /**
   * How long a signed payment may take to settle (the `exact` offer's `maxTimeoutSeconds`; `upto` adds
   * `longestCallSeconds`): past it the payer's authorization has expired, so a settlement not mined by then is
   * not waited for any longer.
   */
  maxTimeoutSeconds?: number;
  /**
   * The longest an `upto` call may be served, in seconds (`LLM_TIMEOUT_MS`, rounded up): an `upto` payment
   * settles after serving, so its offer's `maxTimeoutSeconds` is this plus `maxTimeoutSeconds`.
   */
  longestCallSeconds?: number;
}

/** A payment that passed every check, ready for metering, and the receipt of its settlement once made. */
export interface VerifiedPayment {
  payment: CallPayment;
  /** The facilitator's answer of the last settlement (for `PAYMENT-RESPONSE`), once settled. */
  settlement(): SettleResponse | null;
}

export interface X402Service {
  /** The `PAYMENT-REQUIRED` header for a call whose maximum price is `maxPrice`. */
  paymentRequiredHeader(maxPrice: MicroUsd, resourceUrl: string, error?: string): Promise<string>;
  /** Checks the `PAYMENT-SIGNATURE` header against this call's offer; throws {@link PaymentRefusedError}. */
  verifyPayment(header: string, maxPrice: MicroUsd, resourceUrl: string): Promise<VerifiedPayment>;
  /** The `PAYMENT-RESPONSE` header of a settlement. */
  paymentResponseHeader(settlement: SettleResponse): string;
  /** Counts a verified payment that metering refused (`chainmeter_x402_payments_total{outcome="refused"}`). */
  countRefused(scheme: PaymentScheme): void;
  /** Whether `upto` is offered (Permit2 and the upto proxy have code on this chain). */
  offersUpto(): Promise<boolean>;
  /**
   * Submits a payment again whose settlement a deep reorg removed, or whose upto settlement failed (UNPAID),
   * as `CallPayment.payload` kept it (`stored`), for `amount` (upto: the call's price; exact: the signed
   * amount), if its authorization is still unused on chain and valid. `used`: the authorization was spent on
   * this chain already (the original transaction mined again, or another replica's resubmission): nothing to
   * do. `expired`: it can never be settled. `failed`: try again later.
   */
  resubmit(stored: unknown, amount: bigint): Promise<Resubmission>;
}

export type Resubmission =
  | { outcome: 'submitted'; txHash: Hash }
  | { outcome: 'used' | 'expired' }
  | { outcome: 'failed'; reason: string };

/** The payment as kept on the call's row: what `settlePayment` needs to run again. */
interface StoredPayment {
  payload: PaymentPayload;
  requirements: PaymentRequirements;
}

/** The signed authorization's owner, nonce and end of validity, whichever way it was signed. */
const storedAuthorization = z.union([
  z.object({
    authorization: z.object({ from: z.string(), nonce: z.string(), validBefore: z.string() }),
  }),
  z.object({
    permit2Authorization: z.object({ from: z.string(), nonce: z.string(), deadline: z.string() }),
  }),
]);

const permit2NonceAbi = parseAbi([
  'function nonceBitmap(address owner, uint256 wordPos) view returns (uint256)',
]);

const eip712DomainAbi = parseAbi([
  'function name() view returns (string)',
  'function version() view returns (string)',
]);

export function createX402Service(options: X402Options): X402Service {
  const { relayer, logger } = options;
  const network = `eip155:${options.chainId}` as Network;
  const asset = getAddress(options.usdcAddress);
  const payTo = getAddress(options.treasuryAddress);
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? 60;
  // upto is served first and settled after: its Permit2 deadline must outlast the longest call (a stream is
  // ended at it, see `streamHeld` in metering), then leave the settlement the same window as exact's.
  const uptoTimeoutSeconds = (options.longestCallSeconds ?? 60) + maxTimeoutSeconds;
  // The payer's clock may run behind ours (its deadline is its now + the offer), but never so far that the
  // settlement is left less than the facilitator wants at settlement (6 s) and the time to mine it.
  const uptoClockSkewSeconds = Math.min(
    PAYER_CLOCK_SKEW_SECONDS,
    maxTimeoutSeconds - UPTO_LEAST_SETTLEMENT_SECONDS,
  );
  /** Where the transaction hash of the settlement running in this async context goes once broadcast. */
  const broadcastHook = new AsyncLocalStorage<(txHash: Hash) => Promise<void>>();
  const client = relayer.client;
  const signer = toFacilitatorEvmSigner(
    {
      address: relayer.address,
      readContract: (args) => client.readContract(args as never),
      verifyTypedData: (args) => client.verifyTypedData(args as never),
      writeContract: async (args) => {
        const hash = await sendWithFreshNonce(relayer, () => client.writeContract(args as never));
        await broadcastHook.getStore()?.(hash);
        return hash;
      },
      sendTransaction: async (args) => {
        const hash = await sendWithFreshNonce(relayer, () => client.sendTransaction(args as never));
        await broadcastHook.getStore()?.(hash);
        return hash;
      },
      waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args as never),
      getCode: (args) => client.getCode(args),
    },
    // The signer bounds each receipt wait (180 s by default): a settlement never mined (dropped, or removed
    // by a reorg before its receipt was seen) would keep its call, and the call's hold, alive that long. A
    // paid call waits no longer than its payment can be valid. x402's server waits for a pending settlement
    // once more (the same transaction), so a settlement is given up on after twice this: by then an `exact`
    // authorization (valid at most `maxTimeoutSeconds` + the payer's clock skew from its verification, see
    // `verifyPayment`; `maxTimeoutSeconds` >= 10) has expired even by a block clock a few seconds behind, and
    // a settlement given up on can never move money after the payer was told so.
    { confirmationTimeoutMs: maxTimeoutSeconds * 1_000 },
  );
  const facilitator = new x402Facilitator()
    .register(network, new ExactFacilitatorScheme(signer))
    .register(network, new UptoFacilitatorScheme(signer));
  const server = new x402ResourceServer({
    verify: (payload, requirements) => facilitator.verify(payload, requirements),
    settle: (payload, requirements) => facilitator.settle(payload, requirements),
    getSupported: async () => facilitator.getSupported() as SupportedResponse,
  })
    .register(network, new ExactServerScheme())
    .register(network, new UptoServerScheme());
  const paidCalls = options.registry
    ? new Counter({
        name: `${METRIC_PREFIX}x402_payments_total`,
        help: 'x402 payments by scheme and outcome: settled, refused (402), settlement_failed (an upto payment that failed after serving), resubmitted / resubmit_failed (submitted again after a deep reorg removed its settlement, or for an UNPAID upto call)',
        labelNames: ['scheme', 'outcome'],
        registers: [options.registry],
      })
    : null;

  let ready: Promise<{ domain: { name: string; version: string }; upto: boolean }> | null = null;
  /** Read once: the token's EIP-712 domain and whether the upto contracts exist; retried after a failure. */
  function setUp() {
    ready ??= (async () => {
      const [name, version, permit2Code, proxyCode] = await Promise.all([
        options.chain.readContract({ address: asset, abi: eip712DomainAbi, functionName: 'name' }),
        options.chain.readContract({ address: asset, abi: eip712DomainAbi, functionName: 'version' }),
        options.chain.getCode({ address: PERMIT2_ADDRESS }),
        options.chain.getCode({ address: x402UptoPermit2ProxyAddress }),
      ]);
      await server.initialize();
      const upto = hasCode(permit2Code) && hasCode(proxyCode);
      logger.info({ name, version, upto }, 'x402: offering payments');
      return { domain: { name, version }, upto };
    })().catch((error: unknown) => {
      ready = null;
      logger.error({ err: error }, 'x402: could not read the token or the chain');
      throw new ExpectedError(
        'UPSTREAM_UNAVAILABLE',
        'Payments per request are unavailable right now: try again',
      );
    });
    return ready;
  }

  async function requirementsFor(maxPrice: MicroUsd): Promise<PaymentRequirements[]> {
    const { domain, upto } = await setUp();
    const schemes: PaymentScheme[] = upto ? ['exact', 'upto'] : ['exact'];
    const built = await Promise.all(
      schemes.map((scheme) =>
        server.buildPaymentRequirements({
          scheme,
          payTo,
          network,
          maxTimeoutSeconds: scheme === 'upto' ? uptoTimeoutSeconds : maxTimeoutSeconds,
          price: { asset, amount: maxPrice.toString(), extra: { ...domain } },
        }),
      ),
    );
    return built.flat();
  }

  async function paymentRequiredHeader(maxPrice: MicroUsd, resourceUrl: string, error?: string) {
    const accepts = await requirementsFor(maxPrice);
    const { upto } = await setUp();
    const required = await server.createPaymentRequiredResponse(
      accepts,
      { url: resourceUrl, description: 'One chat completion', mimeType: 'application/json' },
      error,
      // A wallet without ETH approves Permit2 for `upto` by an EIP-2612 signature the relayer submits.
      upto ? { eip2612GasSponsoring: { info: {}, schema: {} } } : undefined,
    );
    return encodePaymentRequiredHeader(required);
  }

  async function verifyPayment(
    header: string,
    maxPrice: MicroUsd,
    _resourceUrl: string,
  ): Promise<VerifiedPayment> {
    let payload: PaymentPayload;
    try {
      payload = decodePaymentSignatureHeader(header);
    } catch {
      throw refused('exact', 'invalid_payment_signature_header');
    }
    // Base64 of `null` decodes too: a payment is an object.
    if (typeof payload !== 'object' || payload === null) {
      throw refused('exact', 'invalid_payment_signature_header');
    }
    if (payload.x402Version !== 2) throw refused('exact', 'unsupported_x402_version');
    const offered = await requirementsFor(maxPrice);
    // The payment must be for exactly what this request was offered: same scheme, network, token, payee,
    // amount and extra. A payment for another call's (lower) price, another token or payee matches nothing.
    const requirements = server.findMatchingRequirements(offered, payload);
    const scheme = (payload.accepted?.scheme === 'upto' ? 'upto' : 'exact') as PaymentScheme;
    if (!requirements) throw refused(scheme, 'payment_does_not_match_offer');
    const verified = await server.verifyPayment(payload, requirements).catch((error: unknown) => {
      logger.warn({ err: error }, 'x402: verification failed');
      throw refused(scheme, 'verification_failed');
    });
    if (!verified.isValid || !verified.payer) {
      throw refused(scheme, verified.invalidReason ?? 'invalid_payment');
    }
    const payer = getAddress(verified.payer);
    let last: SettleResponse | null = null;
    const stored: StoredPayment = { payload, requirements };
    let authorization: string;
    try {
      authorization = authorizationKey(stored);
    } catch {
      throw refused(scheme, 'invalid_payload');
    }
    // exact settles before serving and gives up on a settlement not mined within the wait above, answering
    // that nothing was served: an authorization valid for longer could still be mined after that answer and
    // move the payer's money for nothing. The official client signs `validBefore` = its now + maxTimeoutSeconds.
    if (
      scheme === 'exact' &&
      signedValidUntil(stored) >
        BigInt(Math.ceil(Date.now() / 1_000) + maxTimeoutSeconds + PAYER_CLOCK_SKEW_SECONDS)
    ) {
      throw refused(scheme, PAYMENT_VALID_TOO_LONG);
    }
    // upto settles after serving: a deadline that ends before the longest call and its settlement could leave
    // a served call unpaid for good (the facilitator refuses a deadline closer than 6 s). The official client
    // signs `deadline` = its now + the offer's maxTimeoutSeconds.
    if (
      scheme === 'upto' &&
      signedValidUntil(stored) <
        BigInt(Math.floor(Date.now() / 1_000) + uptoTimeoutSeconds - uptoClockSkewSeconds)
    ) {
      throw refused(scheme, PAYMENT_DEADLINE_TOO_SHORT);
    }
    // upto serves before it settles: what the wallet holds bounds the upto calls it may have running at once.
    const funds =
      scheme === 'upto'
        ? await options.chain
            .readContract({ address: asset, abi: erc20Abi, functionName: 'balanceOf', args: [payer] })
            .catch((error: unknown) => {
              logger.warn({ err: error, payer }, 'x402: could not read the payer balance');
              throw refused(scheme, 'verification_failed');
            })
        : 0n;
    const payment: CallPayment = {
      scheme,
      payer,
      maxPrice,
      authorization,
      funds,
      payload: stored,
      async settle(amount, onBroadcast) {
        const result = await broadcastHook.run(
          (hash) => onBroadcast(hash),
          () =>
            scheme === 'upto'
              ? server.settlePayment(payload, requirements, undefined, undefined, {
                  amount: amount.toString(),
                })
              : server.settlePayment(payload, requirements),
        );
        last = result;
        if (!result.success) {
          paidCalls?.inc({ scheme, outcome: scheme === 'upto' ? 'settlement_failed' : 'refused' });
          throw new PaymentRefusedError(result.errorReason ?? 'settlement_failed');
        }
        paidCalls?.inc({ scheme, outcome: 'settled' });
      },
    };
    return { payment, settlement: () => last };
  }

  /**
   * Whether the signed authorization can still move money: `used` when its nonce is spent on this chain,
   * `expired` past its `validBefore` (EIP-3009) or `deadline` (Permit2) by the chain's own clock.
   */
  async function authorizationState(stored: StoredPayment): Promise<'unused' | 'used' | 'expired'> {
    const signed = storedAuthorization.parse(stored.payload.payload);
    const { timestamp } = await options.chain.getBlock({ blockTag: 'latest' });
    if ('authorization' in signed) {
      const { from, nonce, validBefore } = signed.authorization;
      const used = await options.chain.readContract({
        address: getAddress(stored.requirements.asset),
        abi: eip3009ABI,
        functionName: 'authorizationState',
        args: [getAddress(from), nonce as Hex],
      });
      if (used) return 'used';
      return BigInt(validBefore) <= timestamp ? 'expired' : 'unused';
    }
    const { from, nonce, deadline } = signed.permit2Authorization;
    const word = await options.chain.readContract({
      address: PERMIT2_ADDRESS,
      abi: permit2NonceAbi,
      functionName: 'nonceBitmap',
      args: [getAddress(from), BigInt(nonce) >> 8n],
    });
    if ((word >> (BigInt(nonce) & 255n)) & 1n) return 'used';
    return BigInt(deadline) <= timestamp ? 'expired' : 'unused';
  }

  async function resubmit(raw: unknown, amount: bigint): Promise<Resubmission> {
    const stored = raw as StoredPayment;
    const state = await authorizationState(stored);
    if (state !== 'unused') return { outcome: state };
    // The node dropped the removed settlement, and with it the relayer's nonce it used: read it again.
    relayer.resetNonce();
    // The token (EIP-3009) or Permit2 spends the authorization's nonce with the transfer: should the
    // original transaction be mined again, or another replica submit it too, only one of them can move the
    // money, every other reverts. Submitting again can never take the payer's money twice.
    const result = await (stored.requirements.scheme === 'upto'
      ? server.settlePayment(stored.payload, stored.requirements, undefined, undefined, {
          amount: amount.toString(),
        })
      : server.settlePayment(stored.payload, stored.requirements));
    paidCalls?.inc({
      scheme: stored.requirements.scheme,
      outcome: result.success ? 'resubmitted' : 'resubmit_failed',
    });
    if (!result.success || !result.transaction) {
      return { outcome: 'failed', reason: result.errorReason ?? 'settlement_failed' };
    }
    return { outcome: 'submitted', txHash: result.transaction as Hash };
  }

  function refused(scheme: PaymentScheme, reason: string): PaymentRefusedError {
    paidCalls?.inc({ scheme, outcome: 'refused' });
    return new PaymentRefusedError(reason);
  }

  return {
    paymentRequiredHeader,
    verifyPayment,
    paymentResponseHeader: (settlement) => encodePaymentResponseHeader(settlement),
    countRefused: (scheme) => paidCalls?.inc({ scheme, outcome: 'refused' }),
    offersUpto: async () => (await setUp()).upto,
    resubmit,
  };
}

/** The 402's code for an `exact` payment whose authorization stays valid past the offer's `maxTimeoutSeconds`. */
const PAYMENT_VALID_TOO_LONG = 'payment_valid_too_long';
/**
 * The 402's code for an `upto` payment whose Permit2 deadline ends before the longest call plus the settlement
 * window (the upto offer's `maxTimeoutSeconds`).
 */
const PAYMENT_DEADLINE_TOO_SHORT = 'payment_deadline_too_short';
/**
 * How far ahead of ours (exact) or behind (upto) a payer's clock may run when it signs the end of its
 * authorization (its now + the offer's maxTimeoutSeconds).
 */
const PAYER_CLOCK_SKEW_SECONDS = 5;
/**
 * The least an upto deadline must leave after the longest call: the facilitator wants 6 s of validity left when
 * it settles, and the settlement needs a moment to start and be mined.
 */
const UPTO_LEAST_SETTLEMENT_SECONDS = 8;

const hasCode = (code: Hex | undefined) => code !== undefined && code !== '0x';

/** The end of the signed authorization's validity (EIP-3009 `validBefore`, Permit2 `deadline`), Unix seconds. */
function signedValidUntil(stored: StoredPayment): bigint {
  const signed = storedAuthorization.parse(stored.payload.payload);
  return BigInt(
    'authorization' in signed ? signed.authorization.validBefore : signed.permit2Authorization.deadline,
  );
}

/**
 * What identifies the signed authorization a verified payment spends, whichever way it was signed: the token's
 * EIP-3009 nonce of its signer, or the signer's Permit2 nonce (one nonce space for every token and spender). The
 * chain lets each be spent once; metering lets each pay for one call (`CallPayment.authorization`).
 */
function authorizationKey(stored: StoredPayment): string {
  const signed = storedAuthorization.parse(stored.payload.payload);
  if ('authorization' in signed) {
    const { from, nonce } = signed.authorization;
    return `eip3009:${getAddress(stored.requirements.asset)}:${getAddress(from)}:${nonce.toLowerCase()}`;
  }
  const { from, nonce } = signed.permit2Authorization;
  return `permit2:${getAddress(from)}:${BigInt(nonce).toString()}`;
}
