/**
 * Sign-in with Ethereum (EIP-4361) and sessions.
 *
 * The message is built and checked here, not trusted from the client: the domain and URI are this
 * API's public origin, the chain is the configured one, it must carry an expiration, be recent and
 * answer an unused nonce that this API issued to the same address. The nonce is consumed (one guarded
 * update that must affect exactly one row) only after the signature verifies, so a stranger cannot burn
 * someone's challenge by guessing, and a replayed message always fails.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  type Address,
  getAddress,
  type Hex,
  isAddress,
  isHex,
  type PublicClient,
  recoverMessageAddress,
} from 'viem';
import { createSiweMessage, generateSiweNonce, parseSiweMessage, verifySiweMessage } from 'viem/siwe';
import type { Em } from '../../db/orm.ts';
import { type Query, sqlOf } from '../../db/sql.ts';
import { inTransaction } from '../../db/transaction.ts';
import { badInput, ExpectedError } from '../../errors.ts';
import type { Viewer } from '../../viewer.ts';
import { Account, type IAccount } from '../accounts/accounts.entity.ts';
import { findOrCreateAccount } from '../accounts/accounts.service.ts';
import type { AccountRecord } from '../accounts/accounts.store.ts';
import { Session, SiweNonce } from './auth.entity.ts';
import { apiKeyIsLive, readLiveSessionByToken, sessionIsLive } from './auth.store.ts';

/** How long a challenge may be answered. */
const CHALLENGE_TTL_MS = 10 * 60_000;
/** Clocks disagree a little: tolerate a signer's clock this far ahead of ours. */
const CLOCK_SKEW_MS = 60_000;
const SESSION_TOKEN_PREFIX = 'cms_';
const STATEMENT = 'Sign in to ChainMeter.';

export interface AuthConfig {
  publicOrigin: string;
  chainId: number;
  sessionTtlMs: number;
  auditorAddresses: readonly Address[];
  /** Wallets whose sessions carry the operator role; none when absent. */
  operatorAddresses?: readonly Address[];
}

const signInFailed = (reason: string) => new ExpectedError('UNAUTHENTICATED', `Sign-in refused: ${reason}`);

/** The full EIP-4361 message for `address` to sign; records its nonce. */
export async function createSiweChallenge(
  em: Em,
  config: AuthConfig,
  input: { address: Address; chainId: number },
  now = new Date(),
): Promise<string> {
  if (input.chainId !== config.chainId) {
    throw badInput(
      `Wrong chain: ChainMeter runs on chain ${config.chainId}, not ${input.chainId}`,
      'chainId',
    );
  }
  const origin = new URL(config.publicOrigin);
  const nonce = generateSiweNonce();
  const expiresAt = new Date(now.getTime() + CHALLENGE_TTL_MS);
  // Old challenges are useless; clearing them here keeps the table small without a scheduler.
  await em.nativeDelete(SiweNonce, { expiresAt: { $lt: new Date(now.getTime() - CHALLENGE_TTL_MS) } });
  em.create(SiweNonce, {
    nonce,
    address: getAddress(input.address),
    chainId: input.chainId,
    issuedAt: now,
    expiresAt,
    usedAt: null,
  });
  await em.flush();
  return createSiweMessage({
    domain: origin.host,
    address: getAddress(input.address),
    statement: STATEMENT,
    uri: origin.origin,
    version: '1',
    chainId: input.chainId,
    nonce,
    issuedAt: now,
    expirationTime: expiresAt,
  });
}

export interface SignInResult {
  token: string;
  expiresAt: Date;
  account: IAccount;
}

/** Verifies a signed challenge and opens a session for the signer's account. */
export async function signInWithEthereum(
  em: Em,
  config: AuthConfig,
  chain: PublicClient | null,
  input: { message: string; signature: string },
  now = new Date(),
): Promise<SignInResult> {
  if (!isHex(input.signature, { strict: true }) || input.signature.length < 4) {
    throw badInput('The signature must be a 0x-prefixed hex string', 'signature');
  }
  const signature = input.signature as Hex;
  const fields = parseSiweMessage(input.message);
  const { address, domain, uri, nonce, chainId, issuedAt, expirationTime, notBefore, version } = fields;
  if (
    !address ||
    !isAddress(address, { strict: false }) ||
    !domain ||
    !uri ||
    !nonce ||
    !chainId ||
    !issuedAt
  ) {
    throw badInput('Not a sign-in message: ask siweChallenge for one and sign it unchanged', 'message');
  }
  if (version !== '1') throw badInput('Unsupported SIWE version', 'message');
  const origin = new URL(config.publicOrigin);
  if (domain !== origin.host) throw signInFailed(`the message is for ${domain}, not ${origin.host}`);
  if (uri !== origin.origin) throw signInFailed(`the message's URI ${uri} is not ${origin.origin}`);
  if (chainId !== config.chainId)
    throw signInFailed(`wrong chain ${chainId}: sign in on chain ${config.chainId}`);
  if (!expirationTime) throw signInFailed('the message has no expiration time');
  if (expirationTime.getTime() <= now.getTime()) throw signInFailed('the message has expired');
  if (issuedAt.getTime() > now.getTime() + CLOCK_SKEW_MS)
    throw signInFailed('the message is issued in the future');
  if (now.getTime() - issuedAt.getTime() > CHALLENGE_TTL_MS) throw signInFailed('the message is too old');
  if (notBefore && notBefore.getTime() > now.getTime() + CLOCK_SKEW_MS) {
    throw signInFailed('the message is not valid yet');
  }
  const signer = getAddress(address);
  const challenge = await em.findOne(SiweNonce, { nonce });
  if (!challenge || challenge.address !== signer || challenge.chainId !== chainId) {
    throw signInFailed('unknown nonce: ask siweChallenge for a fresh message');
  }
  if (challenge.usedAt) throw signInFailed('this message was already used');
  if (challenge.expiresAt.getTime() <= now.getTime()) throw signInFailed('the challenge has expired');

  if (!(await signatureMatches(chain, signer, input.message, signature))) {
    throw signInFailed('the signature does not match the address');
  }

  return inTransaction(em, async (tx) => {
    const consumed = await tx.nativeUpdate(
      SiweNonce,
      { nonce, usedAt: null, expiresAt: { $gt: now } },
      { usedAt: now },
    );
    if (consumed !== 1) throw signInFailed('this message was already used');
    const account = await findOrCreateAccount(tx, signer);
    const token = `${SESSION_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(now.getTime() + config.sessionTtlMs);
    tx.create(Session, {
      tokenHash: hashToken(token),
      account: account.id,
      createdAt: now,
      expiresAt,
      revokedAt: null,
    });
    await tx.flush();
    return { token, expiresAt, account };
  });
}

/**
 * An EOA's signature is checked locally (no RPC round trip); anything else goes to the chain, which
 * also covers smart-contract wallets (EIP-1271) and not yet deployed ones (EIP-6492).
 */
async function signatureMatches(
  chain: PublicClient | null,
  signer: Address,
  message: string,
  signature: Hex,
): Promise<boolean> {
  if (signature.length === 132) {
    try {
      const recovered = await recoverMessageAddress({ message, signature });
      if (recovered === signer) return true;
    } catch {
      // Not a well-formed ECDSA signature: maybe a contract wallet's; fall through.
    }
  }
  if (!chain) return false;
  try {
    return await verifySiweMessage(chain, { message, signature, address: signer });
  } catch {
    return false;
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function isSessionToken(token: string): boolean {
  return token.startsWith(SESSION_TOKEN_PREFIX);
}

/** A request's caller as its credential's lookup read it: who, and their account's row at that moment. */
export interface SignedInCaller {
  viewer: Viewer;
  account: AccountRecord;
}

/**
 * The caller behind a session token, or null when it is unknown, expired or revoked: one statement, which
 * reads the account too.
 */
export async function callerFromSessionToken(
  query: Query,
  config: Pick<AuthConfig, 'auditorAddresses' | 'operatorAddresses'>,
  token: string,
  now = new Date(),
): Promise<SignedInCaller | null> {
  const session = await readLiveSessionByToken(query, hashToken(token), now);
  if (!session) return null;
  const { id, walletAddress } = session.account.view;
  return {
    viewer: {
      accountId: id,
      walletAddress: walletAddress as Address,
      role: roleOf(config, walletAddress),
      operator: isOperator(config, walletAddress),
      credential: { kind: 'session', sessionId: session.sessionId },
    },
    account: session.account,
  };
}

/**
 * The viewer behind a session token, or null when it is unknown, expired or revoked; its account goes into
 * `em`'s identity map, as the ORM's populate would put it (what reads it through `em` then finds it there).
 */
export async function viewerFromSessionToken(
  em: Em,
  config: Pick<AuthConfig, 'auditorAddresses' | 'operatorAddresses'>,
  token: string,
  now = new Date(),
): Promise<Viewer | null> {
  const caller = await callerFromSessionToken(sqlOf(em).query, config, token, now);
  if (!caller) return null;
  em.map(Account, caller.account.row);
  return caller.viewer;
}

/**
 * Whether the credential `viewer` authenticated with is still live: a session neither signed out nor
 * expired, or an API key neither revoked nor expired.
 */
export async function credentialIsLive(em: Em, viewer: Viewer, now = new Date()): Promise<boolean> {
  return viewer.credential.kind === 'session'
    ? sessionIsLive(em, viewer.credential.sessionId, now)
    : apiKeyIsLive(em, viewer.credential.apiKeyId, now);
}

export function roleOf(config: Pick<AuthConfig, 'auditorAddresses'>, walletAddress: string): Viewer['role'] {
  return config.auditorAddresses.includes(getAddress(walletAddress)) ? 'auditor' : 'user';
}

/** Whether `walletAddress` is listed in `OPERATOR_ADDRESSES` (its sessions then act as an operator). */
export function isOperator(config: Pick<AuthConfig, 'operatorAddresses'>, walletAddress: string): boolean {
  return (config.operatorAddresses ?? []).includes(getAddress(walletAddress));
}

/** Revokes the viewer's session server-side; every replica refuses the token from the next request. */
export async function signOut(em: Em, viewer: Viewer, now = new Date()): Promise<boolean> {
  if (viewer.credential.kind !== 'session') {
    throw badInput('signOut ends a session; revoke an API key with revokeApiKey instead');
  }
  const revoked = await em.nativeUpdate(
    Session,
    { id: viewer.credential.sessionId, revokedAt: null },
    { revokedAt: now },
  );
  return revoked === 1;
}
