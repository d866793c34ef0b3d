/**
 * Auto top-up without custody. The user signs a few EIP-3009 `TransferWithAuthorization`s from their wallet
 * to the treasury (amount each, how many, valid until); the platform stores them, each checked when stored
 * (recipient the treasury, the signer the account's own wallet, the configured USDC's EIP-712 domain on this
 * chain, an open window, an unused nonce). Whoever holds them can only move that amount to the treasury,
 * which credits the signer: nobody's funds are at risk.
 *
 * When the balance is below the threshold, the worker claims the next one (one per account at a time, on any
 * number of replicas: topup.store.ts) and submits it through the relayer (`relayPayment`'s checks: funds,
 * unused nonce, simulation). The transfer is then indexed and credited like any payment; until its deposit is
 * credited nothing else is submitted for the account. Outcomes go to the webhook outbox: AUTO_TOP_UP_SUBMITTED,
 * or AUTO_TOP_UP_FAILED, which also pauses auto top-up until the user sets it again. Cancel deletes the stored
 * ones; the wallet may also cancel them on chain (`cancelAuthorization`), which makes a submission fail.
 */
import {
  formatCredits,
  type MicroUsd,
  transferWithAuthorizationTypes,
  usdcAuthorizationAbi,
} from '@chainmeter/schema';
import type { Logger } from 'pino';
import {
  type Address,
  getAddress,
  type Hex,
  isAddress,
  isAddressEqual,
  isHex,
  type PublicClient,
  recoverTypedDataAddress,
  size,
} from 'viem';
import { violatedConstraint } from '../../db/constraint.ts';
import type { SqlRunner } from '../../db/sql.ts';
import type { ApiConfig } from '../../env.ts';
import { badInput, ExpectedError } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import {
  RELAY_VALIDITY_MARGIN_SECONDS,
  RelayRefusedError,
  relayPayment,
  type TransferAuthorizationInput,
} from '../relayer/relay-payment.service.ts';
import type { Relayer } from '../relayer/relayer.ts';
import { enqueueWebhookEvents } from '../webhooks/webhook-events.store.ts';
import {
  type AutoTopUpView,
  type ClaimedAuthorization,
  claimDueTopUps,
  clearLandedTopUps,
  deleteAutoTopUp,
  readAutoTopUp,
  recordFailed,
  recordSubmitted,
  releaseClaim,
  type StoredAuthorization,
  storeAutoTopUp,
} from './topup.store.ts';

/** At most this many authorizations stored per account. */
export const MAX_AUTO_TOP_UP_AUTHORIZATIONS = 50;
/** An authorization in flight this long without its deposit credited frees the account for the next one. */
export const IN_FLIGHT_TIMEOUT_MS = 10 * 60_000;
const INT64_MAX = 2n ** 63n - 1n;
/** Rounds started by charges are at least this far apart (the interval catches the rest). */
const NUDGE_GAP_MS = 200;

export interface AutoTopUpDependencies {
  sql: SqlRunner;
  config: Pick<ApiConfig, 'chainId' | 'usdcAddress' | 'treasuryAddress' | 'relay'>;
  chain: PublicClient;
  relayer: Relayer | null;
  logger: Logger;
}

export interface AutoTopUpInput {
  threshold: bigint;
  authorizations: readonly TransferAuthorizationInput[];
}

/**
 * Stores the viewer's auto top-up: the threshold and the authorizations (replacing those not yet used),
 * each checked first; unpauses it. Refusals are BAD_USER_INPUT with the index of the authorization at fault.
 */
export async function setAutoTopUp(
  deps: AutoTopUpDependencies,
  viewer: Viewer,
  input: AutoTopUpInput,
  nowSeconds = BigInt(Math.floor(Date.now() / 1000)),
): Promise<AutoTopUpView> {
  if (!deps.relayer) {
    throw new ExpectedError('FORBIDDEN', 'Auto top-up needs the relayer, which is off on this platform');
  }
  if (input.threshold <= 0n) throw badInput('The threshold must be more than zero', 'threshold');
  const count = input.authorizations.length;
  if (count < 1 || count > MAX_AUTO_TOP_UP_AUTHORIZATIONS) {
    throw badInput(`Store 1 to ${MAX_AUTO_TOP_UP_AUTHORIZATIONS} authorizations`, 'authorizations');
  }
  const domain = await tokenDomain(deps);
  const nonces = new Set<string>();
  const stored: StoredAuthorization[] = [];
  for (const [index, authorization] of input.authorizations.entries()) {
    const at = (message: string) => badInput(`authorizations[${index}]: ${message}`, 'authorizations');
    if (!isAddress(authorization.from) || !isAddressEqual(authorization.from, viewer.walletAddress)) {
      throw at(`it must be signed by your wallet ${viewer.walletAddress}: its credit goes to the signer`);
    }
    if (!isAddress(authorization.to) || !isAddressEqual(authorization.to, deps.config.treasuryAddress)) {
      throw at(`it must pay the treasury ${deps.config.treasuryAddress}`);
    }
    if (authorization.value < deps.config.relay.minAmount || authorization.value > INT64_MAX) {
      throw at(`the amount must be at least ${deps.config.relay.minAmount} token base units`);
    }
    if (authorization.validAfter < 0n || authorization.validAfter >= authorization.validBefore) {
      throw at('validAfter must be before validBefore');
    }
    if (authorization.validBefore > INT64_MAX || authorization.validBefore < nowSeconds + 3_600n) {
      throw at('it must stay valid at least an hour from now');
    }
    const nonce = authorization.nonce.toLowerCase();
    if (!isHex(nonce) || size(nonce) !== 32 || nonces.has(nonce)) {
      throw at('its nonce must be 32 bytes, different from the others');
    }
    nonces.add(nonce);
    if (!isHex(authorization.signature) || size(authorization.signature) !== 65) {
      throw at('the signature must be 65 bytes (a wallet key; contract wallets are not supported here)');
    }
    const signer = await recoverTypedDataAddress({
      domain: { ...domain, chainId: deps.config.chainId, verifyingContract: deps.config.usdcAddress },
      types: transferWithAuthorizationTypes,
      primaryType: 'TransferWithAuthorization',
      message: {
        from: getAddress(authorization.from),
        to: getAddress(authorization.to),
        value: authorization.value,
        validAfter: authorization.validAfter,
        validBefore: authorization.validBefore,
        nonce: nonce as Hex,
      },
      signature: authorization.signature as Hex,
    }).catch(() => null);
    if (!signer || !isAddressEqual(signer, viewer.walletAddress)) {
      throw at(
        `the signature is not your TransferWithAuthorization for the token ${deps.config.usdcAddress} ("${domain.name}" version ${domain.version}) on chain ${deps.config.chainId}`,
      );
    }
    const used = await deps.chain.readContract({
      address: deps.config.usdcAddress,
      abi: usdcAuthorizationAbi,
      functionName: 'authorizationState',
      args: [getAddress(authorization.from), nonce as Hex],
    });
    if (used) throw at('this authorization was used or canceled on chain already');
    stored.push({
      from: getAddress(authorization.from),
      value: authorization.value,
      validAfter: authorization.validAfter,
      validBefore: authorization.validBefore,
      nonce,
      signature: authorization.signature,
    });
  }
  try {
    await deps.sql.transaction((query) => storeAutoTopUp(query, viewer.accountId, input.threshold, stored));
  } catch (error) {
    if (violatedConstraint(error) === 'auto_top_up_authorizations_nonce_unique') {
      throw badInput('An authorization with one of these nonces was stored before', 'authorizations');
    }
    throw error;
  }
  return (await getAutoTopUp(deps.sql, viewer.accountId)) as AutoTopUpView;
}

/** Cancels the viewer's auto top-up; true when there was one. */
export async function cancelAutoTopUp(sql: SqlRunner, viewer: Viewer): Promise<boolean> {
  const { existed, deleted } = await sql.transaction((query) => deleteAutoTopUp(query, viewer.accountId));
  return existed || deleted.length > 0;
}

export function getAutoTopUp(sql: SqlRunner, accountId: string): Promise<AutoTopUpView | null> {
  return readAutoTopUp(sql.query, accountId);
}

const domains = new WeakMap<object, Promise<{ name: string; version: string }>>();

/** The token's own EIP-712 name and version, read once. */
function tokenDomain(deps: AutoTopUpDependencies) {
  let domain = domains.get(deps.chain);
  if (!domain) {
    const token = deps.config.usdcAddress;
    domain = Promise.all([
      deps.chain.readContract({ address: token, abi: usdcAuthorizationAbi, functionName: 'name' }),
      deps.chain.readContract({ address: token, abi: usdcAuthorizationAbi, functionName: 'version' }),
    ]).then(([name, version]) => ({ name, version }));
    domain.catch(() => domains.delete(deps.chain));
    domains.set(deps.chain, domain);
  }
  return domain;
}

export interface AutoTopUpWorker {
  /** Runs a round soon (after a charge). */
  nudge(): void;
  /** One round: free landed top-ups, claim the due ones, submit them. Returns how many were submitted or failed. */
  round(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The submitting side: a round every `intervalMs`, and after a charge (`nudge`, at most one round per
 * NUDGE_GAP_MS), one at a time in this process (replicas coordinate through the claim). A process that dies
 * between a claim and its submission leaves that authorization SUBMITTED without a transaction: the account
 * is freed after IN_FLIGHT_TIMEOUT_MS and the next one is used (never two at once, never the same one twice).
 */
export function startAutoTopUpWorker(deps: AutoTopUpDependencies & { intervalMs: number }): AutoTopUpWorker {
  const { sql, logger } = deps;
  let running: Promise<number> | null = null;
  let again = false;
  let stopped = false;
  /** When the last round started: nudges (one per charge under load) start at most one round per NUDGE_GAP_MS. */
  let lastStart = 0;

  async function submit(claimed: ClaimedAuthorization): Promise<void> {
    const relayDeps = {
      config: deps.config,
      relayer: deps.relayer,
      sql,
      // The platform submits these itself: the per-IP and per-wallet limits are for people.
      rateLimits: { consumeRelay: async () => {} },
      logger,
    };
    const amount = formatCredits(claimed.value as MicroUsd);
    try {
      const relayed = await relayPayment(
        relayDeps,
        {
          from: claimed.from as Address,
          to: deps.config.treasuryAddress,
          value: claimed.value,
          validAfter: claimed.validAfter,
          validBefore: claimed.validBefore,
          nonce: claimed.nonce as Hex,
          signature: claimed.signature,
        },
        null,
      );
      await sql.transaction(async (query) => {
        const remaining = await recordSubmitted(query, claimed.id, relayed.txHash);
        await enqueueWebhookEvents(query, [
          {
            accountId: claimed.accountId,
            type: 'AUTO_TOP_UP_SUBMITTED',
            data: { txHash: relayed.txHash, amount, remaining },
          },
        ]);
      });
      logger.info({ accountId: claimed.accountId, txHash: relayed.txHash }, 'auto top-up submitted');
    } catch (error) {
      if (
        error instanceof RelayRefusedError &&
        error.reason !== 'RELAYER_UNAVAILABLE' &&
        error.reason !== 'RELAY_OFF' &&
        error.reason !== 'AUTHORIZATION_IN_FLIGHT'
      ) {
        await sql.transaction(async (query) => {
          await recordFailed(query, claimed.id, error.reason);
          await enqueueWebhookEvents(query, [
            {
              accountId: claimed.accountId,
              type: 'AUTO_TOP_UP_FAILED',
              data: { reason: error.reason, message: error.message, amount },
            },
          ]);
        });
        logger.warn({ accountId: claimed.accountId, reason: error.reason }, 'auto top-up failed: paused');
        return;
      }
      // The platform's side failed: the authorization goes back, to be submitted by a later round.
      logger.error({ err: error, accountId: claimed.accountId }, 'could not submit an auto top-up');
      await releaseClaim(sql.query, claimed.id);
    }
  }

  async function round(): Promise<number> {
    if (!deps.relayer) return 0;
    const now = new Date();
    await clearLandedTopUps(sql.query, new Date(now.getTime() - IN_FLIGHT_TIMEOUT_MS));
    const validUntil = BigInt(Math.floor(now.getTime() / 1000)) + RELAY_VALIDITY_MARGIN_SECONDS;
    const claimed = await claimDueTopUps(sql.query, now, validUntil, 20);
    for (const authorization of claimed) await submit(authorization);
    return claimed.length;
  }

  function run(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    lastStart = Date.now();
    running = round()
      .catch((error: unknown) => {
        logger.error({ err: error }, 'auto top-up round failed');
        return 0;
      })
      .finally(() => {
        running = null;
        if (again && !stopped) {
          again = false;
          void run();
        }
      });
    return running;
  }

  const timer = setInterval(() => void run(), deps.intervalMs);
  timer.unref();
  return {
    nudge: () => {
      if (!stopped && !running && Date.now() - lastStart >= NUDGE_GAP_MS) void run();
    },
    round: run,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
